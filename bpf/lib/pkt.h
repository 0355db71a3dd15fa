/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing shared by TC and XDP: Ethernet, IPv4, TCP/UDP. */
#ifndef SKIFF_PKT_H
#define SKIFF_PKT_H

#include "common.h"

/* The parts of a packet the load balancer looks at. Offsets are from the
 * start of the Ethernet header. */
struct pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* byte 13 of the TCP header */
	__u16 l4_off;
	__u16 tot_len; /* IPv4 total length, host order */
	__u16 pad;
};

#define L3_OFF ((__u16)sizeof(struct ethhdr))
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* Parses data..data_end. Returns 0 for an unfragmented (or first-fragment-
 * free) IPv4 TCP or UDP packet whose L4 ports are in the linear data, -1
 * for anything the load balancer leaves alone. */
static __always_inline int pkt_parse(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return -1;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return -1;
	/* Fragments carry no ports (or not all of the datagram): left to
	 * the stack. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	p->l4_off = L3_OFF + ihl;
	p->proto = ip->protocol;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->tot_len = bpf_ntohs(ip->tot_len);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + L3_OFF + ihl;

		if ((void *)(th + 1) > data_end)
			return -1;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
	} else {
		struct udphdr *uh = data + L3_OFF + ihl;

		if ((void *)(uh + 1) > data_end)
			return -1;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->tcp_flags = 0;
	}
	return 0;
}

/* Offset of the L4 checksum field. */
static __always_inline __u32 pkt_l4_csum_off(const struct pkt *p)
{
	return p->l4_off + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
						   : offsetof(struct udphdr, check));
}

#endif /* SKIFF_PKT_H */
