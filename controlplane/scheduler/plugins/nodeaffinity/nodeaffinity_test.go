package nodeaffinity

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func nodes() []*v1.Node {
	return []*v1.Node{
		st.MakeNode().Name("a").Label("zone", "z1").Label("disk", "ssd").Obj(),
		st.MakeNode().Name("b").Label("zone", "z2").Label("disk", "hdd").Obj(),
		st.MakeNode().Name("c").Label("zone", "z3").Obj(),
	}
}

func TestFilter(t *testing.T) {
	const rejected = "UnschedulableAndUnresolvable: " + ErrReasonPod
	tests := []struct {
		name string
		args any
		pod  *v1.Pod
		want map[string]string
	}{
		{"no affinity", nil, st.MakePod().Name("p").Obj(), map[string]string{"a": "", "b": "", "c": ""}},
		{"node selector", nil, st.MakePod().Name("p").NodeSelector("disk", "ssd").Obj(),
			map[string]string{"a": "", "b": rejected, "c": rejected}},
		{"required In", nil, st.MakePod().Name("p").NodeAffinity("zone", v1.NodeSelectorOpIn, "z2", "z3").Obj(),
			map[string]string{"a": rejected, "b": "", "c": ""}},
		{"required NotIn", nil, st.MakePod().Name("p").NodeAffinity("zone", v1.NodeSelectorOpNotIn, "z2").Obj(),
			map[string]string{"a": "", "b": rejected, "c": ""}},
		{"required DoesNotExist", nil, st.MakePod().Name("p").NodeAffinity("disk", v1.NodeSelectorOpDoesNotExist).Obj(),
			map[string]string{"a": rejected, "b": rejected, "c": ""}},
		{"terms are ORed", nil, st.MakePod().Name("p").NodeAffinity("zone", v1.NodeSelectorOpIn, "z1").NodeAffinity("disk", v1.NodeSelectorOpIn, "hdd").Obj(),
			map[string]string{"a": "", "b": "", "c": rejected}},
		{"selector and affinity are ANDed", nil, st.MakePod().Name("p").NodeSelector("disk", "ssd").NodeAffinity("zone", v1.NodeSelectorOpIn, "z2").Obj(),
			map[string]string{"a": rejected, "b": rejected, "c": rejected}},
		{"matchFields by name narrows the nodes", nil, st.MakePod().Name("p").NodeAffinityName("b").Obj(),
			map[string]string{"a": "UnschedulableAndUnresolvable: excluded by PreFilter", "b": "", "c": "UnschedulableAndUnresolvable: excluded by PreFilter"}},
		{"added affinity", Args{AddedAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"z3"}}}}},
		}}}, st.MakePod().Name("p").Obj(),
			map[string]string{"a": "UnschedulableAndUnresolvable: " + ErrReasonEnforced, "b": "UnschedulableAndUnresolvable: " + ErrReasonEnforced, "c": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, nil, nodes())
			pl, err := New(context.Background(), tt.args, h)
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
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"no preferences skip", st.MakePod().Name("p").Obj(), nil},
		{"weights add up and are normalised", st.MakePod().Name("p").
			PreferredNodeAffinity(10, "zone", v1.NodeSelectorOpIn, "z1").
			PreferredNodeAffinity(30, "disk", v1.NodeSelectorOpExists).Obj(),
			map[string]int64{"a": 100, "b": 75, "c": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, nil, nodes())
			pl, _ := New(context.Background(), nil, h)
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
