package nodename

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	nodes := []*v1.Node{st.MakeNode().Name("a").Obj(), st.MakeNode().Name("b").Obj()}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]string
	}{
		{"no node name fits all", st.MakePod().Name("p").Obj(), map[string]string{"a": "", "b": ""}},
		{"node name fits only that node", st.MakePod().Name("p").Node("b").Obj(), map[string]string{
			"a": "UnschedulableAndUnresolvable: " + ErrReason, "b": "",
		}},
		{"unknown node fits none", st.MakePod().Name("p").Node("c").Obj(), map[string]string{
			"a": "UnschedulableAndUnresolvable: " + ErrReason, "b": "UnschedulableAndUnresolvable: " + ErrReason,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, nil, nodes)
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
