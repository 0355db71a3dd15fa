/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internet checksum helpers for XDP, where the skb csum helpers do not
 * exist: incremental updates (RFC 1624) and checksums from scratch over
 * small buffers with bpf_csum_diff. One's complement sums do not depend on
 * byte order, so fields are used as raw memory-order words. */
#ifndef SKIFF_CSUM_H
#define SKIFF_CSUM_H

#include "common.h"

static __always_inline __u16 csum_fold32(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Sum of the 16-bit halves of a 32-bit word. */
static __always_inline __u64 csum_word32(__u32 w)
{
	return (w & 0xffff) + (w >> 16);
}

/* Accumulates the change from -> to into a running diff (for csum_apply). */
static __always_inline __u64 csum_diff4(__u64 acc, __be32 from, __be32 to)
{
	return acc + csum_word32(~from) + csum_word32(to);
}

static __always_inline __u64 csum_diff2(__u64 acc, __be16 from, __be16 to)
{
	return acc + (__u16)~from + (__u16)to;
}

/* Applies an accumulated diff to a checksum field: HC' = ~(~HC + diff). */
static __always_inline __u16 csum_apply(__u16 check, __u64 diff)
{
	return ~csum_fold32((__u16)~check + diff);
}

/* Folds the 32-bit partial sum bpf_csum_diff returns into a checksum. */
static __always_inline __u16 csum_finish(__s64 partial)
{
	return ~csum_fold32((__u64)(__u32)partial);
}

#endif /* SKIFF_CSUM_H */
