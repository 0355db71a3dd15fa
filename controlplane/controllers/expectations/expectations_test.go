package expectations

import (
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) step(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestExpectations(t *testing.T) {
	type step struct {
		do   func(e *Expectations, c *clock)
		want bool // Satisfied("ns/rs") after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no record is satisfied", []step{{func(*Expectations, *clock) {}, true}}},
		{"creations until all observed", []step{
			{func(e *Expectations, _ *clock) { e.ExpectCreations("ns/rs", 2) }, false},
			{func(e *Expectations, _ *clock) { e.CreationObserved("ns/rs") }, false},
			{func(e *Expectations, _ *clock) { e.CreationObserved("ns/rs") }, true},
			{func(e *Expectations, _ *clock) { e.CreationObserved("ns/rs") }, true},
		}},
		{"deletions count once per object", []step{
			{func(e *Expectations, _ *clock) { e.ExpectDeletions("ns/rs", []string{"ns/a", "ns/b"}) }, false},
			{func(e *Expectations, _ *clock) { e.DeletionObserved("ns/rs", "ns/a") }, false},
			{func(e *Expectations, _ *clock) { e.DeletionObserved("ns/rs", "ns/a") }, false},
			{func(e *Expectations, _ *clock) { e.DeletionObserved("ns/rs", "ns/other") }, false},
			{func(e *Expectations, _ *clock) { e.DeletionObserved("ns/rs", "ns/b") }, true},
		}},
		{"expiry releases", []step{
			{func(e *Expectations, _ *clock) { e.ExpectCreations("ns/rs", 1) }, false},
			{func(_ *Expectations, c *clock) { c.step(time.Minute) }, false},
			{func(_ *Expectations, c *clock) { c.step(time.Minute) }, true},
		}},
		{"delete forgets", []step{
			{func(e *Expectations, _ *clock) { e.ExpectCreations("ns/rs", 3) }, false},
			{func(e *Expectations, _ *clock) { e.Delete("ns/rs") }, true},
		}},
		{"other keys are independent", []step{
			{func(e *Expectations, _ *clock) { e.ExpectCreations("ns/other", 3) }, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			e := NewWithClock(90*time.Second, c.now)
			for i, s := range tt.steps {
				s.do(e, c)
				if got := e.Satisfied("ns/rs"); got != s.want {
					t.Fatalf("step %d: got satisfied %v, want %v", i, got, s.want)
				}
			}
		})
	}
}
