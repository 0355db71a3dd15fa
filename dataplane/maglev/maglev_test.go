package maglev

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
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
