// Package balancedallocation is the NodeResourcesBalancedAllocation plugin:
// it favours nodes whose cpu and memory would be used in similar proportions
// with the pod placed, and (as upstream since 1.3x) rewards placements that
// improve the balance the node had without the pod.
package balancedallocation

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeResourcesBalancedAllocation"

const preScoreStateKey framework.StateKey = "PreScore" + Name

// Args configure the plugin.
type Args struct {
	// Resources are balanced against each other; cpu and memory by
	// default.
	Resources []v1.ResourceName
}

// BalancedAllocation scores nodes by balance.
type BalancedAllocation struct {
	resources []v1.ResourceName
}

var (
	_ framework.PreScorePlugin = (*BalancedAllocation)(nil)
	_ framework.ScorePlugin    = (*BalancedAllocation)(nil)
)

// New builds the plugin; args is nil, Args or *Args.
func New(_ context.Context, args any, _ framework.Handle) (framework.Plugin, error) {
	var a Args
	switch v := args.(type) {
	case nil:
	case Args:
		a = v
	case *Args:
		a = *v
	default:
		return nil, fmt.Errorf("want args of type balancedallocation.Args, got %T", args)
	}
	if len(a.Resources) == 0 {
		a.Resources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}
	}
	return &BalancedAllocation{resources: a.Resources}, nil
}

// Name implements framework.Plugin.
func (*BalancedAllocation) Name() string { return Name }

type preScoreState struct {
	podRequests []int64
}

func (s *preScoreState) Clone() framework.StateData { return s }

func (ba *BalancedAllocation) podRequests(pi *framework.PodInfo) []int64 {
	req := &pi.Requests
	out := make([]int64, len(ba.resources))
	for i, r := range ba.resources {
		switch r {
		case v1.ResourceCPU:
			out[i] = req.MilliCPU
		case v1.ResourceMemory:
			out[i] = req.Memory
		case v1.ResourceEphemeralStorage:
			out[i] = req.EphemeralStorage
		default:
			out[i] = req.ScalarResources[r]
		}
	}
	return out
}

// PreScore implements framework.PreScorePlugin; best-effort pods (no
// requests) skip the Score.
func (ba *BalancedAllocation) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	req := ba.podRequests(state.PodInfo(pod))
	bestEffort := true
	for _, r := range req {
		if r != 0 {
			bestEffort = false
			break
		}
	}
	if bestEffort {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{podRequests: req})
	return nil
}

// maxResources bounds the resources scored without allocating.
const maxResources = 8

// Score implements framework.ScorePlugin.
func (ba *BalancedAllocation) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	var podReq []int64
	if d, err := state.Read(preScoreStateKey); err == nil {
		s, ok := d.(*preScoreState)
		if !ok {
			return 0, framework.AsStatus(fmt.Errorf("%+v convert to balancedallocation.preScoreState error", d))
		}
		podReq = s.podRequests
	} else {
		podReq = ba.podRequests(framework.NewPodInfo(pod))
	}
	var withPodBuf, withoutPodBuf, allocBuf [maxResources]int64
	withPod, withoutPod, alloc := withPodBuf[:0], withoutPodBuf[:0], allocBuf[:0]
	if len(ba.resources) > maxResources {
		withPod = make([]int64, 0, len(ba.resources))
		withoutPod = make([]int64, 0, len(ba.resources))
		alloc = make([]int64, 0, len(ba.resources))
	}
	for i, r := range ba.resources {
		if podReq[i] == 0 && framework.IsScalarResourceName(r) {
			continue
		}
		a, used := allocatableAndRequested(nodeInfo, r)
		if a == 0 {
			continue
		}
		alloc = append(alloc, a)
		withoutPod = append(withoutPod, used)
		withPod = append(withPod, used+podReq[i])
	}
	scoreWithPod := balancedResourceScore(withPod, alloc)
	scoreWithoutPod := balancedResourceScore(withoutPod, alloc)
	return framework.MaxNodeScore/2 + (framework.MaxNodeScore/2+scoreWithPod-scoreWithoutPod)/2, nil
}

func allocatableAndRequested(ni *framework.NodeInfo, name v1.ResourceName) (int64, int64) {
	switch name {
	case v1.ResourceCPU:
		return ni.Allocatable.MilliCPU, ni.Requested.MilliCPU
	case v1.ResourceMemory:
		return ni.Allocatable.Memory, ni.Requested.Memory
	case v1.ResourceEphemeralStorage:
		return ni.Allocatable.EphemeralStorage, ni.Requested.EphemeralStorage
	default:
		if a, ok := ni.Allocatable.ScalarResources[name]; ok {
			return a, ni.Requested.ScalarResources[name]
		}
	}
	return 0, 0
}

// balancedResourceScore is (1 - the standard deviation of the used
// fractions) * MaxNodeScore.
func balancedResourceScore(requested, allocatable []int64) int64 {
	var fractions [maxResources]float64
	n := 0
	var total float64
	for i := range requested {
		if allocatable[i] == 0 || n == maxResources {
			continue
		}
		f := float64(requested[i]) / float64(allocatable[i])
		if f > 1 {
			f = 1
		}
		total += f
		fractions[n] = f
		n++
	}
	std := 0.0
	switch {
	case n == 2:
		std = math.Abs((fractions[0] - fractions[1]) / 2)
	case n > 2:
		mean := total / float64(n)
		var sum float64
		for _, f := range fractions[:n] {
			sum += (f - mean) * (f - mean)
		}
		std = math.Sqrt(sum / float64(n))
	}
	return int64((1 - std) * float64(framework.MaxNodeScore))
}

// ScoreExtensions implements framework.ScorePlugin; scores are already in
// range.
func (*BalancedAllocation) ScoreExtensions() framework.ScoreExtensions { return nil }
