package framework

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
)

// NewParallelizer returns a Parallelizer with the given number of workers
// (at least 1).
func NewParallelizer(workers int) Parallelizer {
	if workers < 1 {
		workers = 1
	}
	return parallelizer{workers: workers}
}

type parallelizer struct{ workers int }

func (p parallelizer) Workers() int { return p.workers }

// chunkSize balances the cost of handing out chunks against the imbalance
// of large ones, as upstream's parallelizer does: sqrt(n), at most n/workers+1.
func chunkSize(pieces, workers int) int {
	s := int(math.Sqrt(float64(pieces)))
	if r := pieces/workers + 1; s > r {
		s = r
	}
	if s < 1 {
		s = 1
	}
	return s
}

func (p parallelizer) Until(ctx context.Context, pieces int, fn func(i int)) {
	if pieces <= 0 {
		return
	}
	chunk := chunkSize(pieces, p.workers)
	chunks := (pieces + chunk - 1) / chunk
	workers := min(p.workers, chunks)
	var next atomic.Int64
	work := func() {
		for {
			if ctx.Err() != nil {
				return
			}
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			end := min((c+1)*chunk, pieces)
			for i := c * chunk; i < end; i++ {
				fn(i)
			}
		}
	}
	if workers == 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for range workers - 1 {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}
