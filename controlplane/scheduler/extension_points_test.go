package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins"
)

// pluginCalls records "<Point> <pod> <node>" calls of the test plugins.
type pluginCalls struct {
	mu    sync.Mutex
	calls []string
}

func (c *pluginCalls) add(point string, pod *v1.Pod, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, point+" "+pod.Name+" "+node)
}

// count counts the calls that start with prefix.
func (c *pluginCalls) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, got := range c.calls {
		if strings.HasPrefix(got, prefix) {
			n++
		}
	}
	return n
}

func (c *pluginCalls) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.calls)
}

// rejectReserve is a Reserve plugin that rejects the pods named reject.
type rejectReserve struct {
	reject string
	calls  *pluginCalls
}

func (*rejectReserve) Name() string { return "RejectReserve" }

func (p *rejectReserve) Reserve(_ context.Context, _ *framework.CycleState, pod *v1.Pod, node string) *framework.Status {
	p.calls.add("Reserve", pod, node)
	if pod.Name == p.reject {
		return framework.NewStatus(framework.Unschedulable, "rejected by RejectReserve")
	}
	return nil
}

func (p *rejectReserve) Unreserve(_ context.Context, _ *framework.CycleState, pod *v1.Pod, node string) {
	p.calls.add("Unreserve", pod, node)
}

// noVictims is a PostFilter plugin that finds nothing to preempt and
// records the status of node n1 it was given.
type noVictims struct {
	calls *pluginCalls
}

func (*noVictims) Name() string { return "NoVictims" }

func (p *noVictims) PostFilter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, m *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	p.calls.add("PostFilter", pod, m.Get("n1").Message())
	return nil, framework.NewStatus(framework.Unschedulable, "no victims found by NoVictims")
}

// nominator is a PostFilter plugin that nominates node for every pod that
// fits nowhere, as a preemption plugin does once it has chosen victims.
type nominator struct{ node string }

func (*nominator) Name() string { return "Nominator" }

func (p *nominator) PostFilter(context.Context, *framework.CycleState, *v1.Pod, *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	return &framework.PostFilterResult{NominatedNodeName: p.node}, framework.NewStatus(framework.Unschedulable, "victims on "+p.node)
}

// startSchedulerWith runs a scheduler whose profile is the default one
// plus pl, until the test ends.
func startSchedulerWith(t *testing.T, fc *fakeCluster, rec *recorder, pl framework.Plugin) {
	t.Helper()
	profile := plugins.DefaultProfile()
	profile.Plugins = append(profile.Plugins, runtime.PluginConfig{Name: pl.Name()})
	startScheduler(t, fc, rec, func(c *Config) {
		c.Profile = &profile
		c.Registry = runtime.Registry{pl.Name(): func(context.Context, any, framework.Handle) (framework.Plugin, error) { return pl, nil }}
	})
}

func podScheduledCondition(t *testing.T, fc *fakeCluster, name string) *v1.PodCondition {
	t.Helper()
	p, err := fc.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return scheduledCondition(p)
}

