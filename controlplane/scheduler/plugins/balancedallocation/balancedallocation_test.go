package balancedallocation

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

type res = map[v1.ResourceName]string

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode().Name("empty").Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "110"}).Obj(),
		st.MakeNode().Name("cpuheavy").Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "110"}).Obj(),
	}
	existing := []*v1.Pod{st.MakePod().Name("e").Node("cpuheavy").Req(res{"cpu": "2"}).Obj()}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"best-effort pods skip", st.MakePod().Name("p").Obj(), nil},
		{"balanced use of an empty node", st.MakePod().Name("p").Req(res{"cpu": "1", "memory": "2Gi"}).Obj(),
			// empty: with the pod 0.25/0.25 (100), without 0/0 (100): 50 + 50/2;
			// cpuheavy: with 0.75/0.25 (75), without 0.5/0 (75): the same.
			map[string]int64{"empty": 75, "cpuheavy": 75}},
		{"a memory-heavy pod rebalances a cpu-heavy node", st.MakePod().Name("p").Req(res{"cpu": "1", "memory": "4Gi"}).Obj(),
			// empty: with 0.25/0.5 (87), without (100) -> 50 + 37/2;
			// cpuheavy: with 0.75/0.5 (87), without 0.5/0 (75) -> 50 + 62/2.
			map[string]int64{"empty": 68, "cpuheavy": 81}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, existing, nodes)
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
