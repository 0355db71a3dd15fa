//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* North-south load balancing on the node uplink (XDP): NodePort on the
 * node's addresses, LoadBalancer ingress IPs and externalIPs.
 *
 * A new flow picks its backend with Maglev (so every node picks the same
 * backend for the same flow and backend set). A local backend gets DNAT
 * and XDP_PASS: the kernel routes the packet to the pod, and the pod's
 * reply is reverse-NATed by the TC program on its veth. A remote backend
 * gets DNAT plus SNAT to the node address (with a source port reserved in
 * conntrack), a fib lookup, new MAC addresses and XDP_TX; its reply comes
 * back to this uplink and is translated here. externalTrafficPolicy Local
 * uses node-local backends only and never SNATs (the client address is
 * kept); with none on this node the packet is dropped, as kube-proxy does.
 * A Service without any endpoint is answered with a TCP RST or an ICMP
 * port unreachable so the client fails at once. */
#include "lib/common.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/hash.h"
#include "lib/csum.h"
#include "lib/lb.h"
#include "lib/reply.h"
#include "lib/xdpmeta.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
/* SNAT source ports tried for a new flow to a remote backend, probing
 * from the flow hash. A closed flow keeps its port until the conntrack GC
 * deletes its pair (CT_CLOSE_TIMEOUT_NS after its last packet, plus up to
 * one GC interval), so a busy backend's range is partly taken: with a
 * fraction f of it taken a flow finds no port with probability
 * f^SNAT_TRIES (4 tries lost 1-12 of 10,000 bench connections at f near
 * 0.15 before closed flows were collected; 32 make it negligible below
 * f = 0.5). */
#define SNAT_TRIES 32
/* Marks a packet XDP has translated but could not transmit for want of a
 * neighbour entry: the uplink's TC program finishes it with
 * bpf_redirect_neigh (see bpf_host.c). */

/* Rewrites the tuple in place with incremental checksum updates. */
static __always_inline int xdp_rewrite(struct xdp_md *ctx, const struct pkt *p, __be32 saddr,
				       __be32 daddr, __be16 sport, __be16 dport)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + L3_OFF;
	__u64 l3 = 0, l4 = 0;
	__sum16 *check;
	__be16 *ports;

	if ((void *)(ip + 1) > data_end)
		return -1;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + p->l4_off;

		if ((void *)(th + 1) > data_end)
			return -1;
		check = &th->check;
		ports = &th->source;
	} else {
		struct udphdr *uh = data + p->l4_off;

		if ((void *)(uh + 1) > data_end)
			return -1;
		check = &uh->check;
		ports = &uh->source;
	}
	l3 = csum_diff4(l3, p->saddr, saddr);
	l3 = csum_diff4(l3, p->daddr, daddr);
	l4 = csum_diff2(l3, p->sport, sport);
	l4 = csum_diff2(l4, p->dport, dport);
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = csum_apply(ip->check, l3);
	ports[0] = sport;
	ports[1] = dport;
	if (p->proto == IPPROTO_TCP || *check) {
		*check = csum_apply(*check, l4);
		if (p->proto == IPPROTO_UDP && !*check)
			*check = 0xffff;
	}
	return 0;
}

/* Routes a translated packet: fib lookup, MACs, TTL, transmit. */
static __always_inline int xdp_forward(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + L3_OFF;
	struct bpf_fib_lookup fib = {};
	struct xdp_meta *meta;
	__u64 diff;
	long rc;

	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->ttl <= 1)
		return XDP_PASS;
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		data = (void *)(long)ctx->data;
		meta = (void *)(long)ctx->data_meta;
		if ((void *)(meta + 1) > data)
			return lb_drop(DROP_REWRITE, XDP_DROP);
		meta->magic = XDP_META_MAGIC;
		meta->ifindex = fib.ifindex;
		meta->node_ip = cfg_node_ip;
		return XDP_PASS;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return lb_drop(DROP_NO_ROUTE, XDP_DROP);
	/* TTL lives in the high byte of the word at offset 8 (ttl, protocol). */
	diff = csum_diff2(0, *(__be16 *)&ip->ttl, 0);
	ip->ttl--;
	diff = csum_diff2(diff, 0, *(__be16 *)&ip->ttl);
	ip->check = csum_apply(ip->check, diff);
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

/* Changes the packet's length by delta: growing takes headroom (always
 * there for XDP), shrinking cuts the tail. The content is rewritten
 * whole afterwards. */
static __always_inline int xdp_resize(struct xdp_md *ctx, int delta)
{
	if (delta > 0)
		return bpf_xdp_adjust_head(ctx, -delta);
	if (delta < 0)
		return bpf_xdp_adjust_tail(ctx, delta);
	return 0;
}

