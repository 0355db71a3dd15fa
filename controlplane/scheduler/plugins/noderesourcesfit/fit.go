// Package noderesourcesfit is the NodeResourcesFit plugin: a pod fits a node
// when its requests (the larger of its containers' sum and its largest init
// container, plus pod overhead, as upstream computes them) fit in the node's
// allocatable resources minus what the pods already there request, and the
// node's pod count allows one more. It scores nodes by how much would be
// left (LeastAllocated, the default) or used (MostAllocated).
package noderesourcesfit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeResourcesFit"

const (
	preFilterStateKey framework.StateKey = "PreFilter" + Name
	preScoreStateKey  framework.StateKey = "PreScore" + Name
)

// ScoringStrategyType selects how Score ranks nodes.
type ScoringStrategyType string

// The scoring strategies.
const (
	// LeastAllocated favours nodes with the most room left (spreading).
	LeastAllocated ScoringStrategyType = "LeastAllocated"
	// MostAllocated favours the fullest nodes (bin packing).
	MostAllocated ScoringStrategyType = "MostAllocated"
)

// ResourceSpec is a resource that counts in the score, with its weight.
type ResourceSpec struct {
	Name   v1.ResourceName
	Weight int64
}

// Args configure the plugin.
type Args struct {
	// IgnoredResources are extended resources the Filter does not check.
	IgnoredResources []string
	// IgnoredResourceGroups are extended resource prefixes (before the
	// "/") the Filter does not check.
	IgnoredResourceGroups []string
	// Strategy is the scoring strategy; LeastAllocated by default.
	Strategy ScoringStrategyType
	// Resources count in the score; cpu and memory with weight 1 by
	// default.
	Resources []ResourceSpec
}

// DefaultResources are the resources scored by default.
func DefaultResources() []ResourceSpec {
	return []ResourceSpec{{Name: v1.ResourceCPU, Weight: 1}, {Name: v1.ResourceMemory, Weight: 1}}
}

// Fit filters and scores nodes by resources.
type Fit struct {
	ignoredResources      sets.Set[string]
	ignoredResourceGroups sets.Set[string]
	strategy              ScoringStrategyType
	resources             []ResourceSpec
}

var (
	_ framework.PreFilterPlugin   = (*Fit)(nil)
	_ framework.FilterPlugin      = (*Fit)(nil)
	_ framework.PreScorePlugin    = (*Fit)(nil)
	_ framework.ScorePlugin       = (*Fit)(nil)
	_ framework.EnqueueExtensions = (*Fit)(nil)
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
		return nil, fmt.Errorf("want args of type noderesourcesfit.Args, got %T", args)
	}
	if a.Strategy == "" {
		a.Strategy = LeastAllocated
	}
	if a.Strategy != LeastAllocated && a.Strategy != MostAllocated {
		return nil, fmt.Errorf("scoring strategy %q is not supported", a.Strategy)
	}
	if len(a.Resources) == 0 {
		a.Resources = DefaultResources()
	}
	for _, r := range a.Resources {
		if r.Weight <= 0 || r.Weight > 100 {
			return nil, fmt.Errorf("resource %q weight %d is not in (0, 100]", r.Name, r.Weight)
		}
	}
	return &Fit{
		ignoredResources:      sets.New(a.IgnoredResources...),
		ignoredResourceGroups: sets.New(a.IgnoredResourceGroups...),
		strategy:              a.Strategy,
		resources:             a.Resources,
	}, nil
}

// Name implements framework.Plugin.
func (*Fit) Name() string { return Name }

type preFilterState struct {
	framework.Resource
}

func (s *preFilterState) Clone() framework.StateData { return s }

