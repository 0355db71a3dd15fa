//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TC ingress on the node uplink, companion of bpf_xdp.c: a packet that XDP
 * translated for a remote backend but could not transmit because the next
 * hop's MAC address is not resolved yet arrives here marked in its XDP
 * metadata; bpf_redirect_neigh resolves the neighbour and sends it. Every
 * other packet passes untouched. */
#include "lib/common.h"
#include "lib/config.h"
#include "lib/xdpmeta.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";


SEC("tcx/ingress")
int skiff_uplink(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	struct xdp_meta *meta = (void *)(long)skb->data_meta;

	if ((void *)(meta + 1) > data)
		return TC_ACT_OK;
	if (meta->magic != XDP_META_MAGIC || meta->node_ip != cfg_node_ip)
		return TC_ACT_OK;
	return bpf_redirect_neigh(meta->ifindex, 0, 0, 0);
}
