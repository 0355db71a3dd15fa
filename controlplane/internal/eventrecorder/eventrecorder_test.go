package eventrecorder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
}

func start(t *testing.T, cfg Config) (*Recorder, *fake.Clientset, *clock) {
	t.Helper()
	cs := fake.NewClientset()
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	cfg.Client, cfg.Controller, cfg.Instance, cfg.Now = cs, "default-scheduler", "sched-1", clk.now
	cfg.RetryDelay = time.Millisecond
	r := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, cs, clk
}

// serverEvents waits until the server has n events and returns them.
func serverEvents(t *testing.T, cs *fake.Clientset, n int, ok func([]eventsv1.Event) bool) []eventsv1.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := cs.EventsV1().Events("ns").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == n && (ok == nil || ok(l.Items)) {
			return l.Items
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events %+v, want %d", len(l.Items), l.Items, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEventAndSeries(t *testing.T) {
	r, cs, clk := start(t, Config{})
	p := pod("web")
	r.Eventf(p, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %s/%s to %s", "ns", "web", "n1")
	evs := serverEvents(t, cs, 1, nil)
	ev := evs[0]
	if ev.Reason != "Scheduled" || ev.Action != "Binding" || ev.Type != "Normal" || ev.Note != "Successfully assigned ns/web to n1" ||
		ev.Regarding.Name != "web" || ev.Regarding.Kind != "Pod" || ev.ReportingController != "default-scheduler" ||
		ev.ReportingInstance != "sched-1" || ev.Series != nil || ev.EventTime.IsZero() {
		t.Fatalf("event: %+v", ev)
	}
	// Repeats within the window are one event with a series, whatever
	// their note.
	for i := range 3 {
		clk.add(time.Minute)
		r.Eventf(p, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "note %d", i)
	}
	serverEvents(t, cs, 1, func(e []eventsv1.Event) bool { return e[0].Series != nil && e[0].Series.Count == 4 })
	// After the window a repeat is a new event.
	clk.add(SeriesWindow + time.Second)
	r.Eventf(p, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "again")
	serverEvents(t, cs, 2, nil)
	// Another reason or object is another event.
	r.Eventf(p, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", "0/1 nodes are available")
	r.Eventf(pod("db"), nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x")
	serverEvents(t, cs, 4, nil)
}

// TestMaxSeries: the recorder remembers at most MaxSeries events; a
// forgotten one starts a new event.
func TestMaxSeries(t *testing.T) {
	r, cs, _ := start(t, Config{MaxSeries: 2})
	for _, n := range []string{"a", "b", "c"} {
		r.Eventf(pod(n), nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x")
	}
	serverEvents(t, cs, 3, nil)
	r.mu.Lock()
	n := r.lru.Len()
	r.mu.Unlock()
	if n != 2 {
		t.Errorf("remembered %d events, want 2", n)
	}
	r.Eventf(pod("a"), nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x") // forgotten: new
	r.Eventf(pod("c"), nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x") // remembered: series
	serverEvents(t, cs, 4, func(e []eventsv1.Event) bool {
		for _, ev := range e {
			if ev.Regarding.Name == "c" && ev.Series != nil && ev.Series.Count == 2 {
				return true
			}
		}
		return false
	})
}

// TestSeriesOfDeletedEvent: a series whose event is gone writes it again.
func TestSeriesOfDeletedEvent(t *testing.T) {
	r, cs, _ := start(t, Config{})
	p := pod("web")
	r.Eventf(p, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x")
	ev := serverEvents(t, cs, 1, nil)[0]
	if err := cs.EventsV1().Events("ns").Delete(context.Background(), ev.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Eventf(p, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "x")
	serverEvents(t, cs, 1, func(e []eventsv1.Event) bool { return e[0].Series != nil && e[0].Series.Count == 2 })
}

// TestRetryAndDrop: a server error is retried; a full queue drops events
// without blocking the caller.
func TestRetryAndDrop(t *testing.T) {
	cs := fake.NewClientset()
	fails := 2
	var mu sync.Mutex
	cs.PrependReactor("create", "events", func(clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("busy")
		}
		return false, nil, nil
	})
	r := New(Config{Client: cs, Controller: "c", Queue: 2, RetryDelay: time.Millisecond})
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			r.Eventf(pod(fmt.Sprint("p", i)), nil, corev1.EventTypeNormal, "R", "A", "x")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Eventf blocked on a full queue")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	evs := serverEvents(t, cs, 2, nil) // the queue held two; both written after retries
	_ = evs
	if !retriable(errors.New("connection refused")) || retriable(apierrors.NewBadRequest("x")) ||
		retriable(apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, "x")) {
		t.Error("retriable")
	}
}