// PreFilter implements framework.PreFilterPlugin.
func (*Fit) PreFilter(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	state.Write(preFilterStateKey, &preFilterState{Resource: state.PodInfo(pod).Requests})
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (*Fit) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// InsufficientResource describes one resource a node lacks.
type InsufficientResource struct {
	ResourceName v1.ResourceName
	// Reason is "Insufficient <resource>" or "Too many pods".
	Reason    string
	Requested int64
	Used      int64
	Capacity  int64
	// Unresolvable is set when the pod requests more than the node has
	// at all, so removing pods would not help.
	Unresolvable bool
}

// Filter implements framework.FilterPlugin.
func (f *Fit) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	d, err := state.Read(preFilterStateKey)
	var req *framework.Resource
	if err == nil {
		s, ok := d.(*preFilterState)
		if !ok {
			return framework.AsStatus(fmt.Errorf("%+v convert to noderesourcesfit.preFilterState error", d))
		}
		req = &s.Resource
	} else {
		r, _, _ := framework.ComputePodRequests(pod)
		req = &r
	}
	insufficient := fitsRequest(req, nodeInfo, f.ignoredResources, f.ignoredResourceGroups)
	if len(insufficient) == 0 {
		return nil
	}
	code := framework.Unschedulable
	reasons := make([]string, 0, len(insufficient))
	for _, r := range insufficient {
		reasons = append(reasons, r.Reason)
		if r.Unresolvable {
			code = framework.UnschedulableAndUnresolvable
		}
	}
	return framework.NewStatus(code, reasons...)
}

// Fits returns the resources the node lacks for the pod; none means it fits.
func Fits(pod *v1.Pod, nodeInfo *framework.NodeInfo) []InsufficientResource {
	req, _, _ := framework.ComputePodRequests(pod)
	return fitsRequest(&req, nodeInfo, nil, nil)
}

func fitsRequest(req *framework.Resource, ni *framework.NodeInfo, ignored, ignoredGroups sets.Set[string]) []InsufficientResource {
	var out []InsufficientResource
	allowed := ni.Allocatable.AllowedPodNumber
	if len(ni.Pods)+1 > allowed {
		out = append(out, InsufficientResource{
			ResourceName: v1.ResourcePods, Reason: "Too many pods",
			Requested: 1, Used: int64(len(ni.Pods)), Capacity: int64(allowed),
		})
	}
	if req.MilliCPU == 0 && req.Memory == 0 && req.EphemeralStorage == 0 && len(req.ScalarResources) == 0 {
		return out
	}
	alloc, used := &ni.Allocatable, &ni.Requested
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		out = append(out, InsufficientResource{
			ResourceName: v1.ResourceCPU, Reason: "Insufficient cpu",
			Requested: req.MilliCPU, Used: used.MilliCPU, Capacity: alloc.MilliCPU,
			Unresolvable: req.MilliCPU > alloc.MilliCPU,
		})
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		out = append(out, InsufficientResource{
			ResourceName: v1.ResourceMemory, Reason: "Insufficient memory",
			Requested: req.Memory, Used: used.Memory, Capacity: alloc.Memory,
			Unresolvable: req.Memory > alloc.Memory,
		})
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		out = append(out, InsufficientResource{
			ResourceName: v1.ResourceEphemeralStorage, Reason: "Insufficient ephemeral-storage",
			Requested: req.EphemeralStorage, Used: used.EphemeralStorage, Capacity: alloc.EphemeralStorage,
			Unresolvable: req.EphemeralStorage > alloc.EphemeralStorage,
		})
	}
	for name, q := range req.ScalarResources {
		if q == 0 {
			continue
		}
		if framework.IsExtendedResourceName(name) {
			group, _, _ := strings.Cut(string(name), "/")
			if ignored.Has(string(name)) || ignoredGroups.Has(group) {
				continue
			}
		}
		a := alloc.ScalarResources[name]
		if q > a-used.ScalarResources[name] {
			out = append(out, InsufficientResource{
				ResourceName: name, Reason: fmt.Sprintf("Insufficient %v", name),
				Requested: q, Used: used.ScalarResources[name], Capacity: a,
				Unresolvable: q > a,
			})
		}
	}
	return out
}

type preScoreState struct {
	// podRequests are the pod's requests of f.resources, with defaults for
	// containers that request no cpu or memory.
	podRequests []int64
}

