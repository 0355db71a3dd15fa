package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(regarding runtime.Object, _ runtime.Object, eventtype, reason, _ string, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := ""
	if p, ok := regarding.(*v1.Pod); ok {
		name = p.Name
	}
	r.events = append(r.events, fmt.Sprintf("%s %s %s %s", name, eventtype, reason, fmt.Sprintf(note, args...)))
}

func (r *recorder) find(prefix string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if strings.HasPrefix(e, prefix) {
			return e, true
		}
	}
	return "", false
}

// fakeCluster is a fake clientset whose pods/binding sets spec.nodeName,
// as the API server does, and which records the bindings.
type fakeCluster struct {
	client *fake.Clientset

	mu       sync.Mutex
	bindings map[string]string // pod name -> node
}

func newFakeCluster(t *testing.T, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{client: fake.NewClientset(objs...), bindings: map[string]string{}}
	fc.client.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		ca, ok := action.(clienttesting.CreateAction)
		if !ok || action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*v1.Binding)
		obj, err := fc.client.Tracker().Get(v1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" {
			return true, nil, fmt.Errorf("pod %s is already bound to %s", pod.Name, pod.Spec.NodeName)
		}
		pod.Spec.NodeName = b.Target.Name
		if err := fc.client.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), pod, pod.Namespace); err != nil {
			return true, nil, err
		}
		fc.mu.Lock()
		fc.bindings[b.Name] = b.Target.Name
		fc.mu.Unlock()
		return true, b, nil
	})
	return fc
}

func (fc *fakeCluster) binding(pod string) (string, bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	n, ok := fc.bindings[pod]
	return n, ok
}

func (fc *fakeCluster) numBindings() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.bindings)
}

// startScheduler runs a scheduler until the test ends; mods adjust its
// configuration.
func startScheduler(t *testing.T, fc *fakeCluster, rec *recorder, mods ...func(*Config)) {
	t.Helper()
	cfg := Config{
		Client:         fc.client,
		Log:            st.TestLogger(t),
		EventRecorder:  rec,
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("new scheduler: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start scheduler: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Stop(); err != nil {
			t.Errorf("stop scheduler: %v", err)
		}
	})
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func node(name, cpu string) *v1.Node {
	return st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{"cpu": cpu, "memory": "8Gi", "pods": "110"}).Obj()
}

func TestSchedulerBindsPodsWithoutOvercommit(t *testing.T) {
	objs := []runtime.Object{node("n1", "1"), node("n2", "1"), node("n3", "1")}
	for i := range 6 {
		objs = append(objs, st.MakePod().Name(fmt.Sprintf("p%d", i)).Req(map[v1.ResourceName]string{"cpu": "500m"}).Obj())
	}
	fc := newFakeCluster(t, objs...)
	rec := &recorder{}
	startScheduler(t, fc, rec)

	poll(t, "6 bindings", func() bool { return fc.numBindings() == 6 })
	perNode := map[string]int{}
	for i := range 6 {
		n, _ := fc.binding(fmt.Sprintf("p%d", i))
		perNode[n]++
	}
	for n, count := range perNode {
		if count != 2 {
			t.Errorf("node %s got %d pods of 500m on 1 cpu, want 2 (per node: %v)", n, count, perNode)
		}
	}
	poll(t, "Scheduled event", func() bool {
		_, ok := rec.find("p0 Normal Scheduled Successfully assigned default/p0 to ")
		return ok
	})
}

func TestSchedulerUnschedulableCondition(t *testing.T) {
	tainted := st.MakeNode().Name("cp").Capacity(map[v1.ResourceName]string{"cpu": "8", "memory": "8Gi", "pods": "110"}).
		Taint("node-role.kubernetes.io/control-plane", "", v1.TaintEffectNoSchedule).Obj()
	pod := st.MakePod().Name("big").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	fc := newFakeCluster(t, node("n1", "1"), node("n2", "1"), tainted, pod)
	rec := &recorder{}
	startScheduler(t, fc, rec)

	const want = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."
	var got *v1.PodCondition
	poll(t, "PodScheduled=False", func() bool {
		p, err := fc.client.CoreV1().Pods("default").Get(context.Background(), "big", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == v1.PodScheduled {
				got = &p.Status.Conditions[i]
				return true
			}
		}
		return false
	})
	if got.Status != v1.ConditionFalse || got.Reason != v1.PodReasonUnschedulable || got.Message != want {
		t.Errorf("got condition %s/%s %q, want False/Unschedulable %q", got.Status, got.Reason, got.Message, want)
	}
	ev, ok := rec.find("big Warning FailedScheduling ")
	if !ok {
		t.Fatalf("got no FailedScheduling event, want one (events: %v)", rec.events)
	}
	if !strings.HasSuffix(ev, want) {
		t.Errorf("got event %q, want it to end with %q", ev, want)
	}
	if _, bound := fc.binding("big"); bound {
		t.Errorf("pod was bound, want it pending")
	}
}

