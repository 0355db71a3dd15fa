package maglev

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func backendIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.244.%d.%d:8080", i/250, i%250+1)
	}
	return ids
}

func counts(table []int, n int) []int {
	c := make([]int, n)
	for _, b := range table {
		c[b]++
	}
	return c
}

func TestSizes(t *testing.T) {
	for _, p := range Sizes() {
		if !big.NewInt(int64(p)).ProbablyPrime(20) {
			t.Errorf("size %d: got composite, want prime", p)
		}
	}
	tests := []struct {
		n    int
		want uint64
	}{{1, 251}, {2, 251}, {3, 509}, {10, 1021}, {100, 16381}, {1000, 131071}, {1 << 20, 16777213}}
	for _, tt := range tests {
		if got := SizeFor(tt.n); got != tt.want {
			t.Errorf("SizeFor(%d): got %d, want %d", tt.n, got, tt.want)
		}
	}
}

// TestSpread checks every backend's share is within 1% of M/N.
func TestSpread(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := SizeFor(n)
			table, err := Table(backendIDs(n), m)
			if err != nil {
				t.Fatalf("Table: %v", err)
			}
			if uint64(len(table)) != m {
				t.Fatalf("got %d slots, want %d", len(table), m)
			}
			c := counts(table, n)
			ideal := float64(m) / float64(n)
			lo, hi := slices.Min(c), slices.Max(c)
			if dev := (float64(hi) - float64(lo)) / ideal; dev > 0.01 {
				t.Errorf("got slot counts from %d to %d (ideal %.1f, spread %.3f%%), want spread within 1%%", lo, hi, ideal, dev*100)
			}
		})
	}
}

// TestDisruption removes one of 100 backends. Its own ~1% of the slots
// must move; Maglev moves some more, the fewer the larger M/N is (the
// paper's figure 12; measured here: 2.4% at M=16381, 1.6% at 65521, 1.35%
// at 131071, 1.1% at 1048573). The bounds are the measured values with a
// little room.
func TestDisruption(t *testing.T) {
	ids := backendIDs(100)
	tests := []struct {
		m       uint64
		maxFrac float64
	}{
		{SizeFor(100), 0.025}, // 163 slots per backend
		{131071, 0.015},       // 1310 slots per backend
	}
	for _, tt := range tests {
		before, err := Table(ids, tt.m)
		if err != nil {
			t.Fatalf("Table: %v", err)
		}
		for _, removed := range []int{0, 37, 99} {
			t.Run(fmt.Sprintf("m=%d/removed=%d", tt.m, removed), func(t *testing.T) {
				rest := slices.Delete(slices.Clone(ids), removed, removed+1)
				after, err := Table(rest, tt.m)
				if err != nil {
					t.Fatalf("Table: %v", err)
				}
				moved, own := 0, 0
				for s := range before {
					if before[s] == removed {
						own++
					}
					if ids[before[s]] != rest[after[s]] {
						moved++
					}
				}
				frac := float64(moved) / float64(tt.m)
				t.Logf("removing %s moved %d of %d slots (%.3f%%; its own %d)", ids[removed], moved, tt.m, frac*100, own)
				if moved < own {
					t.Errorf("got %d slots moved, want at least the removed backend's %d", moved, own)
				}
				if frac > tt.maxFrac {
					t.Errorf("got %.3f%% of slots moved, want at most %.1f%% (ideal 1%%)", frac*100, tt.maxFrac*100)
				}
			})
		}
	}
}

