// Package maglev builds Maglev consistent-hashing lookup tables (Eisenbud
// et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
// NSDI 2016, section 3.4): a table of M slots, M prime, in which each
// backend owns close to M/N slots, and removing or adding one backend
// moves few slots other than its own.
//
// Tables are deterministic: the hash functions are fixed (no seed) and the
// result does not depend on the order of the input, so every node builds
// the same table for the same backend set.
package maglev

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// sizes are the table sizes SizeFor picks from: the largest primes below
// powers of two.
func sizes() [17]uint64 {
	return [...]uint64{
		251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
		262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213,
	}
}

// Sizes returns the prime table sizes SizeFor chooses from, smallest first.
func Sizes() []uint64 {
	s := sizes()
	return s[:]
}

// MinSlotsPerBackend is how many slots SizeFor gives each backend at
// least: with more than 100 slots each, every backend's share is within 1%
// of the ideal.
const MinSlotsPerBackend = 100

// SizeFor returns the smallest listed prime above MinSlotsPerBackend times
// n, or the largest listed prime when n is larger than that allows.
func SizeFor(n int) uint64 {
	want := uint64(n) * MinSlotsPerBackend
	all := sizes()
	for _, p := range all {
		if p > want {
			return p
		}
	}
	return all[len(all)-1]
}

// ErrDuplicate is returned for a backend id given twice.
var ErrDuplicate = errors.New("duplicate backend")

// hashes returns the permutation parameters of a backend id: offset in
// [0, m) and skip in [1, m).
func hashes(id string, m uint64) (offset, skip uint64) {
	sum := sha256.Sum256([]byte(id))
	h1 := binary.BigEndian.Uint64(sum[0:8])
	h2 := binary.BigEndian.Uint64(sum[8:16])
	return h1 % m, h2%(m-1) + 1
}

// Table returns the lookup table for backends (stable ids such as
// "10.244.1.5:8080"): slot i holds the index in backends of the backend
// that owns it. m must be prime (SizeFor gives one) and at least the
// number of backends. An empty backend list gives nil.
func Table(backends []string, m uint64) ([]int, error) {
	return TableWeighted(backends, nil, m)
}

// TableWeighted is Table with weights: a backend of weight w takes w/max
// of a turn per round, so its share of the slots is close to w/sum(w).
// Nil weights mean equal weights; a zero weight gives a backend no slots.
func TableWeighted(backends []string, weights []uint32, m uint64) ([]int, error) {
	if weights != nil && len(weights) != len(backends) {
		return nil, fmt.Errorf("maglev: %d weights for %d backends", len(weights), len(backends))
	}
	if m < 2 || uint64(len(backends)) > m {
		return nil, fmt.Errorf("maglev: table size %d for %d backends", m, len(backends))
	}
	// Visit backends in id order so the table does not depend on input order.
	order := make([]int, 0, len(backends))
	var maxW uint32
	for i := range backends {
		w := uint32(1)
		if weights != nil {
			w = weights[i]
		}
		if w == 0 {
			continue
		}
		maxW = max(maxW, w)
		order = append(order, i)
	}
	if len(order) == 0 {
		return nil, nil
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case backends[a] < backends[b]:
			return -1
		case backends[a] > backends[b]:
			return 1
		}
		return 0
	})
	for k := 1; k < len(order); k++ {
		if backends[order[k]] == backends[order[k-1]] {
			return nil, fmt.Errorf("maglev: %w %q", ErrDuplicate, backends[order[k]])
		}
	}

	n := len(order)
	pos := make([]uint64, n)  // current permutation entry of each backend
	skip := make([]uint64, n) // its step
	credit := make([]uint64, n)
	for k, i := range order {
		pos[k], skip[k] = hashes(backends[i], m)
	}
	table := make([]int, m)
	for s := range table {
		table[s] = -1
	}
	filled := uint64(0)
	for {
		for k, i := range order {
			if weights != nil {
				// Accumulate weight; take a turn per full maxW.
				credit[k] += uint64(weights[i])
				if credit[k] < uint64(maxW) {
					continue
				}
				credit[k] -= uint64(maxW)
			}
			c := pos[k]
			for table[c] >= 0 {
				c += skip[k]
				if c >= m {
					c -= m
				}
			}
			table[c] = i
			c += skip[k]
			if c >= m {
				c -= m
			}
			pos[k] = c
			filled++
			if filled == m {
				return table, nil
			}
		}
	}
}
