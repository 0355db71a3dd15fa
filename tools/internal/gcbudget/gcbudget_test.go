package gcbudget

import (
	"context"
	"math"
	"runtime/debug"
	"testing"
)

func TestNext(t *testing.T) {
	const mib = 1 << 20
	budget := uint64(160 * mib)
	tests := []struct {
		cur  mode
		live uint64
		want mode
	}{
		{modeBudget, 0, modeBudget},
		{modeBudget, 120 * mib, modeBudget}, // three quarters of 160
		{modeBudget, 121 * mib, modeLarge},
		{modeLarge, 100 * mib, modeLarge}, // not under three fifths (96)
		{modeLarge, 95 * mib, modeBudget},
	}
	for _, tc := range tests {
		if got := next(tc.cur, tc.live, budget); got != tc.want {
			t.Errorf("next(%d, %d MiB): got %d, want %d", tc.cur, tc.live/mib, got, tc.want)
		}
	}
}

// TestStart: the budget becomes the soft limit with GOGC 100; no budget is
// GOGC 50 without a limit; GOGC or GOMEMLIMIT in the environment leave the
// runtime alone.
func TestStart(t *testing.T) {
	gc := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	})
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !Start(ctx, 1<<30, nil) {
		t.Fatal("Start refused without GOGC or GOMEMLIMIT")
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d, want the budget", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC %d, want 100", got)
	}
	if !Start(ctx, 0, nil) {
		t.Fatal("Start refused")
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d without a budget, want none", got)
	}
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC %d without a budget, want 50", got)
	}
	t.Setenv("GOGC", "200")
	debug.SetGCPercent(77)
	if Start(ctx, 1<<30, nil) {
		t.Error("Start changed the runtime although GOGC is set")
	}
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC changed to %d", got)
	}
}
