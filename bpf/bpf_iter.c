//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket clean-up after a backend leaves a Service. The socket hooks
 * translate a connected UDP socket of the node once, at connect(); when its
 * backend later leaves the Service, nothing per-packet is left to correct,
 * and the socket would keep talking to the old backend (the stale-UDP bug).
 * Userspace lists the (backend set, backend) pairs that ended in
 * skf_sockgc_v1 (set 0: the backend is gone from every set) and reads this
 * iterator in the node's network namespace: each UDP socket whose
 * translation record names such a pair is destroyed (bpf_sock_destroy), so
 * the application sees ECONNABORTED and connects again, to a live backend.
 * One byte of output per destroyed socket. */
#include "lib/common.h"
#include "lib/maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

SEC("iter/udp")
int skiff_udp_gc(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;
	struct sk_key k = {};
	struct sk_val *v;
	struct sockgc_key g = {};

	if (!sk)
		return 0;
	k.addr = sk->__sk_common.skc_daddr;
	k.port = sk->__sk_common.skc_dport;
	if (!k.addr)
		return 0; /* not connected */
	k.cookie = bpf_get_socket_cookie(sk);
	v = bpf_map_lookup_elem(&skf_sk_v1, &k);
	if (!v)
		return 0; /* not translated by the socket hooks */
	g.backend_id = v->backend_id;
	g.set_id = v->svc_id;
	if (!bpf_map_lookup_elem(&skf_sockgc_v1, &g)) {
		g.set_id = 0;
		if (!bpf_map_lookup_elem(&skf_sockgc_v1, &g))
			return 0;
	}
	if (bpf_sock_destroy((struct sock_common *)sk) == 0)
		bpf_seq_write(ctx->meta->seq, "x", 1);
	return 0;
}
