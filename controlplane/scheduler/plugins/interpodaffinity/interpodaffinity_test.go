package interpodaffinity

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/cache"
	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

const zone = v1.LabelTopologyZone

func nodes() []*v1.Node {
	return []*v1.Node{
		st.MakeNode().Name("n1").Label(zone, "z1").Obj(),
		st.MakeNode().Name("n2").Label(zone, "z1").Obj(),
		st.MakeNode().Name("n3").Label(zone, "z2").Obj(),
		st.MakeNode().Name("n4").Obj(),
	}
}

func sel(k, v string) *metav1.LabelSelector { return st.MakeLabelSelector().Label(k, v).Obj() }

func namespaces() []runtime.Object {
	return []runtime.Object{
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}},
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "b"}}},
	}
}

func TestFilter(t *testing.T) {
	const (
		affinity = "UnschedulableAndUnresolvable: " + ErrReasonAffinityRulesNotMatch
		anti     = "Unschedulable: " + ErrReasonAntiAffinityRulesNotMatch
		existing = "Unschedulable: " + ErrReasonExistingAntiAffinityRulesNotMatch
	)
	web := st.MakePod().Name("web").Label("app", "web").Node("n1").Obj()
	tests := []struct {
		name string
		pods []*v1.Pod
		pod  *v1.Pod
		want map[string]string
	}{
		{"no terms and no existing anti-affinity", []*v1.Pod{web}, st.MakePod().Name("p").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": "", "n4": ""}},
		{"required affinity by zone", []*v1.Pod{web},
			st.MakePod().Name("p").PodAffinity(st.Affinity, zone, sel("app", "web")).Obj(),
			map[string]string{"n1": "", "n2": "", "n3": affinity, "n4": affinity}},
		{"required affinity by hostname", []*v1.Pod{web},
			st.MakePod().Name("p").PodAffinity(st.Affinity, v1.LabelHostname, sel("app", "web")).Obj(),
			map[string]string{"n1": "", "n2": affinity, "n3": affinity, "n4": affinity}},
		{"first pod of a group matching its own affinity goes anywhere with the key", []*v1.Pod{web},
			st.MakePod().Name("p").Label("app", "db").PodAffinity(st.Affinity, zone, sel("app", "db")).Obj(),
			map[string]string{"n1": "", "n2": "", "n3": "", "n4": affinity}},
		{"first pod exception with hostname terms", []*v1.Pod{web},
			st.MakePod().Name("p").Label("app", "db").PodAffinity(st.Affinity, v1.LabelHostname, sel("app", "db")).Obj(),
			map[string]string{"n1": "", "n2": "", "n3": "", "n4": ""}},
		{"no exception when the pod does not match its own affinity", []*v1.Pod{web},
			st.MakePod().Name("p").PodAffinity(st.Affinity, zone, sel("app", "db")).Obj(),
			map[string]string{"n1": affinity, "n2": affinity, "n3": affinity, "n4": affinity}},
		{"required anti-affinity by hostname", []*v1.Pod{web},
			st.MakePod().Name("p").PodAffinity(st.AntiAffinity, v1.LabelHostname, sel("app", "web")).Obj(),
			map[string]string{"n1": anti, "n2": "", "n3": "", "n4": ""}},
		{"required anti-affinity by zone", []*v1.Pod{web},
			st.MakePod().Name("p").PodAffinity(st.AntiAffinity, zone, sel("app", "web")).Obj(),
			map[string]string{"n1": anti, "n2": anti, "n3": "", "n4": ""}},
		{"existing pod's anti-affinity by zone keeps matching pods out",
			[]*v1.Pod{st.MakePod().Name("lonely").Node("n3").PodAffinity(st.AntiAffinity, zone, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": existing, "n4": ""}},
		{"existing pod's anti-affinity by hostname keeps matching pods out",
			[]*v1.Pod{st.MakePod().Name("lonely").Node("n3").PodAffinity(st.AntiAffinity, v1.LabelHostname, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": existing, "n4": ""}},
		{"existing pod's anti-affinity ignores non-matching pods",
			[]*v1.Pod{st.MakePod().Name("lonely").Node("n3").PodAffinity(st.AntiAffinity, zone, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "db").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": "", "n4": ""}},
		{"terms look in the pod's namespace by default",
			[]*v1.Pod{st.MakePod().Name("web2").Namespace("other").Label("app", "web").Node("n3").Obj()},
			st.MakePod().Name("p").PodAffinity(st.AntiAffinity, zone, sel("app", "web")).Obj(),
			map[string]string{"n1": "", "n2": "", "n3": "", "n4": ""}},
		{"terms look in the namespaces they name",
			[]*v1.Pod{st.MakePod().Name("web2").Namespace("other").Label("app", "web").Node("n3").Obj()},
			st.MakePod().Name("p").PodAffinity(st.AntiAffinity, zone, sel("app", "web"), "other").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": anti, "n4": ""}},
		{"namespace selector", []*v1.Pod{web, st.MakePod().Name("web2").Namespace("other").Label("app", "web").Node("n3").Obj()},
			st.MakePod().Name("p").Namespace("other").PodAffinityTerm(st.AntiAffinity, v1.PodAffinityTerm{
				LabelSelector: sel("app", "web"), TopologyKey: zone, NamespaceSelector: sel("team", "a"),
			}).Obj(),
			map[string]string{"n1": anti, "n2": anti, "n3": "", "n4": ""}},
		{"affinity and anti-affinity together", []*v1.Pod{web, st.MakePod().Name("cache").Label("app", "cache").Node("n2").Obj()},
			st.MakePod().Name("p").PodAffinity(st.Affinity, zone, sel("app", "web")).PodAffinity(st.AntiAffinity, v1.LabelHostname, sel("app", "cache")).Obj(),
			map[string]string{"n1": "", "n2": anti, "n3": affinity, "n4": affinity}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, tt.pods, nodes(), namespaces()...)
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			got := pt.RunFilter(t, h, pl, tt.pod)
			for n, want := range tt.want {
				if g := pt.StatusString(got[n]); g != want {
					t.Errorf("node %s: got %q, want %q", n, g, want)
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	web := st.MakePod().Name("web").Label("app", "web").Node("n1").Obj()
	tests := []struct {
		name string
		pods []*v1.Pod
		pod  *v1.Pod
		want map[string]int64
	}{
		{"nothing to score skips", []*v1.Pod{web}, st.MakePod().Name("p").Obj(), nil},
		{"preferred affinity", []*v1.Pod{web},
			st.MakePod().Name("p").PreferredPodAffinity(st.Affinity, 10, zone, sel("app", "web")).Obj(),
			map[string]int64{"n1": 100, "n2": 100, "n3": 0, "n4": 0}},
		{"preferred anti-affinity", []*v1.Pod{web},
			st.MakePod().Name("p").PreferredPodAffinity(st.AntiAffinity, 10, v1.LabelHostname, sel("app", "web")).Obj(),
			map[string]int64{"n1": 0, "n2": 100, "n3": 100, "n4": 100}},
		{"affinity and anti-affinity weigh against each other", []*v1.Pod{web, st.MakePod().Name("db").Label("app", "db").Node("n3").Obj()},
			st.MakePod().Name("p").
				PreferredPodAffinity(st.Affinity, 10, zone, sel("app", "web")).
				PreferredPodAffinity(st.AntiAffinity, 5, zone, sel("app", "web")).
				PreferredPodAffinity(st.Affinity, 20, zone, sel("app", "db")).Obj(),
			// z1: 10-5 = 5, z2: 20, no zone: 0.
			map[string]int64{"n1": 25, "n2": 25, "n3": 100, "n4": 0}},
		{"existing pods' preferred terms attract the pod",
			[]*v1.Pod{st.MakePod().Name("friend").Node("n3").PreferredPodAffinity(st.Affinity, 5, zone, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]int64{"n1": 0, "n2": 0, "n3": 100, "n4": 0}},
		{"existing pods' required affinity attracts the pod with the hard weight",
			[]*v1.Pod{st.MakePod().Name("friend").Node("n2").PodAffinity(st.Affinity, zone, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]int64{"n1": 100, "n2": 100, "n3": 0, "n4": 0}},
		{"existing pods' preferred anti-affinity repels the pod",
			[]*v1.Pod{st.MakePod().Name("foe").Node("n3").PreferredPodAffinity(st.AntiAffinity, 5, zone, sel("app", "web")).Obj()},
			st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]int64{"n1": 100, "n2": 100, "n3": 0, "n4": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, tt.pods, nodes(), namespaces()...)
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			got := pt.RunScore(t, h, pl.(framework.ScorePlugin), tt.pod)
			if tt.want == nil {
				if got != nil {
					t.Errorf("got scores %v, want PreScore to skip", got)
				}
				return
			}
			for n, want := range tt.want {
				if got[n] != want {
					t.Errorf("node %s: got score %d, want %d", n, got[n], want)
				}
			}
		})
	}
}

func TestAddRemovePodUpdatesState(t *testing.T) {
	h := pt.NewHandle(t, nil, nodes(), namespaces()...)
	pl, err := New(context.Background(), nil, h)
	if err != nil {
		t.Fatal(err)
	}
	ipa := pl.(*InterPodAffinity)
	pod := st.MakePod().Name("p").PodAffinity(st.AntiAffinity, zone, sel("app", "web")).Obj()
	state := framework.NewCycleState()
	if _, s := ipa.PreFilter(context.Background(), state, pod, h.Snap.NodeInfos().List()); !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	n2, _ := h.Snap.NodeInfos().Get("n2")
	n3, _ := h.Snap.NodeInfos().Get("n3")
	if s := ipa.Filter(context.Background(), state, pod, n3); !s.IsSuccess() {
		t.Fatalf("before AddPod: got %v on n3, want success", s)
	}
	web := framework.NewPodInfo(st.MakePod().Name("web").Label("app", "web").Node("n2").Obj())
	if s := ipa.AddPod(context.Background(), state, pod, web, n2); !s.IsSuccess() {
		t.Fatalf("AddPod: %v", s)
	}
	n1, _ := h.Snap.NodeInfos().Get("n1")
	if s := ipa.Filter(context.Background(), state, pod, n1); s.IsSuccess() {
		t.Errorf("after AddPod in z1: got success on n1, want anti-affinity rejection")
	}
	if s := ipa.RemovePod(context.Background(), state, pod, web, n2); !s.IsSuccess() {
		t.Fatalf("RemovePod: %v", s)
	}
	if s := ipa.Filter(context.Background(), state, pod, n1); !s.IsSuccess() {
		t.Errorf("after RemovePod: got %v on n1, want success", s)
	}
}

// TestHostnameCountsFollowChanges runs the plugin against a snapshot that
// a cache keeps up to date, as the scheduler does: the per-node counts kept
// for hostname terms must follow pods as they come and go.
func TestHostnameCountsFollowChanges(t *testing.T) {
	const (
		anti     = "Unschedulable: " + ErrReasonAntiAffinityRulesNotMatch
		affinity = "UnschedulableAndUnresolvable: " + ErrReasonAffinityRulesNotMatch
	)
	c := cache.New(st.TestLogger(t), 0)
	for _, n := range []string{"n1", "n2", "n3"} {
		c.AddNode(st.MakeNode().Name(n).Obj())
	}
	snap := cache.NewEmptySnapshot()
	h := pt.NewHandle(t, nil, nil, namespaces()...)
	h.Snap = snap
	pl, err := New(context.Background(), nil, h)
	if err != nil {
		t.Fatal(err)
	}
	webPod := func(name, node string) *v1.Pod {
		return st.MakePod().Name(name).Label("app", "web").Node(node).PodAffinity(st.AntiAffinity, v1.LabelHostname, sel("app", "web")).Obj()
	}
	spread := st.MakePod().Name("p").Label("app", "web").PodAffinity(st.AntiAffinity, v1.LabelHostname, sel("app", "web")).Obj()
	plain := st.MakePod().Name("q").Label("app", "web").Obj()
	follower := st.MakePod().Name("f").Label("app", "db").PodAffinity(st.Affinity, v1.LabelHostname, sel("app", "db")).Obj()
	steps := []struct {
		name   string
		change func() error
		pod    *v1.Pod
		want   map[string]string
	}{
		{"empty cluster", func() error { return nil }, spread, map[string]string{"n1": "", "n2": "", "n3": ""}},
		{"a web pod on n1 repels the next", func() error { return c.AddPod(webPod("w1", "n1")) }, spread,
			map[string]string{"n1": anti, "n2": "", "n3": ""}},
		{"its anti-affinity keeps plain web pods out", func() error { return nil }, plain,
			map[string]string{"n1": "Unschedulable: " + ErrReasonExistingAntiAffinityRulesNotMatch, "n2": "", "n3": ""}},
		{"a second one on n2", func() error { return c.AddPod(webPod("w2", "n2")) }, spread,
			map[string]string{"n1": anti, "n2": anti, "n3": ""}},
		{"the first one leaves", func() error { return c.RemovePod(webPod("w1", "n1")) }, spread,
			map[string]string{"n1": "", "n2": anti, "n3": ""}},
		{"first pod of a group goes anywhere", func() error { return nil }, follower,
			map[string]string{"n1": "", "n2": "", "n3": ""}},
		{"then it follows the group", func() error { return c.AddPod(st.MakePod().Name("d").Label("app", "db").Node("n3").Obj()) }, follower,
			map[string]string{"n1": affinity, "n2": affinity, "n3": ""}},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if err := c.UpdateSnapshot(snap); err != nil {
			t.Fatal(err)
		}
		got := pt.RunFilter(t, h, pl, step.pod)
		for n, want := range step.want {
			if g := pt.StatusString(got[n]); g != want {
				t.Errorf("%s: node %s: got %q, want %q", step.name, n, g, want)
			}
		}
	}
}
