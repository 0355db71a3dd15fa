package nodeunschedulable

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	const rejected = "UnschedulableAndUnresolvable: " + ErrReasonUnschedulable
	tests := []struct {
		name string
		node *v1.Node
		pod  *v1.Pod
		want string
	}{
		{"schedulable node", st.MakeNode().Name("n").Obj(), st.MakePod().Name("p").Obj(), ""},
		{"cordoned node", st.MakeNode().Name("n").Unschedulable(true).Obj(), st.MakePod().Name("p").Obj(), rejected},
		{"cordoned node, pod tolerates the unschedulable taint",
			st.MakeNode().Name("n").Unschedulable(true).Obj(),
			st.MakePod().Name("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoSchedule).Obj(), ""},
		{"cordoned node, pod tolerates everything",
			st.MakeNode().Name("n").Unschedulable(true).Obj(),
			st.MakePod().Name("p").Toleration("", v1.TolerationOpExists, "", "").Obj(), ""},
		{"cordoned node, toleration for another effect",
			st.MakeNode().Name("n").Unschedulable(true).Obj(),
			st.MakePod().Name("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoExecute).Obj(), rejected},
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
