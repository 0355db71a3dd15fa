package tainttoleration

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		node *v1.Node
		pod  *v1.Pod
		want string
	}{
		{"no taints", st.MakeNode().Name("n").Obj(), st.MakePod().Name("p").Obj(), ""},
		{"untolerated NoSchedule", st.MakeNode().Name("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod().Name("p").Obj(), "UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: gpu}"},
		{"untolerated NoExecute", st.MakeNode().Name("n").Taint("node.kubernetes.io/not-ready", "", v1.TaintEffectNoExecute).Obj(),
			st.MakePod().Name("p").Obj(), "UnschedulableAndUnresolvable: node(s) had untolerated taint {node.kubernetes.io/not-ready: }"},
		{"PreferNoSchedule does not filter", st.MakeNode().Name("n").Taint("soft", "x", v1.TaintEffectPreferNoSchedule).Obj(),
			st.MakePod().Name("p").Obj(), ""},
		{"tolerated with Equal", st.MakeNode().Name("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod().Name("p").Toleration("dedicated", v1.TolerationOpEqual, "gpu", v1.TaintEffectNoSchedule).Obj(), ""},
		{"Equal with another value", st.MakeNode().Name("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod().Name("p").Toleration("dedicated", v1.TolerationOpEqual, "cpu", v1.TaintEffectNoSchedule).Obj(),
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: gpu}"},
		{"tolerated with Exists and any effect", st.MakeNode().Name("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod().Name("p").Toleration("dedicated", v1.TolerationOpExists, "", "").Obj(), ""},
		{"second taint untolerated", st.MakeNode().Name("n").Taint("a", "1", v1.TaintEffectNoSchedule).Taint("b", "2", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod().Name("p").Toleration("a", v1.TolerationOpExists, "", "").Obj(), "UnschedulableAndUnresolvable: node(s) had untolerated taint {b: 2}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, nil, []*v1.Node{tt.node})
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := pt.StatusString(pt.RunFilter(t, h, pl, tt.pod)["n"]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode().Name("clean").Obj(),
		st.MakeNode().Name("one").Taint("a", "1", v1.TaintEffectPreferNoSchedule).Obj(),
		st.MakeNode().Name("two").Taint("a", "1", v1.TaintEffectPreferNoSchedule).Taint("b", "2", v1.TaintEffectPreferNoSchedule).Obj(),
		st.MakeNode().Name("hard").Taint("c", "3", v1.TaintEffectNoSchedule).Obj(),
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"fewer untolerated PreferNoSchedule taints score higher", st.MakePod().Name("p").Obj(),
			map[string]int64{"clean": 100, "one": 50, "two": 0, "hard": 100}},
		{"tolerated taints do not count", st.MakePod().Name("p").Toleration("a", v1.TolerationOpExists, "", v1.TaintEffectPreferNoSchedule).Obj(),
			map[string]int64{"clean": 100, "one": 100, "two": 0, "hard": 100}},
		{"NoSchedule tolerations do not count for PreferNoSchedule", st.MakePod().Name("p").Toleration("a", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule).Obj(),
			map[string]int64{"clean": 100, "one": 50, "two": 0, "hard": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, nil, nodes)
			pl, _ := New(context.Background(), nil, h)
			got := pt.RunScore(t, h, pl.(framework.ScorePlugin), tt.pod)
			for n, want := range tt.want {
				if got[n] != want {
					t.Errorf("node %s: got score %d, want %d", n, got[n], want)
				}
			}
		})
	}
}