func TestDeterministicAcrossOrder(t *testing.T) {
	ids := backendIDs(50)
	m := SizeFor(len(ids))
	want, err := Table(ids, m)
	if err != nil {
		t.Fatalf("Table: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		perm := slices.Clone(ids)
		r.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
		got, err := Table(perm, m)
		if err != nil {
			t.Fatalf("Table: %v", err)
		}
		for s := range want {
			if perm[got[s]] != ids[want[s]] {
				t.Fatalf("permutation %d slot %d: got %s, want %s", i, s, perm[got[s]], ids[want[s]])
			}
		}
	}
}

func TestWeighted(t *testing.T) {
	ids := backendIDs(4)
	m := SizeFor(100)
	table, err := TableWeighted(ids, []uint32{1, 2, 1, 0}, m)
	if err != nil {
		t.Fatalf("TableWeighted: %v", err)
	}
	c := counts(table, 4)
	if c[3] != 0 {
		t.Errorf("weight 0: got %d slots, want 0", c[3])
	}
	for i, want := range []float64{0.25, 0.5, 0.25} {
		got := float64(c[i]) / float64(m)
		if got < want-0.01 || got > want+0.01 {
			t.Errorf("backend %d: got share %.4f, want %.2f±0.01", i, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		backends []string
		weights  []uint32
		m        uint64
		want     error
	}{
		{"duplicate id", []string{"a", "b", "a"}, nil, 251, ErrDuplicate},
		{"more backends than slots", backendIDs(3), nil, 2, nil},
		{"weights length mismatch", backendIDs(3), []uint32{1}, 251, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TableWeighted(tt.backends, tt.weights, tt.m)
			if err == nil {
				t.Fatalf("got no error, want one")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if table, err := Table(nil, 251); err != nil || table != nil {
		t.Fatalf("no backends: got %v, %v, want nil, nil", table, err)
	}
}

// referenceTable is the straightforward form of the algorithm (the
// package's first implementation): a table of ints, -1 for free slots,
// every backend hashed in the loop's order. Builder must give the same
// tables.
func referenceTable(backends []string, weights []uint32, m uint64) []int {
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
		return nil
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(backends[a], backends[b]) })
	n := len(order)
	pos, skip, credit := make([]uint64, n), make([]uint64, n), make([]uint64, n)
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
				credit[k] += uint64(weights[i])
				if credit[k] < uint64(maxW) {
					continue
				}
				credit[k] -= uint64(maxW)
			}
			c := pos[k]
			for table[c] >= 0 {
				c = (c + skip[k]) % m
			}
			table[c] = i
			pos[k] = (c + skip[k]) % m
			filled++
			if filled == m {
				return table
			}
		}
	}
}

// TestSameAsReference checks the optimised fill against the reference
// for several sizes, backend counts and weights, through Table and
// through one reused Builder (buffers left from a larger build must not
// leak into a smaller one).
func TestSameAsReference(t *testing.T) {
	var bld Builder
	tests := []struct {
		n       int
		m       uint64
		weights func(i int) uint32
	}{
		{1, 251, nil},
		{3, 16381, nil},
		{3, 251, nil},
		{100, 16381, nil},
		{1000, 131071, nil},
		{7, 1021, func(i int) uint32 { return uint32(i % 3) }},
		{50, 8191, func(i int) uint32 { return uint32(1 + i%4) }},
		{10, 2039, func(int) uint32 { return 5 }},
		{2, 251, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d/m=%d/weighted=%t", tt.n, tt.m, tt.weights != nil), func(t *testing.T) {
			ids := backendIDs(tt.n)
			var weights []uint32
			if tt.weights != nil {
				weights = make([]uint32, tt.n)
				for i := range weights {
					weights[i] = tt.weights(i)
				}
			}
			want := referenceTable(ids, weights, tt.m)
			got, err := TableWeighted(ids, weights, tt.m)
			if err != nil {
				t.Fatalf("TableWeighted: %v", err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("TableWeighted: got a table that differs from the reference")
			}
			values := make([]uint32, tt.n)
			for i := range values {
				values[i] = uint32(1000 + i)
			}
			dst := make([]uint32, tt.m)
			ok, err := bld.Fill(dst, ids, values, weights)
			if err != nil || !ok {
				t.Fatalf("Fill: got %v, %v, want true, nil", ok, err)
			}
			for s := range dst {
				if dst[s] != values[want[s]] {
					t.Fatalf("Fill: slot %d: got %d, want %d", s, dst[s], values[want[s]])
				}
			}
		})
	}
}

// TestGolden pins a few slots of fixed inputs, so that a change to the
// hash or the fill order (which would make nodes of different versions
// disagree) cannot pass unnoticed.
func TestGolden(t *testing.T) {
	table, err := Table([]string{"10.244.0.10:8080/6", "10.244.1.10:8080/6", "10.244.1.11:8080/6"}, 251)
	if err != nil {
		t.Fatalf("Table: %v", err)
	}
	got := fmt.Sprint(table[:24])
	const want = "[2 1 1 1 0 0 1 0 1 2 2 2 1 1 0 1 0 1 2 2 2 2 2 0]" // from the first implementation
	if got != want {
		t.Errorf("got first slots %s, want %s", got, want)
	}
}

func BenchmarkTable(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ids := backendIDs(n)
		m := SizeFor(n)
		b.Run(fmt.Sprintf("backends=%d/m=%d", n, m), func(b *testing.B) {
			for b.Loop() {
				if _, err := Table(ids, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFill is a rebuild with a reused Builder, as the eBPF
// reconciler does: three backends in the default 16,381-slot table (a
// NodePort Service of the load balancer benchmark), and larger sets.
func BenchmarkFill(b *testing.B) {
	for _, tt := range []struct {
		n int
		m uint64
	}{{3, 16381}, {100, 16381}, {1000, 131071}} {
		ids := backendIDs(tt.n)
		values := make([]uint32, tt.n)
		dst := make([]uint32, tt.m)
		var bld Builder
		b.Run(fmt.Sprintf("backends=%d/m=%d", tt.n, tt.m), func(b *testing.B) {
			for b.Loop() {
				if _, err := bld.Fill(dst, ids, values, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
