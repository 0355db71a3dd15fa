//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-packet load balancing on a pod's host-side veth (tcx ingress: packets
 * from the pod; tcx egress: packets to the pod). From the pod: conntrack
 * first (established flows in either direction are one hash lookup), then
 * the Service lookup, backend choice, DNAT and a conntrack pair; a pod that
 * reaches itself through its Service (hairpin) is also SNATed to the
 * service address and the packet sent straight back into the pod. To the
 * pod: reverse NAT of replies to the pod's own translated flows. This path
 * serves traffic the socket hooks did not translate (socket LB off, or
 * sockets of namespaces the node does not own) and the replies of
 * NodePort flows that XDP delivered to a local backend. */
#include "lib/common.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/hash.h"
#include "lib/lb.h"
#include "lib/reply.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Rewrites the packet's tuple, fixing the IPv4 and L4 checksums (UDP
 * datagrams without a checksum keep none). */
static __always_inline int lxc_rewrite(struct __sk_buff *skb, const struct pkt *p, __be32 saddr,
				       __be32 daddr, __be16 sport, __be16 dport)
{
	__u32 csum_off = pkt_l4_csum_off(p);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	if (saddr != p->saddr) {
		if (bpf_l4_csum_replace(skb, csum_off, p->saddr, saddr,
					BPF_F_PSEUDO_HDR | mangled | sizeof(saddr)) ||
		    bpf_l3_csum_replace(skb, L3_OFF + offsetof(struct iphdr, check), p->saddr,
					saddr, sizeof(saddr)) ||
		    bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct iphdr, saddr), &saddr,
					sizeof(saddr), 0))
			return -1;
	}
	if (daddr != p->daddr) {
		if (bpf_l4_csum_replace(skb, csum_off, p->daddr, daddr,
					BPF_F_PSEUDO_HDR | mangled | sizeof(daddr)) ||
		    bpf_l3_csum_replace(skb, L3_OFF + offsetof(struct iphdr, check), p->daddr,
					daddr, sizeof(daddr)) ||
		    bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct iphdr, daddr), &daddr,
					sizeof(daddr), 0))
			return -1;
	}
	if (sport != p->sport) {
		if (bpf_l4_csum_replace(skb, csum_off, p->sport, sport, mangled | sizeof(sport)) ||
		    bpf_skb_store_bytes(skb, p->l4_off, &sport, sizeof(sport), 0))
			return -1;
	}
	if (dport != p->dport) {
		if (bpf_l4_csum_replace(skb, csum_off, p->dport, dport, mangled | sizeof(dport)) ||
		    bpf_skb_store_bytes(skb, p->l4_off + 2, &dport, sizeof(dport), 0))
			return -1;
	}
	return 0;
}

/* Sends the packet back out of the veth it arrived on, into the pod. */
static __always_inline int lxc_bounce(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_SHOT;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return bpf_redirect(skb->ifindex, 0);
}

/* Routes a reverse-NATed reply of a NodePort/LoadBalancer flow that XDP
 * delivered to this pod: its source is now the frontend, often the node's
 * own address, which the stack would drop as a martian coming from a pod.
 * It leaves by the fib's egress device instead. */
static __always_inline int lxc_fib_redirect(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + L3_OFF;
	struct bpf_fib_lookup fib = {};
	long rc;

	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	fib.family = 2; /* AF_INET */
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	return TC_ACT_OK;
}

/* Answers a connection attempt to a Service without endpoints. */
static __always_inline int lxc_refuse(struct __sk_buff *skb, const struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (p->proto == IPPROTO_TCP) {
		struct reply_rst r = {};

		if (reply_build_rst(data, data_end, p, &r))
			return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
		if (bpf_skb_change_tail(skb, REPLY_RST_LEN, 0) ||
		    bpf_skb_store_bytes(skb, 0, &r.eth, REPLY_RST_LEN, 0))
			return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
	} else {
		struct reply_icmp r = {};

		if (reply_build_icmp(data, data_end, p, &r))
			return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
		if (bpf_skb_change_tail(skb, REPLY_ICMP_LEN, 0) ||
		    bpf_skb_store_bytes(skb, 0, &r.eth, REPLY_ICMP_LEN, 0))
			return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
	}
	return bpf_redirect(skb->ifindex, 0);
}

