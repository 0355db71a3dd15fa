package queue

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func less(a, b *framework.QueuedPodInfo) bool {
	pa, pb := int32(0), int32(0)
	if a.Pod.Spec.Priority != nil {
		pa = *a.Pod.Spec.Priority
	}
	if b.Pod.Spec.Priority != nil {
		pb = *b.Pod.Spec.Priority
	}
	return pa > pb || (pa == pb && a.Timestamp.Before(b.Timestamp))
}

type gate struct{}

func (gate) Name() string { return "Gate" }
func (gate) PreEnqueue(_ context.Context, pod *v1.Pod) *framework.Status {
	if len(pod.Spec.SchedulingGates) > 0 {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, "gated")
	}
	return nil
}

// newQueue returns a queue with a fake clock. Plugin "NodePlugin" is
// helped by node additions of nodes labelled ok=true; "PodPlugin" by
// assigned pod deletions.
func newQueue(t *testing.T) (*PriorityQueue, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	q := New(Options{
		Log:        st.TestLogger(t),
		Less:       less,
		PreEnqueue: []framework.PreEnqueuePlugin{gate{}},
		Hints: map[string][]framework.ClusterEventWithHint{
			"NodePlugin": {{
				Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add},
				QueueingHintFn: func(_ *slog.Logger, _ *v1.Pod, _, newObj any) (framework.QueueingHint, error) {
					if n, ok := newObj.(*v1.Node); ok && n.Labels["ok"] == "true" {
						return framework.Queue, nil
					}
					return framework.QueueSkip, nil
				},
			}},
			"PodPlugin": {{Event: framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Delete}}},
		},
		Now: c.now,
	})
	return q, c
}

func popName(t *testing.T, q *PriorityQueue) string {
	t.Helper()
	p, err := q.Pop()
	if err != nil {
		t.Fatalf("pop: %v", err)
	}
	return p.Pod.Name
}

