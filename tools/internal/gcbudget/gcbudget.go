// Package gcbudget is the garbage collector policy of a control-plane
// process (`skiff server`, and the in-process control plane of `skiff
// bench scheduler`, which measures it).
//
// A control plane's live heap is mostly its informer caches, and the GC's
// cost grows with how often it marks them. Go's knobs trade one way each:
// GOGC 50 keeps memory low but collects twice as often as GOGC 100; a
// memory limit alone collects constantly once the live heap nears it.
// The policy uses both within a memory budget:
//
//   - while the live heap is under three quarters of the budget, GOGC is
//     100 and the budget is the runtime's soft memory limit: the heap
//     grows to twice the live heap, or to the budget if that comes first,
//     and the runtime returns freed memory to stay under it;
//   - past that (a large cluster), the limit is lifted and GOGC is 50, the
//     frugal setting the server had before, so that the GC does not
//     collect ever more often to honour the budget.
//
// A watcher re-reads the live heap every second and switches, with some
// hysteresis. GOGC or GOMEMLIMIT in the environment turn the policy off
// (the runtime's own settings stand). See docs/decisions/0006.
package gcbudget

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultBudget is the default soft limit of the Go runtime's memory: with
// the executable's resident pages and etcd's mapped database it keeps a
// control plane of 5,000 nodes and 11,000 pods under 300 MB of RSS
// (docs/benchmarks.md).
const DefaultBudget = 160 << 20

// Settings of the two modes.
const (
	budgetGOGC = 100
	largeGOGC  = 50
)

// mode is the policy's state.
type mode int

const (
	modeBudget mode = iota // GOGC 100 under the soft limit
	modeLarge              // GOGC 50, no limit
)

// next is the mode for a live heap of live bytes. Under the limit the GC
// runs each time budget-live bytes were allocated; GOGC 50 runs it every
// live/2. Until the live heap is three quarters of the budget the limit
// costs at most 1.5 times GOGC 50's collections and keeps the memory
// bounded; past that it would cost ever more, so the policy gives the
// budget up, and takes it back once the live heap is under three fifths.
func next(cur mode, live, budget uint64) mode {
	switch {
	case cur == modeBudget && live > budget/4*3:
		return modeLarge
	case cur == modeLarge && live < budget/5*3:
		return modeBudget
	}
	return cur
}

func apply(m mode, budget int64) {
	if m == modeBudget {
		debug.SetGCPercent(budgetGOGC)
		debug.SetMemoryLimit(budget)
		return
	}
	debug.SetMemoryLimit(math.MaxInt64)
	debug.SetGCPercent(largeGOGC)
}

// Start applies the policy with budget bytes (0: GOGC 50 alone, the
// previous default) until ctx ends. It returns false and changes nothing
// when the environment sets GOGC or GOMEMLIMIT.
func Start(ctx context.Context, budget int64, log *slog.Logger) bool {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	if budget <= 0 {
		apply(modeLarge, 0)
		return true
	}
	cur := next(modeBudget, liveHeap(), uint64(budget))
	apply(cur, budget)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			live := liveHeap()
			if m := next(cur, live, uint64(budget)); m != cur {
				cur = m
				apply(cur, budget)
				if log != nil {
					log.Info("gc policy", "mode", map[mode]string{modeBudget: "budget", modeLarge: "large heap"}[cur],
						"liveHeapMiB", live>>20, "budgetMiB", budget>>20)
				}
			}
		}
	}()
	return true
}

// liveHeap is the heap the last GC found live (0 before the first).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