/* Applies a conntrack entry. Returns -1 when the entry is stale (its
 * backend was deleted) and the packet should be treated as new. */
static __always_inline int lxc_apply_ct(struct __sk_buff *skb, const struct pkt *p,
					struct ct_val *cv, __u64 now)
{
	__be32 saddr = cv->nat_saddr, daddr = cv->nat_daddr;
	__be16 sport = cv->nat_sport, dport = cv->nat_dport;
	__u32 be_id = cv->backend_id, svc_id = cv->svc_id;
	__u8 kind = cv->kind, flags = cv->flags;

	if (!lb_backend(be_id))
		return -1;
	ct_touch(cv, p, now);
	if (kind == CT_FWD)
		lb_count_pkt(svc_id, be_id, skb->len);
	if (lxc_rewrite(skb, p, saddr, daddr, sport, dport))
		return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
	if (flags & CT_F_HAIRPIN)
		return lxc_bounce(skb);
	if (flags & CT_F_FIB)
		return lxc_fib_redirect(skb);
	return TC_ACT_OK;
}

static __always_inline int lxc_load(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (pkt_parse(data, data_end, p) == 0)
		return 0;
	/* Headers may sit beyond the linear part: pull and retry once. */
	if (bpf_skb_pull_data(skb, sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr)) &&
	    bpf_skb_pull_data(skb, skb->len))
		return -1;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	return pkt_parse(data, data_end, p);
}

SEC("tcx/ingress")
int skiff_from_pod(struct __sk_buff *skb)
{
	struct lb_svc_val *svc;
	struct lb_backend *be;
	struct ct_val *cv;
	struct pkt p;
	__be32 saddr, be_addr;
	__be16 be_port;
	__u32 be_id, svc_id;
	__u8 rev_flags = 0;
	__u64 now;
	int ret;

	if (lxc_load(skb, &p))
		return TC_ACT_OK;
	cv = ct_lookup(&p);
	if (cv && !(cv->flags & CT_F_XDP)) {
		now = ct_now();
		if (!ct_syn_replaces(&p, cv, now)) {
			ret = lxc_apply_ct(skb, &p, cv, now);
			if (ret >= 0)
				return ret;
		}
	}
	svc = lb_svc_lookup(p.daddr, p.dport, p.proto, SCOPE_INTERNAL);
	if (!svc)
		return TC_ACT_OK;
	if (svc->count == 0) {
		if (svc->flags & SVC_F_DROP)
			return lb_drop(DROP_NO_LOCAL, TC_ACT_SHOT);
		return lxc_refuse(skb, &p);
	}
	svc_id = svc->id;
	be_id = lb_select(svc, p.saddr, AFF_ADDR, 0, LB_PICK_RANDOM, NULL);
	be = lb_backend(be_id);
	if (!be)
		return lb_drop(DROP_NO_BACKEND, TC_ACT_SHOT);
	be_addr = be->addr;
	be_port = be->port;
	saddr = p.saddr;
	if (be_addr == p.saddr) {
		/* Hairpin: the pod would see its own address as the
		 * source; use the service address instead. */
		saddr = p.daddr;
		rev_flags = CT_F_HAIRPIN;
	}
	if (ct_create(&p, saddr, be_addr, p.sport, be_port, be_id, svc_id, rev_flags, rev_flags,
		      BPF_ANY))
		return lb_drop(DROP_CT_INSERT, TC_ACT_SHOT);
	lb_count_pkt(svc_id, be_id, skb->len);
	if (lxc_rewrite(skb, &p, saddr, be_addr, p.sport, be_port))
		return lb_drop(DROP_REWRITE, TC_ACT_SHOT);
	if (rev_flags & CT_F_HAIRPIN)
		return lxc_bounce(skb);
	return TC_ACT_OK;
}

SEC("tcx/egress")
int skiff_to_pod(struct __sk_buff *skb)
{
	struct ct_val *cv;
	struct pkt p;
	int ret;

	if (lxc_load(skb, &p))
		return TC_ACT_OK;
	cv = ct_lookup(&p);
	if (!cv || cv->kind != CT_REV || (cv->flags & CT_F_XDP))
		return TC_ACT_OK;
	ret = lxc_apply_ct(skb, &p, cv, ct_now());
	return ret >= 0 ? ret : TC_ACT_OK;
}
