package dataplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Runner runs a function with bounded frequency, like kube-proxy's
// BoundedFrequencyRunner (pkg/util/async in older releases):
//
//   - Loop requests a run. Requests coalesce: many Loop calls before the
//     function gets to run cause one run.
//   - Runs are rate limited by a token bucket that refills one token per
//     minInterval and holds at most burst tokens: up to burst runs may
//     follow each other immediately, after that runs are minInterval apart.
//     A request that arrives too early runs as soon as a token is there.
//   - The function runs at least once per maxInterval (counted from the end
//     of the previous run) even without requests, to repair drift. A zero
//     maxInterval disables periodic runs.
//   - RetryAfter asks for a run no later than the given delay (still
//     subject to the rate limit), e.g. after a failed sync.
//
// The function runs only on the goroutine that called Run, never
// concurrently with itself. A panic in it is recovered and logged.
type Runner struct {
	name string
	fn   func()
	log  *slog.Logger

	minInterval time.Duration
	maxInterval time.Duration
	burst       int

	request chan struct{}
	retry   chan time.Duration
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithRunnerLogger sets the logger for recovered panics. Default: discard.
func WithRunnerLogger(l *slog.Logger) RunnerOption {
	return func(r *Runner) { r.log = l }
}

// NewRunner returns a Runner for fn. It panics when maxInterval is non-zero
// and below minInterval, or burst is below 1 with a non-zero minInterval:
// both are programming errors.
func NewRunner(name string, fn func(), minInterval, maxInterval time.Duration, burst int, opts ...RunnerOption) *Runner {
	if maxInterval != 0 && maxInterval < minInterval {
		panic(fmt.Sprintf("runner %s: maxInterval %v below minInterval %v", name, maxInterval, minInterval))
	}
	if burst < 1 && minInterval > 0 {
		panic(fmt.Sprintf("runner %s: burst %d below 1", name, burst))
	}
	r := &Runner{
		name:        name,
		fn:          fn,
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		minInterval: minInterval,
		maxInterval: maxInterval,
		burst:       burst,
		request:     make(chan struct{}, 1),
		retry:       make(chan time.Duration, 1),
	}
	for _, o := range opts {
		o(r)
	}
	r.log = r.log.With("runner", name)
	return r
}

// Loop requests a run as soon as the rate limit allows. It never blocks.
func (r *Runner) Loop() {
	select {
	case r.request <- struct{}{}:
	default:
	}
}

// RetryAfter requests a run no later than d from now.
func (r *Runner) RetryAfter(d time.Duration) {
	for {
		select {
		case r.retry <- d:
			return
		default:
		}
		// Keep the sooner of the queued and the new retry.
		select {
		case old := <-r.retry:
			if old < d {
				d = old
			}
		default:
		}
	}
}

// Run runs the loop until ctx is done. It does not run the function on
// its own at start: call Loop first for an immediate run.
func (r *Runner) Run(ctx context.Context) {
	s := newSchedule(r.minInterval, r.maxInterval, r.burst, time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func(now time.Time) {
		if d, ok := s.untilNext(now); ok {
			timer.Reset(d)
		} else {
			timer.Stop()
		}
	}
	arm(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.request:
			s.requested = true
		case d := <-r.retry:
			s.retryAt(time.Now(), d)
		case <-timer.C:
		}
		now := time.Now()
		if s.shouldRun(now) {
			r.runOnce()
			s.ran(time.Now())
		}
		arm(time.Now())
	}
}

func (r *Runner) runOnce() {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("run panicked", "panic", fmt.Sprint(p))
		}
	}()
	r.fn()
}

// schedule is the Runner's decision logic, kept free of timers and
// goroutines so it can be tested with made-up times.
type schedule struct {
	minInterval time.Duration
	maxInterval time.Duration
	burst       float64

	tokens float64
	refill time.Time // when tokens was last brought up to date

	requested bool      // a run was asked for and has not happened yet
	periodic  time.Time // next run due by maxInterval (zero: none)
	retry     time.Time // next run due by RetryAfter (zero: none)
}

func newSchedule(minInterval, maxInterval time.Duration, burst int, now time.Time) *schedule {
	s := &schedule{minInterval: minInterval, maxInterval: maxInterval, burst: float64(burst), tokens: float64(burst), refill: now}
	if maxInterval > 0 {
		s.periodic = now.Add(maxInterval)
	}
	return s
}

func (s *schedule) fill(now time.Time) {
	if s.minInterval <= 0 {
		return
	}
	if now.After(s.refill) {
		s.tokens += float64(now.Sub(s.refill)) / float64(s.minInterval)
		if s.tokens > s.burst {
			s.tokens = s.burst
		}
	}
	s.refill = now
}

// due reports whether a run is wanted at now, rate limit aside.
func (s *schedule) due(now time.Time) bool {
	return s.requested ||
		(!s.periodic.IsZero() && !now.Before(s.periodic)) ||
		(!s.retry.IsZero() && !now.Before(s.retry))
}

// shouldRun reports whether to run now, and takes a token if so.
func (s *schedule) shouldRun(now time.Time) bool {
	if !s.due(now) {
		return false
	}
	if s.minInterval <= 0 {
		return true
	}
	s.fill(now)
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

// ran records a finished run.
func (s *schedule) ran(now time.Time) {
	s.requested = false
	s.retry = time.Time{}
	if s.maxInterval > 0 {
		s.periodic = now.Add(s.maxInterval)
	}
}

func (s *schedule) retryAt(now time.Time, d time.Duration) {
	t := now.Add(d)
	if s.retry.IsZero() || t.Before(s.retry) {
		s.retry = t
	}
}

// untilNext returns how long to sleep before the next decision; false when
// nothing is scheduled.
func (s *schedule) untilNext(now time.Time) (time.Duration, bool) {
	var next time.Time
	pick := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	pick(s.periodic)
	pick(s.retry)
	if s.due(now) {
		// Waiting for a token only.
		s.fill(now)
		var wait time.Duration
		if s.minInterval > 0 && s.tokens < 1 {
			// Round up so the timer does not fire a hair too early.
			wait = time.Duration((1-s.tokens)*float64(s.minInterval)) + time.Millisecond
		}
		pick(now.Add(wait))
	}
	if next.IsZero() {
		return 0, false
	}
	d := next.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}