func TestSchedulerRetriesWhenNodeAdded(t *testing.T) {
	pod := st.MakePod().Name("waiting").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	fc := newFakeCluster(t, node("small", "1"), pod)
	rec := &recorder{}
	startScheduler(t, fc, rec)

	poll(t, "FailedScheduling event", func() bool {
		_, ok := rec.find("waiting Warning FailedScheduling 0/1 nodes are available: 1 Insufficient cpu.")
		return ok
	})
	if _, err := fc.client.CoreV1().Nodes().Create(context.Background(), node("big", "4"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	poll(t, "binding to the new node", func() bool {
		n, ok := fc.binding("waiting")
		return ok && n == "big"
	})
}

func TestSchedulerIgnoresOtherSchedulers(t *testing.T) {
	mine := st.MakePod().Name("mine").Obj()
	other := st.MakePod().Name("other").SchedulerName("someone-else").Obj()
	fc := newFakeCluster(t, node("n1", "1"), mine, other)
	startScheduler(t, fc, &recorder{})

	poll(t, "binding of mine", func() bool { _, ok := fc.binding("mine"); return ok })
	if _, ok := fc.binding("other"); ok {
		t.Errorf("pod of another scheduler was bound")
	}
}

func TestSchedulerRetriesFailedBinding(t *testing.T) {
	fc := newFakeCluster(t, node("n1", "1"), st.MakePod().Name("p").Obj())
	var attempts atomic.Int32
	fc.client.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		if attempts.Add(1) == 1 {
			return true, nil, fmt.Errorf("injected binding failure")
		}
		return false, nil, nil
	})
	rec := &recorder{}
	startScheduler(t, fc, rec)

	poll(t, "binding after a failed attempt", func() bool { _, ok := fc.binding("p"); return ok })
	if got := attempts.Load(); got < 2 {
		t.Errorf("got %d binding attempts, want at least 2", got)
	}
	if _, ok := rec.find("p Warning FailedScheduling "); !ok {
		t.Errorf("got no FailedScheduling event for the failed binding, want one (events: %v)", rec.events)
	}
}

func TestSchedulerWaitsForSchedulingGates(t *testing.T) {
	gated := st.MakePod().Name("gated").SchedulingGates("example.com/wait").Obj()
	fc := newFakeCluster(t, node("n1", "1"), gated, st.MakePod().Name("free").Obj())
	startScheduler(t, fc, &recorder{})

	poll(t, "binding of the ungated pod", func() bool { _, ok := fc.binding("free"); return ok })
	if _, ok := fc.binding("gated"); ok {
		t.Fatalf("gated pod was bound")
	}
	p, err := fc.client.CoreV1().Pods("default").Get(context.Background(), "gated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.SchedulingGates = nil
	if _, err := fc.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "binding once the gate is removed", func() bool { _, ok := fc.binding("gated"); return ok })
}

func TestSchedulerForgetsDeletedPendingPods(t *testing.T) {
	pod := st.MakePod().Name("doomed").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	fc := newFakeCluster(t, node("n1", "1"), pod)
	rec := &recorder{}
	startScheduler(t, fc, rec)
	poll(t, "FailedScheduling event", func() bool { _, ok := rec.find("doomed Warning FailedScheduling"); return ok })
	if err := fc.client.CoreV1().Pods("default").Delete(context.Background(), "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A node that would fit the pod must not bring it back.
	if _, err := fc.client.CoreV1().Nodes().Create(context.Background(), node("big", "4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	canary := st.MakePod().Name("canary").Obj()
	if _, err := fc.client.CoreV1().Pods("default").Create(context.Background(), canary, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "binding of a later pod", func() bool { _, ok := fc.binding("canary"); return ok })
	if _, ok := fc.binding("doomed"); ok {
		t.Errorf("deleted pod was bound")
	}
}

// TestSchedulerRecordsEventsThroughEventClient checks that, without an
// EventRecorder, the Scheduled event is written through EventClient and
// the binding through Client.
func TestSchedulerRecordsEventsThroughEventClient(t *testing.T) {
	fc := newFakeCluster(t, node("n1", "1"), st.MakePod().Name("p0").Obj())
	events := fake.NewClientset()
	startScheduler(t, fc, nil, func(c *Config) {
		c.EventRecorder = nil
		c.EventClient = events
	})
	poll(t, "the binding", func() bool { _, ok := fc.binding("p0"); return ok })
	poll(t, "a Scheduled event through the event client", func() bool {
		l, err := events.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
		return err == nil && len(l.Items) == 1 && l.Items[0].Reason == "Scheduled"
	})
	if l, err := fc.client.EventsV1().Events("").List(context.Background(), metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("events through the main client: got %v (%v), want none", l, err)
	}
}