func TestPopOrder(t *testing.T) {
	q, c := newQueue(t)
	q.Add(st.MakePod().Name("low-early").Priority(1).Obj())
	c.step(time.Second)
	q.Add(st.MakePod().Name("high").Priority(10).Obj())
	c.step(time.Second)
	q.Add(st.MakePod().Name("low-late").Priority(1).Obj())
	for _, want := range []string{"high", "low-early", "low-late"} {
		if got := popName(t, q); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestBackoffDuration(t *testing.T) {
	q, _ := newQueue(t)
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 30: 10 * time.Second} {
		if got := q.backoffDuration(attempts); got != want {
			t.Errorf("attempts %d: got %v, want %v", attempts, got, want)
		}
	}
}

// reject pops the pod and returns it as rejected by plugin.
func reject(t *testing.T, q *PriorityQueue, plugin string) *framework.QueuedPodInfo {
	t.Helper()
	p, err := q.Pop()
	if err != nil {
		t.Fatal(err)
	}
	p.UnschedulablePlugins = sets.New(plugin)
	if err := q.AddUnschedulableIfNotPresent(p, true); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnschedulablePodsMoveOnlyOnHelpfulEvents(t *testing.T) {
	okNode := st.MakeNode().Name("n").Label("ok", "true").Obj()
	badNode := st.MakeNode().Name("n").Obj()
	deleted := st.MakePod().Name("gone").Node("n").Obj()
	tests := []struct {
		name   string
		plugin string
		event  framework.ClusterEvent
		oldObj any
		newObj any
		wait   time.Duration
		want   string
	}{
		{"registered event, hint says queue, backoff running", "NodePlugin", framework.EventNodeAdd, nil, okNode, 0, "backoff"},
		{"registered event, hint says queue, backoff over", "NodePlugin", framework.EventNodeAdd, nil, okNode, 2 * time.Second, "active"},
		{"registered event, hint says skip", "NodePlugin", framework.EventNodeAdd, nil, badNode, 2 * time.Second, "unschedulable"},
		{"unregistered event", "NodePlugin", framework.EventAssignedPodDelete, deleted, nil, 2 * time.Second, "unschedulable"},
		{"registered event without hint", "PodPlugin", framework.EventAssignedPodDelete, deleted, nil, 2 * time.Second, "active"},
		{"plugin without registered events moves on any event", "OtherPlugin", framework.EventAssignedPodDelete, deleted, nil, 2 * time.Second, "active"},
		{"timeout moves everything", "NodePlugin", framework.EventUnschedulableTimeout, nil, nil, 2 * time.Second, "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, c := newQueue(t)
			pod := st.MakePod().Name("p").Obj()
			q.Add(pod)
			reject(t, q, tt.plugin)
			if got := q.Where(pod); got != "unschedulable" {
				t.Fatalf("after rejection: got %q, want unschedulable", got)
			}
			c.step(tt.wait)
			q.MoveAllToActiveOrBackoffQueue(tt.event, tt.oldObj, tt.newObj, nil)
			if got := q.Where(pod); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventDuringCycleSendsPodToBackoff(t *testing.T) {
	tests := []struct {
		name  string
		event framework.ClusterEvent
		obj   any
		want  string
	}{
		{"helpful event during the cycle", framework.EventNodeAdd, st.MakeNode().Name("n").Label("ok", "true").Obj(), "backoff"},
		{"unhelpful event during the cycle", framework.EventNodeAdd, st.MakeNode().Name("n").Obj(), "unschedulable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := newQueue(t)
			pod := st.MakePod().Name("p").Obj()
			q.Add(pod)
			p, err := q.Pop()
			if err != nil {
				t.Fatal(err)
			}
			q.MoveAllToActiveOrBackoffQueue(tt.event, nil, tt.obj, nil)
			p.UnschedulablePlugins = sets.New("NodePlugin")
			if err := q.AddUnschedulableIfNotPresent(p, true); err != nil {
				t.Fatal(err)
			}
			if got := q.Where(pod); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsGoToBackoffAndFlush(t *testing.T) {
	q, c := newQueue(t)
	pod := st.MakePod().Name("p").Obj()
	q.Add(pod)
	p, _ := q.Pop()
	if err := q.AddUnschedulableIfNotPresent(p, false); err != nil {
		t.Fatal(err)
	}
	if got := q.Where(pod); got != "backoff" {
		t.Fatalf("got %q, want backoff", got)
	}
	c.step(500 * time.Millisecond)
	q.FlushBackoffQCompleted()
	if got := q.Where(pod); got != "backoff" {
		t.Errorf("before the 1 s backoff: got %q, want backoff", got)
	}
	c.step(600 * time.Millisecond)
	q.FlushBackoffQCompleted()
	if got := q.Where(pod); got != "active" {
		t.Errorf("after the 1 s backoff: got %q, want active", got)
	}
	// A second failure backs off for 2 s.
	p, _ = q.Pop()
	if err := q.AddUnschedulableIfNotPresent(p, false); err != nil {
		t.Fatal(err)
	}
	c.step(1500 * time.Millisecond)
	q.FlushBackoffQCompleted()
	if got := q.Where(pod); got != "backoff" {
		t.Errorf("1.5 s into the second backoff: got %q, want backoff", got)
	}
	c.step(600 * time.Millisecond)
	q.FlushBackoffQCompleted()
	if got := q.Where(pod); got != "active" {
		t.Errorf("after the 2 s backoff: got %q, want active", got)
	}
}

func TestLeftoverUnschedulablePodsAreRetried(t *testing.T) {
	q, c := newQueue(t)
	pod := st.MakePod().Name("p").Obj()
	q.Add(pod)
	reject(t, q, "NodePlugin")
	c.step(4 * time.Minute)
	q.FlushUnschedulableLeftover()
	if got := q.Where(pod); got != "unschedulable" {
		t.Errorf("after 4 min: got %q, want unschedulable", got)
	}
	c.step(2 * time.Minute)
	q.FlushUnschedulableLeftover()
	if got := q.Where(pod); got != "active" {
		t.Errorf("after 6 min: got %q, want active", got)
	}
}

func TestGatedPods(t *testing.T) {
	q, _ := newQueue(t)
	gated := st.MakePod().Name("p").SchedulingGates("wait").Obj()
	q.Add(gated)
	if got := q.Where(gated); got != "gated" {
		t.Fatalf("got %q, want gated", got)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventUnschedulableTimeout, nil, nil, nil)
	if got := q.Where(gated); got != "gated" {
		t.Errorf("after an event: got %q, want gated", got)
	}
	ungated := st.MakePod().Name("p").Obj()
	q.Update(gated, ungated)
	if got := q.Where(ungated); got != "active" {
		t.Errorf("after removing the gates: got %q, want active", got)
	}
}

func TestUpdateOfUnschedulablePod(t *testing.T) {
	tests := []struct {
		name   string
		update func(*v1.Pod)
		want   string
	}{
		{"status change stays", func(p *v1.Pod) { p.Status.Message = "x"; p.ResourceVersion = "2" }, "unschedulable"},
		{"label change requeues", func(p *v1.Pod) { p.Labels = map[string]string{"a": "b"} }, "backoff"},
		{"toleration change requeues", func(p *v1.Pod) { p.Spec.Tolerations = []v1.Toleration{{Operator: v1.TolerationOpExists}} }, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := newQueue(t)
			pod := st.MakePod().Name("p").Obj()
			q.Add(pod)
			reject(t, q, "NodePlugin")
			updated := pod.DeepCopy()
			tt.update(updated)
			q.Update(pod, updated)
			if got := q.Where(updated); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeleteAndClose(t *testing.T) {
	q, _ := newQueue(t)
	pod := st.MakePod().Name("p").Obj()
	q.Add(pod)
	q.Delete(pod)
	if got := q.Where(pod); got != "" {
		t.Errorf("after delete: got %q, want absent", got)
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Pop()
		done <- err
	}()
	q.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
}
