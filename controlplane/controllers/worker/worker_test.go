package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newQueue is a real rate-limited queue whose retries come back within a
// millisecond.
func newQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Microsecond, time.Millisecond))
}

// recordingQueue passes every call to a real queue and records the ones by
// which the loop decides a key's fate.
type recordingQueue struct {
	workqueue.TypedRateLimitingInterface[string]
	mu  sync.Mutex
	ops []string
}

func (q *recordingQueue) record(op string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ops = append(q.ops, op)
}

func (q *recordingQueue) recorded() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.ops)
}

func (q *recordingQueue) Forget(key string) {
	q.record("forget")
	q.TypedRateLimitingInterface.Forget(key)
}

func (q *recordingQueue) AddRateLimited(key string) {
	q.record("retry")
	q.TypedRateLimitingInterface.AddRateLimited(key)
}

func (q *recordingQueue) AddAfter(key string, d time.Duration) {
	q.record(fmt.Sprintf("after %s", d))
	q.TypedRateLimitingInterface.AddAfter(key, d)
}

type result struct {
	after time.Duration
	err   error
}

var (
	boom     = errors.New("boom")
	succeeds = result{}
	fails    = result{err: boom}
)

func TestProcessNext(t *testing.T) {
	tests := []struct {
		name           string
		maxRetries     int
		requeueDropped time.Duration
		// results are what the sync returns, call by call; the key is
		// processed once per result.
		results []result
		wantOps []string
	}{{
		name:    "success forgets",
		results: []result{succeeds},
		wantOps: []string{"forget"},
	}, {
		name:       "failure retries until success",
		maxRetries: 3,
		results:    []result{fails, fails, fails, succeeds},
		wantOps:    []string{"retry", "retry", "retry", "forget"},
	}, {
		name:       "failure past MaxRetries drops",
		maxRetries: 2,
		results:    []result{fails, fails, fails},
		wantOps:    []string{"retry", "retry", "forget"},
	}, {
		name:    "MaxRetries 0 retries forever",
		results: []result{fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, fails, succeeds},
		wantOps: append(slices.Repeat([]string{"retry"}, 17), "forget"),
	}, {
		name:    "success with a duration requeues after it",
		results: []result{{after: time.Millisecond}, succeeds},
		wantOps: []string{"forget", "after 1ms", "forget"},
	}, {
		name:       "failure ignores the duration",
		maxRetries: 1,
		results:    []result{{after: time.Hour, err: boom}, succeeds},
		wantOps:    []string{"retry", "forget"},
	}, {
		name:           "RequeueDropped brings a dropped key back",
		maxRetries:     1,
		requeueDropped: time.Millisecond,
		results:        []result{fails, fails, succeeds},
		wantOps:        []string{"retry", "forget", "after 1ms", "forget"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &recordingQueue{TypedRateLimitingInterface: newQueue()}
			defer q.ShutDown()
			var calls int
			var observed []error
			l := &Loop{
				Queue: q,
				Sync: func(_ context.Context, key string) (time.Duration, error) {
					if key != "ns/a" {
						t.Errorf("got key %q, want ns/a", key)
					}
					if calls >= len(tt.results) {
						t.Errorf("got sync call %d, want %d calls", calls+1, len(tt.results))
						return 0, nil
					}
					r := tt.results[calls]
					calls++
					return r.after, r.err
				},
				Log:            testLog(t),
				Kind:           "thing",
				MaxRetries:     tt.maxRetries,
				RequeueDropped: tt.requeueDropped,
				Observe:        func(err error) { observed = append(observed, err) },
			}
			q.Add("ns/a")
			for i := range tt.results {
				// Get blocks until a requeued key is back: bound the wait.
				done := make(chan bool, 1)
				go func() { done <- l.processNext(context.Background()) }()
				select {
				case more := <-done:
					if !more {
						t.Fatalf("processNext %d: got false, want true", i+1)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("processNext %d: the key did not come back; ops so far %v", i+1, q.recorded())
				}
			}
			if ops := q.recorded(); !slices.Equal(ops, tt.wantOps) {
				t.Errorf("got ops %v, want %v", ops, tt.wantOps)
			}
			if calls != len(tt.results) {
				t.Errorf("got %d sync calls, want %d", calls, len(tt.results))
			}
			var wantObserved []error
			for _, r := range tt.results {
				wantObserved = append(wantObserved, r.err)
			}
			if !slices.Equal(observed, wantObserved) {
				t.Errorf("got observed %v, want %v", observed, wantObserved)
			}
			if n := q.NumRequeues("ns/a"); n != 0 {
				t.Errorf("got %d requeues after the last sync, want 0 (forgotten)", n)
			}
		})
	}
}

func TestRun(t *testing.T) {
	boomStart := errors.New("start failed")
	tests := []struct {
		name    string
		synced  bool
		start   error
		wantErr error
		// wantWork: the workers ran and stopped with ctx.
		wantWork bool
	}{
		{name: "runs workers until ctx ends", synced: true, wantWork: true},
		{name: "ctx ends before the caches sync", synced: false},
		{name: "Start fails", synced: true, start: boomStart, wantErr: boomStart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const workers = 3
			q := newQueue()
			var active, calls atomic.Int32
			started := false
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := &Loop{
				Queue: q,
				// Each sync holds its worker until ctx ends.
				Sync: func(ctx context.Context, _ string) (time.Duration, error) {
					calls.Add(1)
					active.Add(1)
					defer active.Add(-1)
					<-ctx.Done()
					return 0, ctx.Err()
				},
				Start: func() error {
					started = true
					return tt.start
				},
				Log: testLog(t),
			}
			for i := range workers {
				q.Add(fmt.Sprintf("ns/%d", i))
			}
			errc := make(chan error, 1)
			go func() { errc <- l.Run(ctx, workers, func() bool { return tt.synced }) }()

			if tt.wantWork {
				// Bounded polling: every worker is inside a sync.
				deadline := time.Now().Add(10 * time.Second)
				for active.Load() != workers {
					if time.Now().After(deadline) {
						t.Fatalf("got %d workers syncing, want %d", active.Load(), workers)
					}
					time.Sleep(time.Millisecond)
				}
			}
			if tt.start == nil {
				cancel()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("got err %v, want %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if n := active.Load(); n != 0 {
				t.Errorf("got %d workers still syncing after Run returned, want 0", n)
			}
			if !q.ShuttingDown() {
				t.Error("got queue running after Run returned, want it shut down")
			}
			if started != tt.synced {
				t.Errorf("got Start called %v, want %v", started, tt.synced)
			}
			// A key failed by the cancel may be retried before the queue
			// shuts down, so a run may sync more than once per key.
			switch n := calls.Load(); {
			case tt.wantWork && n < workers:
				t.Errorf("got %d syncs, want at least %d", n, workers)
			case !tt.wantWork && n != 0:
				t.Errorf("got %d syncs, want 0", n)
			}
		})
	}
}
