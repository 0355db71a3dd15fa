// Package maglev builds Maglev consistent-hashing lookup tables (Eisenbud
// et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
// NSDI 2016, section 3.4): a table of M slots, M prime, in which each
// backend owns close to M/N slots, and removing or adding one backend
// moves few slots other than its own.
//
// Tables are deterministic: the hash functions are fixed (no seed) and the
// result does not depend on the order of the input, so every node builds
// the same table for the same backend set.
//
// Cost: each backend's id is hashed once per build (its permutation's
// offset and skip); the fill loop is then integer arithmetic over an
// occupancy bitmap (M/8 bytes, cache resident for the usual sizes) with
// no allocation per slot. A Builder keeps its buffers between builds.
package maglev

import (
	"cmp"
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

// MaxSize is the largest table size a Builder accepts.
const MaxSize = 1<<31 - 1

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
	if err := check(backends, weights, m); err != nil {
		return nil, err
	}
	values := make([]uint32, len(backends))
	for i := range values {
		values[i] = uint32(i)
	}
	var b Builder
	dst := make([]uint32, m)
	ok, err := b.fill(dst, backends, values, weights)
	if err != nil || !ok {
		return nil, err
	}
	table := make([]int, m)
	for s, v := range dst {
		table[s] = int(v)
	}
	return table, nil
}

func check(backends []string, weights []uint32, m uint64) error {
	if weights != nil && len(weights) != len(backends) {
		return fmt.Errorf("maglev: %d weights for %d backends", len(weights), len(backends))
	}
	if m < 2 || m > MaxSize || uint64(len(backends)) > m {
		return fmt.Errorf("maglev: table size %d for %d backends", m, len(backends))
	}
	return nil
}

// Builder builds Maglev tables and keeps its working buffers between
// builds, so that rebuilding a table allocates nothing once the buffers
// have grown. The zero Builder is ready to use; it is not safe for
// concurrent use.
type Builder struct {
	order  []int32  // backend indices with a weight, in id order
	pos    []uint32 // each backend's current permutation entry
	skip   []uint32 // its step
	credit []uint64 // weighted turns
	used   []uint64 // occupancy bitmap of the table
}

// Fill writes the table for backends into dst, whose length is the table
// size M (prime, at least the number of backends): slot s gets values[i]
// for the backend i that owns it. ids, values and (unless nil) weights are
// parallel. The result is the same as Table's, mapped through values. It
// returns false, leaving dst alone, when no backend has a weight.
func (b *Builder) Fill(dst []uint32, ids []string, values []uint32, weights []uint32) (bool, error) {
	if len(values) != len(ids) {
		return false, fmt.Errorf("maglev: %d values for %d backends", len(values), len(ids))
	}
	if err := check(ids, weights, uint64(len(dst))); err != nil {
		return false, err
	}
	return b.fill(dst, ids, values, weights)
}

func (b *Builder) fill(dst []uint32, ids []string, values []uint32, weights []uint32) (bool, error) {
	m := uint32(len(dst))
	// Visit backends in id order so the table does not depend on input order.
	b.order = b.order[:0]
	var maxW uint32
	for i := range ids {
		w := uint32(1)
		if weights != nil {
			w = weights[i]
		}
		if w == 0 {
			continue
		}
		maxW = max(maxW, w)
		b.order = append(b.order, int32(i))
	}
	if len(b.order) == 0 {
		return false, nil
	}
	slices.SortFunc(b.order, func(x, y int32) int { return cmp.Compare(ids[x], ids[y]) })
	for k := 1; k < len(b.order); k++ {
		if ids[b.order[k]] == ids[b.order[k-1]] {
			return false, fmt.Errorf("maglev: %w %q", ErrDuplicate, ids[b.order[k]])
		}
	}

	n := len(b.order)
	b.pos = grow(b.pos, n)
	b.skip = grow(b.skip, n)
	for k, i := range b.order {
		off, skip := hashes(ids[i], uint64(m))
		b.pos[k], b.skip[k] = uint32(off), uint32(skip)
	}
	b.used = grow(b.used, int(m+63)/64)
	clear(b.used)
	if weights == nil || allEqual(weights) {
		b.fillEqual(dst, values)
		return true, nil
	}
	b.credit = grow(b.credit, n)
	clear(b.credit)
	b.fillWeighted(dst, values, weights, maxW)
	return true, nil
}

// fillEqual is the fill loop with equal weights: backends take turns in
// id order; each takes the next free slot of its permutation.
func (b *Builder) fillEqual(dst, values []uint32) {
	m := uint32(len(dst))
	used, order, pos, skip := b.used, b.order, b.pos[:len(b.order)], b.skip[:len(b.order)]
	filled := uint32(0)
	for {
		for k, i := range order {
			c, s := pos[k], skip[k]
			for used[c>>6]&(1<<(c&63)) != 0 {
				c += s
				if c >= m {
					c -= m
				}
			}
			used[c>>6] |= 1 << (c & 63)
			dst[c] = values[i]
			c += s
			if c >= m {
				c -= m
			}
			pos[k] = c
			filled++
			if filled == m {
				return
			}
		}
	}
}

// fillWeighted is the fill loop with weights: a backend accumulates its
// weight per round and takes a turn per full maxW.
func (b *Builder) fillWeighted(dst, values, weights []uint32, maxW uint32) {
	m := uint32(len(dst))
	used, order, pos, skip, credit := b.used, b.order, b.pos, b.skip, b.credit
	filled := uint32(0)
	for {
		for k, i := range order {
			credit[k] += uint64(weights[i])
			if credit[k] < uint64(maxW) {
				continue
			}
			credit[k] -= uint64(maxW)
			c, s := pos[k], skip[k]
			for used[c>>6]&(1<<(c&63)) != 0 {
				c += s
				if c >= m {
					c -= m
				}
			}
			used[c>>6] |= 1 << (c & 63)
			dst[c] = values[i]
			c += s
			if c >= m {
				c -= m
			}
			pos[k] = c
			filled++
			if filled == m {
				return
			}
		}
	}
}

// allEqual reports whether every non-zero weight is the same: such a fill
// takes a turn per backend per round, as the unweighted one does.
func allEqual(weights []uint32) bool {
	var w uint32
	for _, x := range weights {
		if x == 0 {
			continue
		}
		if w != 0 && x != w {
			return false
		}
		w = x
	}
	return true
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
