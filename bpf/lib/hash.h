/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Flow hash for Maglev and SNAT port choice: Bob Jenkins' lookup3 final
 * mix over three words (the same mixing the kernel's jhash_3words uses),
 * written out here so the result depends only on the 5-tuple and the seed
 * and is identical on every node. */
#ifndef SKIFF_HASH_H
#define SKIFF_HASH_H

#include "common.h"

#define SKF_HASH_SEED 0x5c1ff0a1u

static __always_inline __u32 rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 hash_3words(__u32 a, __u32 b, __u32 c)
{
	a += 0xdeadbeef + SKF_HASH_SEED;
	b += 0xdeadbeef + SKF_HASH_SEED;
	c += 0xdeadbeef + SKF_HASH_SEED;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

/* Hash of a 5-tuple; addresses and ports as raw network-order values. */
static __always_inline __u32 hash_flow(__be32 saddr, __be32 daddr, __be16 sport,
				       __be16 dport, __u8 proto)
{
	return hash_3words(saddr, daddr, ((__u32)sport << 16 | dport) ^ proto);
}

#endif /* SKIFF_HASH_H */
