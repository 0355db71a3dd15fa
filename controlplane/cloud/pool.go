package cloud

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Errors of the address pool, checked with errors.Is.
var (
	ErrExhausted = errors.New("no available IPs")
	ErrNotInPool = errors.New("not in the pool")
	ErrInUse     = errors.New("already in use")
	ErrNoFamily  = errors.New("the pool has no addresses of this IP family")
)

// ipRange is an inclusive range of addresses of one family.
type ipRange struct {
	first, last netip.Addr
}

func (r ipRange) contains(a netip.Addr) bool {
	return a.BitLen() == r.first.BitLen() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

func (r ipRange) size() *big.Int {
	n := new(big.Int).Sub(new(big.Int).SetBytes(r.last.AsSlice()), new(big.Int).SetBytes(r.first.AsSlice()))
	return n.Add(n, big.NewInt(1))
}

// ParsePool returns an empty Pool over --lb-pool entries: CIDRs ("192.168.10.0/28",
// "fd00:lb::/120") and ranges ("192.168.10.10-192.168.10.20"); a single
// address is a range of one. For IPv4 CIDRs of /30 and wider the network
// and broadcast addresses are left out, since clients on the segment treat
// them specially. Entries may not overlap.
func ParsePool(entries []string) (*Pool, error) {
	var out []ipRange
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var r ipRange
		switch {
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("lb pool entry %q: %w", e, err)
			}
			p = p.Masked()
			r.first, r.last = p.Addr(), lastAddr(p)
			if p.Addr().Is4() && p.Bits() <= 30 {
				r.first, r.last = r.first.Next(), r.last.Prev()
			}
		case strings.Contains(e, "-"):
			a, b, _ := strings.Cut(e, "-")
			first, err1 := netip.ParseAddr(strings.TrimSpace(a))
			last, err2 := netip.ParseAddr(strings.TrimSpace(b))
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("lb pool entry %q: %w", e, err)
			}
			if first.BitLen() != last.BitLen() || first.Compare(last) > 0 {
				return nil, fmt.Errorf("lb pool entry %q: the range must go upwards within one IP family", e)
			}
			r.first, r.last = first, last
		default:
			a, err := netip.ParseAddr(e)
			if err != nil {
				return nil, fmt.Errorf("lb pool entry %q: %w", e, err)
			}
			r.first, r.last = a, a
		}
		r.first, r.last = r.first.Unmap(), r.last.Unmap()
		for _, o := range out {
			if o.contains(r.first) || o.contains(r.last) || r.contains(o.first) {
				return nil, fmt.Errorf("lb pool entry %q overlaps %s-%s", e, o.first, o.last)
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("lb pool is empty")
	}
	return &Pool{ranges: out, owner: map[netip.Addr]string{}, held: map[string][]netip.Addr{}}, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Pool hands out addresses of the --lb-pool ranges and remembers which
// Service (by key) holds each. It is not safe for concurrent use; the
// controller serialises access.
type Pool struct {
	ranges []ipRange
	owner  map[netip.Addr]string
	held   map[string][]netip.Addr
}

// Contains reports whether a is in one of the pool's ranges.
func (p *Pool) Contains(a netip.Addr) bool {
	return slices.ContainsFunc(p.ranges, func(r ipRange) bool { return r.contains(a) })
}

// HasFamily reports whether the pool has addresses of the family (IPv4
// when is4).
func (p *Pool) HasFamily(is4 bool) bool {
	return slices.ContainsFunc(p.ranges, func(r ipRange) bool { return r.first.Is4() == is4 })
}

// Owner returns the key of the Service holding a, or "".
func (p *Pool) Owner(a netip.Addr) string { return p.owner[a] }

// Held returns the addresses owner holds.
func (p *Pool) Held(owner string) []netip.Addr { return slices.Clone(p.held[owner]) }

// Allocated is the number of addresses held.
func (p *Pool) Allocated() int { return len(p.owner) }

// Size is the number of addresses in the pool (as a float: IPv6 ranges are
// large).
func (p *Pool) Size() float64 {
	total := new(big.Int)
	for _, r := range p.ranges {
		total.Add(total, r.size())
	}
	f, _ := new(big.Float).SetInt(total).Float64()
	return f
}

// Allocate gives owner the first free address of the family.
func (p *Pool) Allocate(owner string, is4 bool) (netip.Addr, error) {
	if !p.HasFamily(is4) {
		return netip.Addr{}, ErrNoFamily
	}
	for _, r := range p.ranges {
		if r.first.Is4() != is4 {
			continue
		}
		for a := r.first; a.IsValid() && a.Compare(r.last) <= 0; a = a.Next() {
			if _, taken := p.owner[a]; !taken {
				p.take(owner, a)
				return a, nil
			}
		}
	}
	return netip.Addr{}, ErrExhausted
}

// AllocateSpecific gives owner the address a (a Service's loadBalancerIP,
// or an address found in its status at recovery). Holding it already is
// fine.
func (p *Pool) AllocateSpecific(owner string, a netip.Addr) error {
	a = a.Unmap()
	if !p.Contains(a) {
		return fmt.Errorf("%s: %w", a, ErrNotInPool)
	}
	switch cur := p.owner[a]; cur {
	case owner:
		return nil
	case "":
		p.take(owner, a)
		return nil
	default:
		return fmt.Errorf("%s is held by %s: %w", a, cur, ErrInUse)
	}
}

func (p *Pool) take(owner string, a netip.Addr) {
	p.owner[a] = owner
	p.held[owner] = append(p.held[owner], a)
}

// Release frees a if owner holds it.
func (p *Pool) Release(owner string, a netip.Addr) {
	if p.owner[a] != owner {
		return
	}
	delete(p.owner, a)
	p.held[owner] = slices.DeleteFunc(p.held[owner], func(x netip.Addr) bool { return x == a })
	if len(p.held[owner]) == 0 {
		delete(p.held, owner)
	}
}

// ReleaseAll frees everything owner holds and returns it.
func (p *Pool) ReleaseAll(owner string) []netip.Addr {
	addrs := p.held[owner]
	for _, a := range addrs {
		delete(p.owner, a)
	}
	delete(p.held, owner)
	return addrs
}
