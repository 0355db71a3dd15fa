package ebpf

import "math/bits"

// hashSeed and hashFlow mirror bpf/lib/hash.h: the flow hash XDP uses to
// index Maglev tables and pick SNAT ports. Arguments are the raw
// network-order values as the program loads them (see be32, be16).
const hashSeed = 0x5c1ff0a1

// hashInit is (0xdeadbeef + hashSeed) mod 2^32, as the C code computes it.
const hashInit = uint32((0xdeadbeef + hashSeed) & 0xffffffff)

func hash3(a, b, c uint32) uint32 {
	a += hashInit
	b += hashInit
	c += hashInit
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// hashFlow is hash_flow() of bpf/lib/hash.h.
func hashFlow(saddr, daddr uint32, sport, dport uint16, proto uint8) uint32 {
	return hash3(saddr, daddr, (uint32(sport)<<16|uint32(dport))^uint32(proto))
}
