package noderesourcesfit

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

type res = map[v1.ResourceName]string

func TestFilter(t *testing.T) {
	node := st.MakeNode().Name("n").Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "3"}).Obj()
	// Two cores and 4Gi are taken.
	existing := st.MakePod().Name("e").Node("n").Req(res{"cpu": "2", "memory": "4Gi"}).Obj()
	tests := []struct {
		name     string
		args     any
		existing []*v1.Pod
		pod      *v1.Pod
		want     string
	}{
		{"fits", nil, []*v1.Pod{existing}, st.MakePod().Name("p").Req(res{"cpu": "2", "memory": "4Gi"}).Obj(), ""},
		{"insufficient cpu", nil, []*v1.Pod{existing}, st.MakePod().Name("p").Req(res{"cpu": "3"}).Obj(),
			"Unschedulable: Insufficient cpu"},
		{"more cpu than the node has", nil, []*v1.Pod{existing}, st.MakePod().Name("p").Req(res{"cpu": "5"}).Obj(),
			"UnschedulableAndUnresolvable: Insufficient cpu"},
		{"cpu and memory", nil, []*v1.Pod{existing}, st.MakePod().Name("p").Req(res{"cpu": "3", "memory": "5Gi"}).Obj(),
			"Unschedulable: Insufficient cpu, Insufficient memory"},
		{"too many pods", nil, []*v1.Pod{existing, st.MakePod().Name("e2").Node("n").Obj(), st.MakePod().Name("e3").Node("n").Obj()},
			st.MakePod().Name("p").Obj(), "Unschedulable: Too many pods"},
		{"init container larger than containers counts", nil, []*v1.Pod{existing},
			st.MakePod().Name("p").Req(res{"cpu": "1"}).InitReq(res{"cpu": "3"}).Obj(), "Unschedulable: Insufficient cpu"},
		{"init container smaller than containers does not add", nil, []*v1.Pod{existing},
			st.MakePod().Name("p").Req(res{"cpu": "2"}).InitReq(res{"cpu": "1"}).Obj(), ""},
		{"sidecar adds to containers", nil, []*v1.Pod{existing},
			st.MakePod().Name("p").Req(res{"cpu": "1500m"}).SidecarReq(res{"cpu": "1"}).Obj(), "Unschedulable: Insufficient cpu"},
		{"overhead adds", nil, []*v1.Pod{existing},
			st.MakePod().Name("p").Req(res{"cpu": "1500m"}).Overhead(res{"cpu": "1"}).Obj(), "Unschedulable: Insufficient cpu"},
		{"extended resource missing", nil, nil, st.MakePod().Name("p").Req(res{"example.com/gpu": "1"}).Obj(),
			"UnschedulableAndUnresolvable: Insufficient example.com/gpu"},
		{"ignored extended resource", Args{IgnoredResources: []string{"example.com/gpu"}}, nil,
			st.MakePod().Name("p").Req(res{"example.com/gpu": "1"}).Obj(), ""},
		{"ignored extended resource group", Args{IgnoredResourceGroups: []string{"example.com"}}, nil,
			st.MakePod().Name("p").Req(res{"example.com/gpu": "1"}).Obj(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, tt.existing, []*v1.Node{node})
			pl, err := New(context.Background(), tt.args, h)
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
		st.MakeNode().Name("empty").Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "110"}).Obj(),
		st.MakeNode().Name("half").Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "110"}).Obj(),
	}
	existing := []*v1.Pod{st.MakePod().Name("e").Node("half").Req(res{"cpu": "2", "memory": "4Gi"}).Obj()}
	tests := []struct {
		name string
		args any
		pod  *v1.Pod
		want map[string]int64
	}{
		{"least allocated", nil, st.MakePod().Name("p").Req(res{"cpu": "1", "memory": "2Gi"}).Obj(),
			map[string]int64{"empty": 75, "half": 25}},
		{"least allocated counts defaults for empty requests", nil, st.MakePod().Name("p").Req(res{}).Obj(),
			map[string]int64{"empty": 97, "half": 47}},
		{"most allocated", Args{Strategy: MostAllocated}, st.MakePod().Name("p").Req(res{"cpu": "1", "memory": "2Gi"}).Obj(),
			map[string]int64{"empty": 25, "half": 75}},
		{"weights", Args{Resources: []ResourceSpec{{Name: v1.ResourceCPU, Weight: 3}, {Name: v1.ResourceMemory, Weight: 1}}},
			st.MakePod().Name("p").Req(res{"cpu": "2", "memory": "2Gi"}).Obj(),
			// empty: cpu 50, memory 75 -> (150+75)/4; half: cpu 0, memory 25 -> 25/4.
			map[string]int64{"empty": 56, "half": 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pt.NewHandle(t, existing, nodes)
			pl, err := New(context.Background(), tt.args, h)
			if err != nil {
				t.Fatal(err)
			}
			got := pt.RunScore(t, h, pl.(framework.ScorePlugin), tt.pod)
			for n, want := range tt.want {
				if got[n] != want {
					t.Errorf("node %s: got score %d, want %d", n, got[n], want)
				}
			}
		})
	}
}

func TestNewRejectsBadArgs(t *testing.T) {
	tests := []struct {
		name string
		args any
	}{
		{"unknown strategy", Args{Strategy: "Random"}},
		{"zero weight", Args{Resources: []ResourceSpec{{Name: v1.ResourceCPU}}}},
		{"wrong type", 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(context.Background(), tt.args, pt.NewHandle(t, nil, nil)); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}