func (s *preScoreState) Clone() framework.StateData { return s }

func (f *Fit) podRequests(pi *framework.PodInfo) []int64 {
	req, cpu, mem := &pi.Requests, pi.NonZeroCPU, pi.NonZeroMemory
	out := make([]int64, len(f.resources))
	for i, r := range f.resources {
		switch r.Name {
		case v1.ResourceCPU:
			out[i] = cpu
		case v1.ResourceMemory:
			out[i] = mem
		case v1.ResourceEphemeralStorage:
			out[i] = req.EphemeralStorage
		default:
			out[i] = req.ScalarResources[r.Name]
		}
	}
	return out
}

// PreScore implements framework.PreScorePlugin.
func (f *Fit) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	state.Write(preScoreStateKey, &preScoreState{podRequests: f.podRequests(state.PodInfo(pod))})
	return nil
}

// Score implements framework.ScorePlugin.
func (f *Fit) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	var podReq []int64
	if d, err := state.Read(preScoreStateKey); err == nil {
		s, ok := d.(*preScoreState)
		if !ok {
			return 0, framework.AsStatus(fmt.Errorf("%+v convert to noderesourcesfit.preScoreState error", d))
		}
		podReq = s.podRequests
	} else {
		podReq = f.podRequests(framework.NewPodInfo(pod))
	}
	var nodeScore, weightSum int64
	for i, r := range f.resources {
		if podReq[i] == 0 && framework.IsScalarResourceName(r.Name) {
			continue
		}
		alloc, used := allocatableAndRequested(nodeInfo, r.Name, false)
		if alloc == 0 {
			continue
		}
		requested := used + podReq[i]
		var s int64
		if f.strategy == MostAllocated {
			s = mostRequestedScore(requested, alloc)
		} else {
			s = leastRequestedScore(requested, alloc)
		}
		nodeScore += s * r.Weight
		weightSum += r.Weight
	}
	if weightSum == 0 {
		return 0, nil
	}
	return nodeScore / weightSum, nil
}

// allocatableAndRequested returns a node's allocatable amount of a resource
// and what its pods request: the non-zero requests for cpu and memory
// unless useRequested.
func allocatableAndRequested(ni *framework.NodeInfo, name v1.ResourceName, useRequested bool) (int64, int64) {
	requested := &ni.NonZeroRequested
	if useRequested {
		requested = &ni.Requested
	}
	switch name {
	case v1.ResourceCPU:
		return ni.Allocatable.MilliCPU, requested.MilliCPU
	case v1.ResourceMemory:
		return ni.Allocatable.Memory, requested.Memory
	case v1.ResourceEphemeralStorage:
		return ni.Allocatable.EphemeralStorage, ni.Requested.EphemeralStorage
	default:
		if a, ok := ni.Allocatable.ScalarResources[name]; ok {
			return a, ni.Requested.ScalarResources[name]
		}
	}
	return 0, 0
}

func leastRequestedScore(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * framework.MaxNodeScore / capacity
}

func mostRequestedScore(requested, capacity int64) int64 {
	if capacity == 0 {
		return 0
	}
	if requested > capacity {
		requested = capacity
	}
	return requested * framework.MaxNodeScore / capacity
}

// ScoreExtensions implements framework.ScorePlugin; scores are already in
// range.
func (*Fit) ScoreExtensions() framework.ScoreExtensions { return nil }

// EventsToRegister implements framework.EnqueueExtensions: a deleted pod
// frees resources; a node added or whose allocatable grew may fit.
func (f *Fit) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{
		{
			Event: framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Delete},
		},
		{
			Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeAllocatable},
			QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, _, newObj any) (framework.QueueingHint, error) {
				n, ok := newObj.(*v1.Node)
				if !ok {
					return framework.Queue, nil
				}
				ni := framework.NewNodeInfo()
				ni.SetNode(n)
				if len(Fits(pod, ni)) > 0 {
					return framework.QueueSkip, nil
				}
				return framework.Queue, nil
			},
		},
	}
}