// TestSchedulerReserveRejectionUnreserves: when a Reserve plugin rejects
// the pod, the scheduling cycle runs Unreserve for it on the same node,
// forgets the assumed pod (a pod that needs the same room is bound to the
// node afterwards), does not bind it, and reports it unschedulable with
// the plugin's reason in the form of a fit error on that one node, as
// upstream does.
func TestSchedulerReserveRejectionUnreserves(t *testing.T) {
	calls := &pluginCalls{}
	blocked := st.MakePod().Name("blocked").Req(map[v1.ResourceName]string{"cpu": "600m"}).Obj()
	fc := newFakeCluster(t, node("n1", "1"), blocked)
	rec := &recorder{}
	startSchedulerWith(t, fc, rec, &rejectReserve{reject: "blocked", calls: calls})

	poll(t, "Unreserve of the rejected pod", func() bool { return calls.count("Unreserve blocked n1") > 0 })
	const msg = "0/1 nodes are available: 1 rejected by RejectReserve."
	var cond *v1.PodCondition
	poll(t, "PodScheduled=False", func() bool {
		cond = podScheduledCondition(t, fc, "blocked")
		return cond != nil
	})
	if cond.Status != v1.ConditionFalse || cond.Reason != v1.PodReasonUnschedulable || cond.Message != msg {
		t.Errorf("got condition %s/%s %q, want False/Unschedulable %q", cond.Status, cond.Reason, cond.Message, msg)
	}
	if _, ok := rec.find("blocked Warning FailedScheduling " + msg); !ok {
		t.Errorf("got no FailedScheduling event %q, want one", msg)
	}

	// 600m more fits n1 only if the rejected pod was forgotten.
	other := st.MakePod().Name("other").Req(map[v1.ResourceName]string{"cpu": "600m"}).Obj()
	if _, err := fc.client.CoreV1().Pods("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "binding of the other pod", func() bool { n, ok := fc.binding("other"); return ok && n == "n1" })
	if n, ok := fc.binding("blocked"); ok {
		t.Errorf("rejected pod was bound to %s, want it pending", n)
	}
	// Every cycle of the rejected pod ran its Reserve and Unreserve to
	// completion before the other pod's cycle, and once the other pod
	// took the room no cycle reaches Reserve for it again.
	reserved, unreserved := calls.count("Reserve blocked n1"), calls.count("Unreserve blocked n1")
	if reserved == 0 || unreserved != reserved {
		t.Errorf("got %d Reserve and %d Unreserve of the rejected pod, want as many of each (calls: %v)", reserved, unreserved, calls)
	}
	if got := calls.count("Reserve other n1"); got != 1 {
		t.Errorf("got %d Reserve of the bound pod, want 1 (calls: %v)", got, calls)
	}
	if got := calls.count("Unreserve other n1"); got != 0 {
		t.Errorf("got %d Unreserve of the bound pod, want 0 (calls: %v)", got, calls)
	}
}

// TestSchedulerPostFilterRunsWhenNoNodeFits: PostFilter runs only for a
// pod that fits no node, with the Filter statuses of the nodes, and its
// message ends the pod's FailedScheduling event.
func TestSchedulerPostFilterRunsWhenNoNodeFits(t *testing.T) {
	calls := &pluginCalls{}
	big := st.MakePod().Name("big").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	small := st.MakePod().Name("small").Req(map[v1.ResourceName]string{"cpu": "100m"}).Obj()
	fc := newFakeCluster(t, node("n1", "1"), big, small)
	rec := &recorder{}
	startSchedulerWith(t, fc, rec, &noVictims{calls: calls})

	const want = "0/1 nodes are available: 1 Insufficient cpu. no victims found by NoVictims"
	poll(t, "FailedScheduling event", func() bool { _, ok := rec.find("big Warning FailedScheduling "); return ok })
	if ev, _ := rec.find("big Warning FailedScheduling "); !strings.HasSuffix(ev, want) {
		t.Errorf("got event %q, want it to end with %q", ev, want)
	}
	poll(t, "binding of the small pod", func() bool { _, ok := fc.binding("small"); return ok })
	if got := calls.count("PostFilter big Insufficient cpu"); got == 0 {
		t.Errorf("got no PostFilter call for the big pod with n1's Filter status, want one (calls: %v)", calls)
	}
	if got := calls.count("PostFilter small "); got != 0 {
		t.Errorf("got %d PostFilter calls for the pod that fits, want 0 (calls: %v)", got, calls)
	}
}

// TestSchedulerPostFilterNominates: a PostFilter result's nominated node
// becomes the pod's status.nominatedNodeName, with the PodScheduled=False
// condition, in one status patch.
func TestSchedulerPostFilterNominates(t *testing.T) {
	big := st.MakePod().Name("big").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	fc := newFakeCluster(t, node("n1", "1"), big)
	rec := &recorder{}
	startSchedulerWith(t, fc, rec, &nominator{node: "n1"})

	var p *v1.Pod
	poll(t, "nominatedNodeName", func() bool {
		var err error
		p, err = fc.client.CoreV1().Pods("default").Get(context.Background(), "big", metav1.GetOptions{})
		return err == nil && p.Status.NominatedNodeName != ""
	})
	if p.Status.NominatedNodeName != "n1" {
		t.Errorf("got nominatedNodeName %q, want n1", p.Status.NominatedNodeName)
	}
	cond := scheduledCondition(p)
	if cond == nil || cond.Status != v1.ConditionFalse || cond.Reason != v1.PodReasonUnschedulable {
		t.Errorf("got condition %+v, want PodScheduled False/Unschedulable", cond)
	}
	if _, ok := fc.binding("big"); ok {
		t.Error("nominated pod was bound, want it pending")
	}
}
