//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket-level load balancing (cgroup sock_addr hooks on the cgroup2 root):
 * connect4 and sendmsg4 rewrite a Service address to a backend before the
 * kernel routes anything, so ClusterIP traffic from pods and hosts needs no
 * per-packet NAT; recvmsg4 and getpeername4 show the Service address back
 * to the application. Several nodes of a lab share one kernel and one
 * cgroup2 root, so each node's programs act only on sockets whose network
 * namespace is listed in that node's skf_netns_v1. */
#include "lib/common.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Whose namespace the socket is in: NETNS_HOST, NETNS_POD, or 0 when it
 * is not this node's. */
static __always_inline __u32 sock_owner(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);
	__u32 *owner = bpf_map_lookup_elem(&skf_netns_v1, &cookie);

	return owner ? *owner : 0;
}

/* Translates ctx's destination when it is a Service frontend. Returns the
 * hook's verdict: 1 to let the call proceed, 0 (with ECONNREFUSED set as
 * the syscall's error) for a Service without usable endpoints. */
static __always_inline int sock_fwd(struct bpf_sock_addr *ctx, int sendmsg)
{
	__u8 proto = ctx->protocol;
	struct sk_key fk = {}, rk = {};
	struct sk_val fv = {}, rv = {};
	struct lb_svc_val *svc;
	struct lb_backend *be;
	struct sk_val *cur;
	__be32 vip = ctx->user_ip4;
	__be16 vport = (__be16)ctx->user_port;
	__u32 be_id = 0, slot = NO_SLOT, owner;
	__u64 cookie;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	svc = lb_svc_lookup(vip, vport, proto, SCOPE_INTERNAL);
	if (!svc)
		return 1;
	owner = sock_owner(ctx);
	if (!owner)
		return 1;
	if (proto == IPPROTO_UDP && !sendmsg && owner == NETNS_POD)
		return 1;
	if (svc->count == 0) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	cookie = bpf_get_socket_cookie(ctx);
	fk.cookie = cookie;
	fk.addr = vip;
	fk.port = vport;
	if (sendmsg) {
		/* An unconnected UDP socket keeps its backend per service
		 * address while that backend holds its slot in the Service's
		 * set: once it leaves the set (even if it still backs another
		 * Service, or its id was reused), the next datagram picks
		 * again, as a flushed conntrack entry would. */
		cur = bpf_map_lookup_elem(&skf_sk_v1, &fk);
		if (cur && cur->svc_id == svc->id && lb_holds_slot(svc, cur->slot, cur->backend_id)) {
			be_id = cur->backend_id;
			slot = cur->slot;
		}
	}
	if (!be_id)
		be_id = lb_select(svc, bpf_get_netns_cookie(ctx), AFF_NETNS, 0, LB_PICK_RANDOM, &slot);
	be = lb_backend(be_id);
	if (!be) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	ctx->user_ip4 = be->addr;
	ctx->user_port = be->port;

	rk.cookie = cookie;
	rk.addr = be->addr;
	rk.port = be->port;
	rv.addr = vip;
	rv.port = vport;
	rv.backend_id = be_id;
	rv.svc_id = svc->id;
	bpf_map_update_elem(&skf_sk_v1, &rk, &rv, BPF_ANY);
	if (sendmsg) {
		fv.addr = be->addr;
		fv.port = be->port;
		fv.slot = slot;
		fv.backend_id = be_id;
		fv.svc_id = svc->id;
		bpf_map_update_elem(&skf_sk_v1, &fk, &fv, BPF_ANY);
	}
	lb_count_sock(svc->id, be_id);
	return 1;
}

/* Shows the Service address instead of the backend's. */
static __always_inline int sock_rev(struct bpf_sock_addr *ctx)
{
	struct sk_key k = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct sk_val *v = bpf_map_lookup_elem(&skf_sk_v1, &k);

	if (v) {
		ctx->user_ip4 = v->addr;
		ctx->user_port = v->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int skiff_connect4(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 0);
}

SEC("cgroup/sendmsg4")
int skiff_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 1);
}

SEC("cgroup/recvmsg4")
int skiff_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx);
}

SEC("cgroup/getpeername4")
int skiff_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx);
}