static __always_inline int xdp_refuse(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int len = data_end - data;

	if (p->proto == IPPROTO_TCP) {
		struct reply_rst r = {};

		if (reply_build_rst(data, data_end, p, &r))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		if (xdp_resize(ctx, (int)REPLY_RST_LEN - len))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + REPLY_RST_LEN > data_end)
			return lb_drop(DROP_REWRITE, XDP_DROP);
		__builtin_memcpy(data, &r.eth, REPLY_RST_LEN);
	} else {
		struct reply_icmp r = {};

		if (reply_build_icmp(data, data_end, p, &r))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		if (xdp_resize(ctx, (int)REPLY_ICMP_LEN - len))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + REPLY_ICMP_LEN > data_end)
			return lb_drop(DROP_REWRITE, XDP_DROP);
		__builtin_memcpy(data, &r.eth, REPLY_ICMP_LEN);
	}
	return XDP_TX;
}

/* Applies an XDP conntrack entry; -1 when its backend is gone. */
static __always_inline int xdp_apply_ct(struct xdp_md *ctx, const struct pkt *p,
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
		lb_count_pkt(svc_id, be_id, ctx->data_end - ctx->data);
	if (xdp_rewrite(ctx, p, saddr, daddr, sport, dport))
		return lb_drop(DROP_REWRITE, XDP_DROP);
	if (flags & CT_F_FIB)
		return xdp_forward(ctx);
	return XDP_PASS;
}

SEC("xdp")
int skiff_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lb_svc_val *svc;
	struct lb_backend *be;
	struct ct_val *cv;
	struct pkt p;
	__be32 be_addr;
	__be16 be_port, snat_port = 0;
	__u32 be_id, svc_id, hash, range;
	__u8 be_flags, svc_flags;
	__u64 now;
	int ret, i;

	if (pkt_parse(data, data_end, &p))
		return XDP_PASS;
	cv = ct_lookup(&p);
	if (cv && (cv->flags & CT_F_XDP)) {
		now = ct_now();
		if (!ct_syn_replaces(&p, cv, now)) {
			ret = xdp_apply_ct(ctx, &p, cv, now);
			if (ret >= 0)
				return ret;
		}
	}
	svc = lb_svc_lookup(p.daddr, p.dport, p.proto, SCOPE_EXTERNAL);
	if (!svc || !(svc->flags & SVC_F_EXTERNAL))
		return XDP_PASS;
	if (svc->count == 0) {
		if (svc->flags & SVC_F_DROP)
			return lb_drop(DROP_NO_LOCAL, XDP_DROP);
		return xdp_refuse(ctx, &p);
	}
	svc_id = svc->id;
	svc_flags = svc->flags;
	hash = hash_flow(p.saddr, p.daddr, p.sport, p.dport, p.proto);
	be_id = lb_select(svc, p.saddr, AFF_ADDR, hash, LB_PICK_MAGLEV, NULL);
	be = lb_backend(be_id);
	if (!be)
		return lb_drop(DROP_NO_BACKEND, XDP_DROP);
	be_addr = be->addr;
	be_port = be->port;
	be_flags = be->flags;

	if ((be_flags & BE_F_LOCAL) || (svc_flags & SVC_F_LOCAL)) {
		/* Local backend: DNAT and let the kernel deliver it; the
		 * reply is reverse-NATed on the pod's veth (TC). */
		if (ct_create(&p, p.saddr, be_addr, p.sport, be_port, be_id, svc_id, CT_F_XDP,
			      CT_F_FIB, BPF_ANY))
			return lb_drop(DROP_CT_INSERT, XDP_DROP);
		lb_count_pkt(svc_id, be_id, data_end - data);
		if (xdp_rewrite(ctx, &p, p.saddr, be_addr, p.sport, be_port))
			return lb_drop(DROP_REWRITE, XDP_DROP);
		return XDP_PASS;
	}

	/* Remote backend: SNAT to the node address with a free port. */
	if (!cfg_node_ip)
		return lb_drop(DROP_NO_NODE_IP, XDP_DROP);
	range = cfg_snat_max - cfg_snat_min + 1;
	for (i = 0; i < SNAT_TRIES; i++) {
		__be16 port = bpf_htons((__u16)(cfg_snat_min + (hash + i * 7919u) % range));

		if (ct_create(&p, cfg_node_ip, be_addr, port, be_port, be_id, svc_id,
			      CT_F_XDP | CT_F_FIB | CT_F_SNAT, CT_F_XDP | CT_F_FIB | CT_F_SNAT,
			      BPF_NOEXIST) == 0) {
			snat_port = port;
			break;
		}
	}
	if (!snat_port)
		return lb_drop(DROP_SNAT_PORTS, XDP_DROP);
	lb_count_pkt(svc_id, be_id, data_end - data);
	if (xdp_rewrite(ctx, &p, cfg_node_ip, be_addr, snat_port, be_port))
		return lb_drop(DROP_REWRITE, XDP_DROP);
	return xdp_forward(ctx);
}
