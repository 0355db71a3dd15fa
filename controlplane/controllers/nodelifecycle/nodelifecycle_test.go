package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

func readyNode(name string, status corev1.ConditionStatus, heartbeat time.Time) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.NewTime(heartbeat), LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour)),
		}}},
	}
}

func lease(node string, renew time.Time) *coordinationv1.Lease {
	rt := metav1.NewMicroTime(renew)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: NodeLeaseNamespace, Name: node},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &node, RenewTime: &rt},
	}
}

func podOn(name, node string, tolerations ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: node, Tolerations: tolerations},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	clock    *testingclock.FakeClock
	recorder *record.FakeRecorder
	factory  informers.SharedInformerFactory
	events   []string
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	return &fixture{
		t:        t,
		client:   fake.NewClientset(objs...),
		clock:    testingclock.NewFakeClock(t0),
		recorder: record.NewFakeRecorder(1000),
	}
}

func (f *fixture) lifecycle(opts Options) *Controller {
	f.t.Helper()
	f.factory = informers.NewSharedInformerFactory(f.client, 0)
	opts.Clock = f.clock
	c, err := New(f.client, f.factory, f.recorder, testLog(f.t), nil, opts)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	f.start(c.synced)
	return c
}

func (f *fixture) eviction() *EvictionController {
	f.t.Helper()
	f.factory = informers.NewSharedInformerFactory(f.client, 0)
	c, err := NewEviction(f.client, f.factory, f.recorder, testLog(f.t), nil, f.clock)
	if err != nil {
		f.t.Fatalf("NewEviction: %v", err)
	}
	f.start(c.synced)
	return c
}

func (f *fixture) start(synced []cache.InformerSynced) {
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(func() {
		cancel()
		f.factory.Shutdown()
	})
	f.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		f.t.Fatal("caches did not sync")
	}
}

// waitCache polls until cond holds (the informer caught up with a write).
func (f *fixture) waitCache(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) node(name string) *corev1.Node {
	f.t.Helper()
	n, err := f.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get node %s: %v", name, err)
	}
	return n
}

func (f *fixture) drainEvents() []string {
	for {
		select {
		case e := <-f.recorder.Events:
			f.events = append(f.events, e)
		default:
			return f.events
		}
	}
}

func (f *fixture) hasEvent(substr string) bool {
	return slices.ContainsFunc(f.drainEvents(), func(e string) bool { return strings.Contains(e, substr) })
}

func taintSet(n *corev1.Node) []string {
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	slices.Sort(out)
	return out
}

func (c *Controller) mustSync(t *testing.T, name string) time.Duration {
	t.Helper()
	next, err := c.sync(context.Background(), name)
	if err != nil {
		t.Fatalf("sync %s: %v", name, err)
	}
	return next
}

