package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"net/netip"
)

// ErrFull is returned when every subnet of a CIDRSet is taken.
var ErrFull = errors.New("no pod CIDR left in the cluster CIDR")

// maxSubnetBits bounds the subnets of one cluster CIDR to 65536, as
// upstream's cidrset does.
const maxSubnetBits = 16

// CIDRSet hands out the node-sized subnets of one cluster CIDR. It is not
// safe for concurrent use; the controller serialises access.
type CIDRSet struct {
	cluster  netip.Prefix
	nodeBits int
	count    int
	used     []uint64
	free     int
	next     int
}

// NewCIDRSet splits cluster into subnets of prefix length nodeMaskSize.
func NewCIDRSet(cluster netip.Prefix, nodeMaskSize int) (*CIDRSet, error) {
	cluster = cluster.Masked()
	addrBits := cluster.Addr().BitLen()
	if nodeMaskSize < cluster.Bits() || nodeMaskSize > addrBits {
		return nil, fmt.Errorf("node mask size %d must be between the cluster CIDR's %d and %d", nodeMaskSize, cluster.Bits(), addrBits)
	}
	if nodeMaskSize-cluster.Bits() > maxSubnetBits {
		return nil, fmt.Errorf("cluster CIDR %s with node mask size %d makes more than %d subnets", cluster, nodeMaskSize, 1<<maxSubnetBits)
	}
	n := 1 << (nodeMaskSize - cluster.Bits())
	return &CIDRSet{
		cluster:  cluster,
		nodeBits: nodeMaskSize,
		count:    n,
		used:     make([]uint64, (n+63)/64),
		free:     n,
	}, nil
}

// Cluster is the CIDR the set carves.
func (s *CIDRSet) Cluster() netip.Prefix { return s.cluster }

// Free is the number of subnets left.
func (s *CIDRSet) Free() int { return s.free }

// Size is the number of subnets.
func (s *CIDRSet) Size() int { return s.count }

func (s *CIDRSet) isUsed(i int) bool { return s.used[i/64]&(1<<(i%64)) != 0 }

func (s *CIDRSet) set(i int, on bool) {
	if s.isUsed(i) == on {
		return
	}
	if on {
		s.used[i/64] |= 1 << (i % 64)
		s.free--
	} else {
		s.used[i/64] &^= 1 << (i % 64)
		s.free++
	}
}

// AllocateNext takes the next free subnet, going round the set so that a
// released subnet is not reused at once.
func (s *CIDRSet) AllocateNext() (netip.Prefix, error) {
	if s.free == 0 {
		return netip.Prefix{}, fmt.Errorf("%s: %w", s.cluster, ErrFull)
	}
	for j := range s.count {
		i := (s.next + j) % s.count
		if s.used[i/64] == ^uint64(0) {
			continue
		}
		if !s.isUsed(i) {
			s.set(i, true)
			s.next = (i + 1) % s.count
			return s.subnet(i), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s: %w", s.cluster, ErrFull)
}

// Occupy marks the subnets p covers as used (p is a node's existing
// podCIDR). It fails when p is not inside the cluster CIDR.
func (s *CIDRSet) Occupy(p netip.Prefix) error {
	first, last, err := s.indexes(p)
	if err != nil {
		return err
	}
	for i := first; i <= last; i++ {
		s.set(i, true)
	}
	return nil
}

// Release frees the subnets p covers.
func (s *CIDRSet) Release(p netip.Prefix) error {
	first, last, err := s.indexes(p)
	if err != nil {
		return err
	}
	for i := first; i <= last; i++ {
		s.set(i, false)
	}
	return nil
}

// Contains reports whether p lies inside the cluster CIDR.
func (s *CIDRSet) Contains(p netip.Prefix) bool {
	_, _, err := s.indexes(p)
	return err == nil
}

// indexes returns the range of subnet indexes p covers.
func (s *CIDRSet) indexes(p netip.Prefix) (int, int, error) {
	p = p.Masked()
	if p.Addr().BitLen() != s.cluster.Addr().BitLen() || p.Bits() < s.cluster.Bits() || !s.cluster.Contains(p.Addr()) {
		return 0, 0, fmt.Errorf("%s is not inside cluster CIDR %s", p, s.cluster)
	}
	addrBits := s.cluster.Addr().BitLen()
	off := new(big.Int).Sub(addrInt(p.Addr()), addrInt(s.cluster.Addr()))
	first := int(new(big.Int).Rsh(off, uint(addrBits-s.nodeBits)).Int64())
	last := first
	if p.Bits() < s.nodeBits {
		last = first + (1 << (s.nodeBits - p.Bits())) - 1
	}
	return first, last, nil
}

// subnet returns the i-th subnet.
func (s *CIDRSet) subnet(i int) netip.Prefix {
	addrBits := s.cluster.Addr().BitLen()
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(addrBits-s.nodeBits))
	a := intAddr(new(big.Int).Add(addrInt(s.cluster.Addr()), off), s.cluster.Addr().Is4())
	return netip.PrefixFrom(a, s.nodeBits)
}

func addrInt(a netip.Addr) *big.Int {
	b := a.AsSlice()
	return new(big.Int).SetBytes(b)
}

func intAddr(v *big.Int, is4 bool) netip.Addr {
	n := 16
	if is4 {
		n = 4
	}
	b := make([]byte, n)
	v.FillBytes(b)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// popcount is used by tests to cross-check Free.
func (s *CIDRSet) popcount() int {
	n := 0
	for _, w := range s.used {
		n += bits.OnesCount64(w)
	}
	return n
}
