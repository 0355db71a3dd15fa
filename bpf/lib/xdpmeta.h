/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* XDP metadata by which bpf_xdp.c hands a translated packet to the uplink's
 * TC program (bpf_host.c) when the next hop's MAC is not yet resolved. */
#ifndef SKIFF_XDPMETA_H
#define SKIFF_XDPMETA_H

#include "common.h"

#define XDP_META_MAGIC 0x5c1f0001u

/* node_ip names the node whose XDP wrote the metadata: a veth keeps an
 * skb's metadata length across namespaces, so a packet forwarded this way
 * can reach the next node's uplink still carrying it. */
struct xdp_meta {
	__u32 magic;
	__u32 ifindex;
	__be32 node_ip;
};

#endif /* SKIFF_XDPMETA_H */