func TestNodeGoesUnknownAndRecovers(t *testing.T) {
	f := newFixture(t,
		readyNode("n1", corev1.ConditionTrue, t0), lease("n1", t0),
		readyNode("n2", corev1.ConditionTrue, t0), lease("n2", t0),
		podOn("p", "n1"),
	)
	c := f.lifecycle(Options{NodeMonitorGracePeriod: 40 * time.Second, EvictionRate: -1})
	ctx := context.Background()

	if next := c.mustSync(t, "n1"); next <= 0 || next > DefaultNodeMonitorPeriod {
		t.Errorf("got next check in %s, want within the monitor period", next)
	}
	c.mustSync(t, "n2")

	// 30 s: n2 renews its lease, n1 does not; both are within grace.
	f.clock.Step(30 * time.Second)
	if _, err := f.client.CoordinationV1().Leases(NodeLeaseNamespace).Update(ctx, lease("n2", f.clock.Now()), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitCache("n2's lease", func() bool {
		l, err := c.leases.Leases(NodeLeaseNamespace).Get("n2")
		return err == nil && l.Spec.RenewTime.Time.Equal(f.clock.Now())
	})
	c.mustSync(t, "n1")
	c.mustSync(t, "n2")
	if got := condition(f.node("n1"), corev1.NodeReady).Status; got != corev1.ConditionTrue {
		t.Fatalf("got n1 Ready %s within the grace period, want True", got)
	}

	// 41 s: n1 is past its grace period, n2 is not.
	f.clock.Step(11 * time.Second)
	c.mustSync(t, "n1")
	c.mustSync(t, "n2")
	n1 := f.node("n1")
	ready := condition(n1, corev1.NodeReady)
	if ready.Status != corev1.ConditionUnknown || ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
		t.Errorf("got Ready %s %q %q, want Unknown NodeStatusUnknown \"Kubelet stopped posting node status.\"", ready.Status, ready.Reason, ready.Message)
	}
	if !ready.LastHeartbeatTime.Time.Equal(t0) {
		t.Errorf("got lastHeartbeatTime %s, want the kubelet's %s kept", ready.LastHeartbeatTime, t0)
	}
	if mp := condition(n1, corev1.NodeMemoryPressure); mp == nil || mp.Status != corev1.ConditionUnknown || mp.Reason != "NodeStatusNeverUpdated" {
		t.Errorf("got MemoryPressure %+v, want Unknown NodeStatusNeverUpdated", mp)
	}
	want := []string{"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}
	if got := taintSet(n1); !slices.Equal(got, want) {
		t.Errorf("got n1 taints %v, want %v", got, want)
	}
	for _, tt := range n1.Spec.Taints {
		if tt.Effect == corev1.TaintEffectNoExecute && (tt.TimeAdded == nil || !tt.TimeAdded.Time.Equal(f.clock.Now())) {
			t.Errorf("got NoExecute timeAdded %v, want %s", tt.TimeAdded, f.clock.Now())
		}
	}
	if got := taintSet(f.node("n2")); len(got) != 0 {
		t.Errorf("got n2 taints %v, want none", got)
	}
	p, err := f.client.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if podReady(p) {
		t.Error("got pod p on the unknown node still Ready, want Ready=False")
	}
	if !f.hasEvent("NodeNotReady Node n1 status is now: NodeNotReady") {
		t.Errorf("got events %v, want NodeNotReady for n1", f.drainEvents())
	}
	if !f.hasEvent("Warning NodeNotReady Node is not ready") {
		t.Errorf("got events %v, want NodeNotReady on the pod", f.drainEvents())
	}

	// The kubelet comes back: status and lease renewed.
	f.clock.Step(5 * time.Second)
	n1 = f.node("n1")
	back := readyNode("n1", corev1.ConditionTrue, f.clock.Now())
	n1.Status = back.Status
	if _, err := f.client.CoreV1().Nodes().UpdateStatus(ctx, n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitCache("n1 ready again", func() bool {
		n, err := c.nodes.Get("n1")
		return err == nil && nodeReady(n)
	})
	c.mustSync(t, "n1")
	if got := taintSet(f.node("n1")); len(got) != 0 {
		t.Errorf("got n1 taints %v after recovery, want none", got)
	}
}

func TestNotReadyTaintsAndSwap(t *testing.T) {
	f := newFixture(t,
		readyNode("n1", corev1.ConditionFalse, t0), lease("n1", t0),
		readyNode("n2", corev1.ConditionTrue, t0), lease("n2", t0),
	)
	c := f.lifecycle(Options{NodeMonitorGracePeriod: 40 * time.Second, EvictionRate: -1})
	c.mustSync(t, "n1")
	want := []string{"node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/not-ready:NoSchedule"}
	if got := taintSet(f.node("n1")); !slices.Equal(got, want) {
		t.Fatalf("got taints %v, want %v", got, want)
	}
	f.waitCache("n1 taints", func() bool {
		n, _ := c.nodes.Get("n1")
		return len(n.Spec.Taints) == 2
	})
	// Silence: not-ready becomes unreachable.
	f.clock.Step(41 * time.Second)
	if _, err := f.client.CoordinationV1().Leases(NodeLeaseNamespace).Update(context.Background(), lease("n2", f.clock.Now()), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitCache("n2's lease", func() bool {
		l, _ := c.leases.Leases(NodeLeaseNamespace).Get("n2")
		return l.Spec.RenewTime.Time.Equal(f.clock.Now())
	})
	c.mustSync(t, "n2")
	c.mustSync(t, "n1")
	want = []string{"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}
	if got := taintSet(f.node("n1")); !slices.Equal(got, want) {
		t.Errorf("got taints %v, want %v", got, want)
	}
}

func TestConditionTaints(t *testing.T) {
	n := readyNode("n1", corev1.ConditionTrue, t0)
	n.Spec.Unschedulable = true
	n.Status.Conditions = append(n.Status.Conditions,
		corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue},
		corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse})
	n.Spec.Taints = []corev1.Taint{
		{Key: "user", Value: "x", Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule},
	}
	f := newFixture(t, n, lease("n1", t0))
	c := f.lifecycle(Options{EvictionRate: -1})
	c.mustSync(t, "n1")
	want := []string{"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/unschedulable:NoSchedule", "user:NoSchedule"}
	if got := taintSet(f.node("n1")); !slices.Equal(got, want) {
		t.Errorf("got taints %v, want %v", got, want)
	}
}

func TestFullDisruptionKeepsPods(t *testing.T) {
	f := newFixture(t, readyNode("n1", corev1.ConditionTrue, t0), lease("n1", t0))
	c := f.lifecycle(Options{NodeMonitorGracePeriod: 40 * time.Second, EvictionRate: -1})
	c.mustSync(t, "n1")
	f.clock.Step(41 * time.Second)
	c.mustSync(t, "n1")
	want := []string{"node.kubernetes.io/unreachable:NoSchedule"}
	if got := taintSet(f.node("n1")); !slices.Equal(got, want) {
		t.Errorf("got taints %v with every node down, want %v (no NoExecute)", got, want)
	}
}

func TestStartupGracePeriod(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new", CreationTimestamp: metav1.NewTime(t0)}}
	f := newFixture(t, n, readyNode("other", corev1.ConditionTrue, t0), lease("other", t0))
	c := f.lifecycle(Options{NodeStartupGracePeriod: 60 * time.Second, EvictionRate: -1})
	f.clock.Step(59 * time.Second)
	c.mustSync(t, "new")
	if cond := condition(f.node("new"), corev1.NodeReady); cond != nil {
		t.Fatalf("got Ready %+v within the startup grace period, want none", cond)
	}
	f.clock.Step(2 * time.Second)
	c.mustSync(t, "new")
	cond := condition(f.node("new"), corev1.NodeReady)
	if cond == nil || cond.Status != corev1.ConditionUnknown || cond.Reason != "NodeStatusNeverUpdated" || cond.Message != "Kubelet never posted node status." {
		t.Errorf("got Ready %+v, want Unknown NodeStatusNeverUpdated", cond)
	}
}

func TestEvictionRateLimit(t *testing.T) {
	f := newFixture(t,
		readyNode("n1", corev1.ConditionUnknown, t0), readyNode("n2", corev1.ConditionUnknown, t0),
		readyNode("n3", corev1.ConditionUnknown, t0), readyNode("ok", corev1.ConditionTrue, t0),
	)
	c := f.lifecycle(Options{EvictionRate: 0.1})
	noExec := func(n string) bool { return hasNoExecute(f.node(n)) }
	var waits []time.Duration
	for _, n := range []string{"n1", "n2", "n3"} {
		waits = append(waits, c.mustSync(t, n))
	}
	if !noExec("n1") || noExec("n2") || noExec("n3") {
		t.Fatalf("got NoExecute on n1/n2/n3 = %v/%v/%v, want only the first", noExec("n1"), noExec("n2"), noExec("n3"))
	}
	if waits[1] > 10*time.Second {
		t.Errorf("got next check of a held-back node in %s, want at most 10s", waits[1])
	}
	f.clock.Step(10 * time.Second)
	c.mustSync(t, "n2")
	c.mustSync(t, "n3")
	if !noExec("n2") || noExec("n3") {
		t.Errorf("got NoExecute on n2/n3 = %v/%v after 10s, want n2 only", noExec("n2"), noExec("n3"))
	}
	f.clock.Step(10 * time.Second)
	c.mustSync(t, "n3")
	if !noExec("n3") {
		t.Error("got no NoExecute on n3 after 20s, want one")
	}
}

// TestControllerRuns checks the wiring: handlers, queue and delayed
// rechecks on the fake clock.
func TestControllerRuns(t *testing.T) {
	f := newFixture(t,
		readyNode("n1", corev1.ConditionTrue, t0), lease("n1", t0),
		readyNode("n2", corev1.ConditionTrue, t0), lease("n2", t0),
	)
	c := f.lifecycle(Options{NodeMonitorGracePeriod: 20 * time.Second, NodeMonitorPeriod: time.Second, EvictionRate: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for !hasNoExecute(f.node("n1")) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: n1 taints %v", taintSet(f.node("n1")))
		}
		// n2 keeps renewing; n1 is silent.
		f.clock.Step(time.Second)
		if _, err := f.client.CoordinationV1().Leases(NodeLeaseNamespace).Update(ctx, lease("n2", f.clock.Now()), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f.clock.Since(t0) < 20*time.Second {
		t.Errorf("got n1 tainted after %s of silence, want no earlier than the 20s grace period", f.clock.Since(t0))
	}
	if hasNoExecute(f.node("n2")) {
		t.Error("got n2 tainted while renewing, want untouched")
	}
}

func toleration(key string, seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

func ptr[T any](v T) *T { return &v }

func taintedNode(name string, added time.Time) *corev1.Node {
	n := readyNode(name, corev1.ConditionUnknown, t0)
	ta := metav1.NewTime(added)
	n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &ta}}
	return n
}

func (f *fixture) podExists(name string) bool {
	_, err := f.client.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

func TestEviction(t *testing.T) {
	f := newFixture(t,
		taintedNode("n1", t0),
		podOn("intolerant", "n1"),
		podOn("other-key", "n1", toleration("something-else", nil)),
		podOn("five-minutes", "n1", toleration(corev1.TaintNodeUnreachable, ptr(int64(300)))),
		podOn("forever", "n1", toleration(corev1.TaintNodeUnreachable, nil)),
		podOn("zero", "n1", toleration("", ptr(int64(0)))),
	)
	c := f.eviction()
	ctx := context.Background()
	sync := func(pod string) time.Duration {
		t.Helper()
		next, err := c.sync(ctx, "ns/"+pod)
		if err != nil {
			t.Fatalf("sync %s: %v", pod, err)
		}
		return next
	}
	for _, p := range []string{"intolerant", "other-key", "five-minutes", "forever", "zero"} {
		next := sync(p)
		if p == "five-minutes" && next != 300*time.Second {
			t.Errorf("got recheck of five-minutes in %s, want 300s", next)
		}
	}
	tests := []struct {
		pod  string
		want bool
	}{{"intolerant", false}, {"other-key", false}, {"zero", false}, {"five-minutes", true}, {"forever", true}}
	for _, tt := range tests {
		if got := f.podExists(tt.pod); got != tt.want {
			t.Errorf("at the taint: got pod %s present=%v, want %v", tt.pod, got, tt.want)
		}
	}
	if !f.hasEvent("Normal TaintManagerEviction Marking for deletion Pod ns/intolerant") {
		t.Errorf("got events %v, want a TaintManagerEviction for ns/intolerant", f.drainEvents())
	}

	f.clock.Step(299 * time.Second)
	sync("five-minutes")
	if !f.podExists("five-minutes") {
		t.Error("got five-minutes deleted after 299s, want it kept until 300s")
	}
	f.clock.Step(time.Second)
	sync("five-minutes")
	sync("forever")
	if f.podExists("five-minutes") {
		t.Error("got five-minutes kept after 300s, want it deleted")
	}
	if !f.podExists("forever") {
		t.Error("got forever deleted, want it kept")
	}
}

func TestEvictionCancelledWhenTaintGoes(t *testing.T) {
	f := newFixture(t, taintedNode("n1", t0), podOn("p", "n1", toleration(corev1.TaintNodeUnreachable, ptr(int64(60)))))
	c := f.eviction()
	ctx := context.Background()
	if _, err := c.sync(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	n := f.node("n1")
	n.Spec.Taints = nil
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitCache("untainted node", func() bool {
		n, _ := c.nodes.Get("n1")
		return len(n.Spec.Taints) == 0
	})
	f.clock.Step(2 * time.Minute)
	if _, err := c.sync(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	if !f.podExists("p") {
		t.Error("got p deleted after its node recovered, want it kept")
	}
	if !f.hasEvent("Cancelling deletion of Pod ns/p") {
		t.Errorf("got events %v, want a cancellation for ns/p", f.drainEvents())
	}
}

func TestEvictionRuns(t *testing.T) {
	f := newFixture(t, readyNode("n1", corev1.ConditionTrue, t0), podOn("p", "n1", toleration(corev1.TaintNodeUnreachable, ptr(int64(5)))))
	c := f.eviction()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, 1)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// The node gets tainted now; the pod tolerates it for 5 s.
	n := taintedNode("n1", f.clock.Now())
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.podExists("p") {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the eviction")
		}
		f.clock.Step(500 * time.Millisecond)
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.clock.Since(t0); got < 5*time.Second {
		t.Errorf("got the pod evicted %s after the taint, want no earlier than its 5s toleration", got)
	}
	fmt.Fprint(tWriter{t}, strings.Join(f.drainEvents(), "\n"))
}

// A pod is evicted once: when the pod's own status update (DisruptionTarget)
// brings it back to the queue before the informer has seen the deletion,
// it is not announced and deleted a second time.
func TestEvictionOnceWhileTheCacheLags(t *testing.T) {
	f := newFixture(t, taintedNode("n1", t0), podOn("p", "n1"))
	deletes := 0
	// The deletion is accepted but never reaches the informer (a watch
	// that lags behind): the cache keeps the pod without a
	// deletionTimestamp.
	f.client.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		deletes++
		return true, nil, nil
	})
	c := f.eviction()
	ctx := context.Background()
	if _, err := c.sync(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	f.waitCache("the DisruptionTarget condition", func() bool {
		p, err := c.pods.Pods("ns").Get("p")
		return err == nil && slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.DisruptionTarget
		})
	})
	if _, err := c.sync(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	if deletes != 1 {
		t.Errorf("got %d deletes, want 1", deletes)
	}
	n := 0
	for _, e := range f.drainEvents() {
		if strings.Contains(e, "Marking for deletion Pod ns/p") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d TaintManagerEviction events, want 1: %v", n, f.drainEvents())
	}
}
