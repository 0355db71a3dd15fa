package podtopologyspread

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

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
		st.MakeNode().Name("n4").Label(zone, "z3").Taint("dedicated", "x", v1.TaintEffectNoSchedule).Obj(),
		st.MakeNode().Name("n5").Obj(),
	}
}

func web(name, node string) *v1.Pod {
	return st.MakePod().Name(name).Label("app", "web").Node(node).Obj()
}

func sel(k, v string) *metav1.LabelSelector { return st.MakeLabelSelector().Label(k, v).Obj() }

func TestFilter(t *testing.T) {
	const (
		skew    = "Unschedulable: " + ErrReasonConstraintsNotMatch
		missing = "UnschedulableAndUnresolvable: " + ErrReasonNodeLabelNotMatch
	)
	base := []*v1.Pod{web("a", "n1"), web("b", "n1"), web("c", "n3")}
	honor, ignore := v1.NodeInclusionPolicyHonor, v1.NodeInclusionPolicyIgnore
	minDomains := int32(4)
	tests := []struct {
		name string
		pods []*v1.Pod
		pod  *v1.Pod
		want map[string]string
	}{
		{"no constraints skip", base, st.MakePod().Name("p").Label("app", "web").Obj(),
			map[string]string{"n1": "", "n3": "", "n5": ""}},
		{"maxSkew 1 over zones", base,
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n2": skew, "n3": skew, "n4": "", "n5": missing}},
		{"maxSkew 2 over zones", base,
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(2, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n2": skew, "n3": "", "n4": ""}},
		{"the pod itself counts only when it matches", base,
			st.MakePod().Name("p").Label("app", "db").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n3": "", "n4": ""}},
		{"minimum above zero", append(base, web("d", "n4")),
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n3": "", "n4": ""}},
		{"minDomains counts missing domains as empty", append(base, web("d", "n4")),
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), minDomains).Obj(),
			map[string]string{"n1": skew, "n3": skew, "n4": skew}},
		{"nodeAffinityPolicy Honor drops domains the pod cannot use", base,
			st.MakePod().Name("p").Label("app", "web").NodeAffinity(zone, v1.NodeSelectorOpIn, "z1", "z2").
				SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n3": ""}},
		{"nodeAffinityPolicy Ignore keeps them", base,
			st.MakePod().Name("p").Label("app", "web").NodeAffinity(zone, v1.NodeSelectorOpIn, "z1", "z2").
				SpreadConstraintFull(v1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: zone, WhenUnsatisfiable: v1.DoNotSchedule,
					LabelSelector: sel("app", "web"), NodeAffinityPolicy: &ignore}).Obj(),
			map[string]string{"n1": skew, "n3": skew}},
		{"nodeTaintsPolicy Honor drops tainted domains", base,
			st.MakePod().Name("p").Label("app", "web").
				SpreadConstraintFull(v1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: zone, WhenUnsatisfiable: v1.DoNotSchedule,
					LabelSelector: sel("app", "web"), NodeTaintsPolicy: &honor}).Obj(),
			map[string]string{"n1": skew, "n3": ""}},
		{"terminating pods and other namespaces do not count",
			[]*v1.Pod{web("a", "n1"), st.MakePod().Name("t").Label("app", "web").Node("n3").Terminating().Obj(),
				st.MakePod().Name("o").Namespace("other").Label("app", "web").Node("n4").Obj()},
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			map[string]string{"n1": skew, "n3": "", "n4": ""}},
		{"matchLabelKeys narrow the selector",
			[]*v1.Pod{st.MakePod().Name("old").Label("app", "web").Label("version", "v1").Node("n3").Obj(),
				st.MakePod().Name("old2").Label("app", "web").Label("version", "v1").Node("n4").Obj(),
				st.MakePod().Name("new").Label("app", "web").Label("version", "v2").Node("n1").Obj()},
			st.MakePod().Name("p").Label("app", "web").Label("version", "v2").
				SpreadConstraintFull(v1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: zone, WhenUnsatisfiable: v1.DoNotSchedule,
					LabelSelector: sel("app", "web"), MatchLabelKeys: []string{"version"}}).Obj(),
			map[string]string{"n1": skew, "n3": "", "n4": ""}},
		{"two constraints", base,
			st.MakePod().Name("p").Label("app", "web").
				SpreadConstraint(2, zone, v1.DoNotSchedule, sel("app", "web"), 0).
				SpreadConstraint(1, v1.LabelHostname, v1.DoNotSchedule, sel("app", "web"), 0).Obj(),
			// zone: z1 2, z2 1, z3 0; hostname: n1 2, n3 1, others 0.
			map[string]string{"n1": skew, "n2": skew, "n3": skew, "n4": "", "n5": missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, tt.pods, nodes())
			pl, err := New(context.Background(), Args{DefaultingType: ListDefaulting}, h)
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
	base := []*v1.Pod{web("a", "n1"), web("b", "n1"), web("c", "n3")}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"no soft constraints skip", st.MakePod().Name("p").Label("app", "web").Obj(), nil},
		{"fewer matching pods in the zone score higher",
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.ScheduleAnyway, sel("app", "web"), 0).Obj(),
			// weight ln(3+2): z1 2 pods -> 3, z2 1 pod -> 2, z3 -> 0; n5
			// lacks the key and scores 0.
			map[string]int64{"n1": 0, "n2": 0, "n3": 33, "n4": 100, "n5": 0}},
		{"hostname counts the node's own pods",
			st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, v1.LabelHostname, v1.ScheduleAnyway, sel("app", "web"), 0).Obj(),
			// weight ln(5+2): n1 2 pods -> 4, n3 1 pod -> 2.
			map[string]int64{"n1": 0, "n2": 100, "n3": 50, "n4": 100, "n5": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, base, nodes())
			pl, err := New(context.Background(), Args{DefaultingType: ListDefaulting}, h)
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

// TestCountsFollowNodeChanges checks that the counts kept across cycles,
// updated from the snapshot's change log, equal a fresh count as pods and
// nodes come and go.
func TestCountsFollowNodeChanges(t *testing.T) {
	c := cache.New(st.TestLogger(t), 0)
	node := func(i int) *v1.Node {
		return st.MakeNode().Name(fmt.Sprintf("n%d", i)).Label(zone, fmt.Sprintf("z%d", i%3)).Obj()
	}
	for i := range 6 {
		c.AddNode(node(i))
	}
	snap := cache.NewEmptySnapshot()
	pod := st.MakePod().Name("p").Label("app", "web").SpreadConstraint(1, zone, v1.DoNotSchedule, sel("app", "web"), 0).Obj()
	cs, err := filterConstraints(pod.Spec.TopologySpreadConstraints, pod.Labels, v1.DoNotSchedule)
	if err != nil {
		t.Fatal(err)
	}
	kept := newCountCaches(2)
	steps := []struct {
		name   string
		change func() error
	}{
		{"add a", func() error { return c.AddPod(web("a", "n0")) }},
		{"add b", func() error { return c.AddPod(web("b", "n3")) }},
		{"add c", func() error { return c.AddPod(web("c", "n4")) }},
		{"add a pod that does not match", func() error { return c.AddPod(st.MakePod().Name("other").Label("app", "db").Node("n4").Obj()) }},
		{"remove b", func() error { return c.RemovePod(web("b", "n3")) }},
		{"add a node", func() error { c.AddNode(node(6)); return nil }},
		{"add d on the new node", func() error { return c.AddPod(web("d", "n6")) }},
		{"remove a node", func() error { return c.RemoveNode(node(2)) }},
		{"a node moves zone", func() error {
			c.UpdateNode(node(1), st.MakeNode().Name("n1").Label(zone, "z9").Obj())
			return nil
		}},
		{"a node loses its zone", func() error {
			c.UpdateNode(node(4), st.MakeNode().Name("n4").Obj())
			return nil
		}},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if err := c.UpdateSnapshot(snap); err != nil {
			t.Fatal(err)
		}
		cc := kept.cache(context.Background(), nil, pod, cs, true, snap)
		fresh := newCountCaches(1).counts(context.Background(), nil, pod, cs, true, snap)
		if !reflect.DeepEqual(cc.pods, fresh) {
			t.Fatalf("after %s: got counts %v, want %v", step.name, cc.pods, fresh)
		}
		// Filter reads each node's domain from the cache: it must be
		// the node's label, for the snapshot's NodeInfos and for their
		// clones (preemption), and unknown for a node it never saw.
		for _, ni := range snap.List() {
			want, wantPresent := ni.Node().Labels[zone]
			for _, n := range []*framework.NodeInfo{ni, ni.Clone()} {
				v, present, ok := cc.nodeValue(n, 0)
				if !ok || v != want || present != wantPresent {
					t.Errorf("after %s: node %s: got %q %v %v, want %q %v true", step.name, ni.Node().Name, v, present, ok, want, wantPresent)
				}
			}
		}
		stranger := framework.NewNodeInfo()
		stranger.SetNode(node(1))
		if _, _, ok := cc.nodeValue(stranger, 0); ok {
			t.Errorf("after %s: a NodeInfo outside the snapshot is known", step.name)
		}
	}
	// z0 has a and d; n5 keeps z2 as an (empty) domain; n1 took z9 and
	// left z1 to n4, which has no zone now: c counts nowhere.
	want := []map[string]int{{"z0": 2, "z2": 0, "z9": 0}}
	if got := kept.counts(context.Background(), nil, pod, cs, true, snap); !reflect.DeepEqual(got, want) {
		t.Errorf("got counts %v, want %v", got, want)
	}
}

// TestSystemDefaultConstraints checks that pods of a Service, without
// constraints of their own, are spread by hostname and zone.
func TestSystemDefaultConstraints(t *testing.T) {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       v1.ServiceSpec{Selector: map[string]string{"app": "web"}},
	}
	nodes := []*v1.Node{
		st.MakeNode().Name("n1").Label(zone, "z1").Obj(),
		st.MakeNode().Name("n2").Label(zone, "z1").Obj(),
		st.MakeNode().Name("n3").Label(zone, "z2").Obj(),
	}
	pods := []*v1.Pod{web("a", "n1"), web("b", "n1"), web("c", "n3")}
	tests := []struct {
		name string
		objs []runtime.Object
		pod  *v1.Pod
		want map[string]int64
	}{
		{"pods of a service are spread", []runtime.Object{svc}, st.MakePod().Name("p").Label("app", "web").Obj(),
			// n1: 2 pods on the host and 2 in z1 -> 12; n2: 0 and 2 -> 9;
			// n3: 1 and 1 -> 9.
			map[string]int64{"n1": 75, "n2": 100, "n3": 100}},
		{"pods without a service or controller skip", nil, st.MakePod().Name("p").Label("app", "web").Obj(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, pods, nodes, tt.objs...)
			h.Client.(*fake.Clientset).Resources = []*metav1.APIResourceList{{
				GroupVersion: "v1",
				APIResources: []metav1.APIResource{{Name: "services", Namespaced: true, Kind: "Service"}},
			}}
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			h.StartInformers(t)
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
