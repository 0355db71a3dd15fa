/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Refusing a connection to a Service without endpoints: a TCP RST for TCP
 * and an ICMP port unreachable for UDP, built on the stack from the
 * offending packet and then written over it by the caller (which resizes
 * the packet first: XDP with bpf_xdp_adjust_tail, TC with
 * bpf_skb_change_tail). The reply comes from the service address, so the
 * client's connect() or its connected UDP socket fails at once with
 * ECONNREFUSED. */
#ifndef SKIFF_REPLY_H
#define SKIFF_REPLY_H

#include "common.h"
#include "csum.h"
#include "pkt.h"

/* The leading pad keeps the IPv4 header 4-byte aligned on the stack (the
 * verifier wants aligned stack access); the reply is written from eth on. */
struct reply_rst {
	__u8 pad[2];
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
};

struct reply_icmp {
	__u8 pad[2];
	struct ethhdr eth;
	struct iphdr ip;
	struct icmphdr icmp;
	struct iphdr orig_ip;
	__u8 orig_l4[8];
};

#define REPLY_RST_LEN (sizeof(struct reply_rst) - offsetof(struct reply_rst, eth))
#define REPLY_ICMP_LEN (sizeof(struct reply_icmp) - offsetof(struct reply_icmp, eth))

struct pseudo_hdr {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

static __always_inline void reply_ip(struct iphdr *ip, const struct pkt *p, __u8 proto, __u16 len)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(len);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = p->daddr;
	ip->daddr = p->saddr;
	ip->check = csum_finish(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
}

static __always_inline void reply_eth(struct ethhdr *eth, const struct ethhdr *orig)
{
	__builtin_memcpy(eth->h_dest, orig->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, orig->h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
}

/* Builds a RST answering the TCP segment at data. Returns -1 when the
 * segment must not be answered (it is a RST itself) or cannot be parsed. */
static __always_inline int reply_build_rst(void *data, void *data_end, const struct pkt *p,
					   struct reply_rst *r)
{
	struct ethhdr *eth = data;
	struct tcphdr *th = data + p->l4_off;
	struct pseudo_hdr ph = {};
	__u32 seq, ack, doff, iphl, plen;
	__u8 flags;
	__s64 sum;

	if ((void *)(eth + 1) > data_end || (void *)(th + 1) > data_end)
		return -1;
	if (p->tcp_flags & TCP_FLAG_RST)
		return -1;
	doff = (((__u8 *)th)[12] >> 4) * 4;
	iphl = p->l4_off - L3_OFF;
	plen = p->tot_len - iphl - doff;
	if (p->tcp_flags & TCP_FLAG_SYN)
		plen++;
	if (p->tcp_flags & TCP_FLAG_FIN)
		plen++;
	if (p->tcp_flags & TCP_FLAG_ACK) {
		seq = th->ack_seq;
		ack = 0;
		flags = TCP_FLAG_RST;
	} else {
		seq = 0;
		ack = bpf_htonl(bpf_ntohl(th->seq) + plen);
		flags = TCP_FLAG_RST | TCP_FLAG_ACK;
	}
	reply_eth(&r->eth, eth);
	reply_ip(&r->ip, p, IPPROTO_TCP, sizeof(r->ip) + sizeof(r->tcp));
	__builtin_memset(&r->tcp, 0, sizeof(r->tcp));
	r->tcp.source = p->dport;
	r->tcp.dest = p->sport;
	r->tcp.seq = seq;
	r->tcp.ack_seq = ack;
	((__u8 *)&r->tcp)[12] = 5 << 4;
	((__u8 *)&r->tcp)[13] = flags;
	ph.saddr = r->ip.saddr;
	ph.daddr = r->ip.daddr;
	ph.proto = IPPROTO_TCP;
	ph.len = bpf_htons(sizeof(r->tcp));
	sum = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)&r->tcp, sizeof(r->tcp), (__u32)sum);
	r->tcp.check = csum_finish(sum);
	return 0;
}

/* Builds an ICMP port unreachable quoting the UDP datagram at data (its
 * IPv4 header without options and the first 8 bytes). Returns -1 when the
 * datagram has IP options or is too short. */
static __always_inline int reply_build_icmp(void *data, void *data_end, const struct pkt *p,
					    struct reply_icmp *r)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + L3_OFF;
	__u8 *l4 = data + p->l4_off;

	if (p->l4_off != L3_OFF + sizeof(struct iphdr))
		return -1;
	if ((void *)(eth + 1) > data_end || (void *)(ip + 1) > data_end ||
	    (void *)(l4 + 8) > data_end)
		return -1;
	__builtin_memcpy(&r->orig_ip, ip, sizeof(r->orig_ip));
	__builtin_memcpy(r->orig_l4, l4, sizeof(r->orig_l4));
	reply_eth(&r->eth, eth);
	reply_ip(&r->ip, p, IPPROTO_ICMP,
		 sizeof(r->ip) + sizeof(r->icmp) + sizeof(r->orig_ip) + sizeof(r->orig_l4));
	__builtin_memset(&r->icmp, 0, sizeof(r->icmp));
	r->icmp.type = ICMP_DEST_UNREACH;
	r->icmp.code = ICMP_PORT_UNREACH;
	r->icmp.checksum = csum_finish(bpf_csum_diff(0, 0, (__be32 *)&r->icmp,
						     sizeof(r->icmp) + sizeof(r->orig_ip) +
							     sizeof(r->orig_l4),
						     0));
	return 0;
}

#endif /* SKIFF_REPLY_H */
