package dataplane

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestSchedule drives the Runner's decision logic with made-up times.
func TestSchedule(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at      time.Duration
		request bool
		retry   time.Duration // >0: RetryAfter(retry)
		wantRun bool
		// wantNext is the expected sleep after the step (-1: none).
		wantNext time.Duration
	}
	const ms = time.Millisecond
	tests := []struct {
		name     string
		min, max time.Duration
		burst    int
		steps    []step
	}{
		{
			name: "burst of 2 then one per minInterval",
			min:  time.Second, max: time.Minute, burst: 2,
			steps: []step{
				{at: 0, request: true, wantRun: true, wantNext: time.Minute},
				{at: 1 * ms, request: true, wantRun: true, wantNext: time.Minute},
				// Bucket empty: 2ms of refill, wait the rest (+1ms rounding).
				{at: 3 * ms, request: true, wantRun: false, wantNext: time.Second - 3*ms + 1*ms},
				{at: 1001 * ms, wantRun: true, wantNext: time.Minute},
			},
		},
		{
			name: "requests coalesce into one run",
			min:  time.Second, max: time.Minute, burst: 1,
			steps: []step{
				{at: 0, request: true, wantRun: true, wantNext: time.Minute},
				{at: 100 * ms, request: true, wantRun: false, wantNext: 900*ms + 1*ms},
				{at: 200 * ms, request: true, wantRun: false, wantNext: 800*ms + 1*ms},
				{at: 1001 * ms, wantRun: true, wantNext: time.Minute},
				// Nothing requested: no run until the periodic one.
				{at: 2 * time.Second, wantRun: false, wantNext: time.Minute - 999*ms},
			},
		},
		{
			name: "periodic run after maxInterval without requests",
			min:  time.Second, max: 10 * time.Second, burst: 1,
			steps: []step{
				{at: 5 * time.Second, wantRun: false, wantNext: 5 * time.Second},
				{at: 10 * time.Second, wantRun: true, wantNext: 10 * time.Second},
			},
		},
		{
			name: "retry comes sooner than the periodic run",
			min:  time.Second, max: time.Hour, burst: 1,
			steps: []step{
				{at: 0, request: true, wantRun: true, wantNext: time.Hour},
				{at: 10 * time.Second, retry: 5 * time.Second, wantRun: false, wantNext: 5 * time.Second},
				{at: 15 * time.Second, wantRun: true, wantNext: time.Hour},
			},
		},
		{
			name: "zero minInterval: every request runs; zero maxInterval: no periodic run",
			min:  0, max: 0, burst: 0,
			steps: []step{
				{at: 0, request: true, wantRun: true, wantNext: -1},
				{at: 0, request: true, wantRun: true, wantNext: -1},
				{at: time.Hour, wantRun: false, wantNext: -1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(tt.min, tt.max, tt.burst, t0)
			for i, st := range tt.steps {
				now := at(st.at)
				if st.request {
					s.requested = true
				}
				if st.retry > 0 {
					s.retryAt(now, st.retry)
				}
				run := s.shouldRun(now)
				if run {
					s.ran(now)
				}
				if run != st.wantRun {
					t.Fatalf("step %d: got run %v, want %v", i, run, st.wantRun)
				}
				d, ok := s.untilNext(now)
				if !ok {
					d = -1
				}
				// Token arithmetic is in float64: allow a microsecond.
				if diff := d - st.wantNext; diff < -time.Microsecond || diff > time.Microsecond {
					t.Fatalf("step %d: got next in %v, want %v", i, d, st.wantNext)
				}
			}
		})
	}
}

func TestRunnerLoop(t *testing.T) {
	var runs atomic.Int32
	ran := make(chan struct{}, 10)
	r := NewRunner("test", func() {
		if runs.Add(1) == 1 {
			panic("first run panics; the loop must survive")
		}
		ran <- struct{}{}
	}, 0, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Loop()
	r.Loop()
	r.RetryAfter(0)
	// The first run panicked; the retry (or the second Loop) makes a second run.
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatalf("got %d runs after 30s, want a run after the panic", runs.Load())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
}

func TestNewRunnerRejectsBadIntervals(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("got no panic for maxInterval < minInterval, want one")
		}
	}()
	NewRunner("bad", func() {}, time.Second, time.Millisecond, 1)
}
