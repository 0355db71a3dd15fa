// Package nodeaffinity is the NodeAffinity plugin: a pod's nodeSelector and
// required node affinity filter nodes, and its preferred node affinity terms
// score them (the sum of the weights of the terms a node matches).
package nodeaffinity

import (
	"context"
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/normalize"
)

const (
	// Name is the plugin's name.
	Name = "NodeAffinity"
	// ErrReasonPod is the rejection reason for the pod's own affinity.
	ErrReasonPod = "node(s) didn't match Pod's node affinity/selector"
	// ErrReasonEnforced is the rejection reason for the profile's added
	// affinity.
	ErrReasonEnforced = "node(s) didn't match scheduler-enforced node affinity"
	// ErrReasonConflict is the rejection reason when the pod's terms name
	// no node at all.
	ErrReasonConflict = "pod affinity terms conflict"

	preFilterStateKey framework.StateKey = "PreFilter" + Name
	preScoreStateKey  framework.StateKey = "PreScore" + Name
)

// Args configure the plugin.
type Args struct {
	// AddedAffinity is applied to every pod of the profile, on top of the
	// pod's own.
	AddedAffinity *v1.NodeAffinity
}

// NodeAffinity filters and scores nodes by node affinity.
type NodeAffinity struct {
	addedNodeSelector   *nodeaffinity.NodeSelector
	addedPrefSchedTerms *nodeaffinity.PreferredSchedulingTerms

	// The Filter's rejections, built once.
	podMismatch, enforcedMismatch *framework.Status
}

var (
	_ framework.PreFilterPlugin   = (*NodeAffinity)(nil)
	_ framework.FilterPlugin      = (*NodeAffinity)(nil)
	_ framework.PreScorePlugin    = (*NodeAffinity)(nil)
	_ framework.ScorePlugin       = (*NodeAffinity)(nil)
	_ framework.EnqueueExtensions = (*NodeAffinity)(nil)
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
		return nil, fmt.Errorf("want args of type nodeaffinity.Args, got %T", args)
	}
	pl := &NodeAffinity{
		podMismatch:      framework.NewPluginStatus(Name, framework.UnschedulableAndUnresolvable, ErrReasonPod),
		enforcedMismatch: framework.NewPluginStatus(Name, framework.UnschedulableAndUnresolvable, ErrReasonEnforced),
	}
	if a.AddedAffinity != nil {
		if ns := a.AddedAffinity.RequiredDuringSchedulingIgnoredDuringExecution; ns != nil {
			sel, err := nodeaffinity.NewNodeSelector(ns)
			if err != nil {
				return nil, fmt.Errorf("parse addedAffinity.requiredDuringSchedulingIgnoredDuringExecution: %w", err)
			}
			pl.addedNodeSelector = sel
		}
		if terms := a.AddedAffinity.PreferredDuringSchedulingIgnoredDuringExecution; len(terms) != 0 {
			t, err := nodeaffinity.NewPreferredSchedulingTerms(terms)
			if err != nil {
				return nil, fmt.Errorf("parse addedAffinity.preferredDuringSchedulingIgnoredDuringExecution: %w", err)
			}
			pl.addedPrefSchedTerms = t
		}
	}
	return pl, nil
}

// Name implements framework.Plugin.
func (*NodeAffinity) Name() string { return Name }

type preFilterState struct {
	required nodeaffinity.RequiredNodeAffinity
}

func (s *preFilterState) Clone() framework.StateData { return s }

// PreFilter implements framework.PreFilterPlugin. Pods without a node
// selector or required affinity skip the Filter (unless the profile adds
// one); terms that select nodes by name narrow the nodes to evaluate.
func (pl *NodeAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	affinity := pod.Spec.Affinity
	noNodeAffinity := affinity == nil || affinity.NodeAffinity == nil || affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil
	if noNodeAffinity && pl.addedNodeSelector == nil && pod.Spec.NodeSelector == nil {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterStateKey, &preFilterState{required: nodeaffinity.GetRequiredNodeAffinity(pod)})
	if noNodeAffinity || len(affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0 {
		return nil, nil
	}
	// The terms are ORed: the pod is restricted to named nodes only when
	// every term names nodes.
	var nodeNames sets.Set[string]
	for _, t := range affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var termNames sets.Set[string]
		for _, r := range t.MatchFields {
			if r.Key == metav1.ObjectNameField && r.Operator == v1.NodeSelectorOpIn {
				s := sets.New(r.Values...)
				if termNames == nil {
					termNames = s
				} else {
					termNames = termNames.Intersection(s)
				}
			}
		}
		if termNames == nil {
			return nil, nil
		}
		nodeNames = nodeNames.Union(termNames)
	}
	if nodeNames != nil && len(nodeNames) == 0 {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonConflict)
	}
	if len(nodeNames) > 0 {
		return &framework.PreFilterResult{NodeNames: nodeNames}, nil
	}
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (*NodeAffinity) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter implements framework.FilterPlugin.
func (pl *NodeAffinity) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	node := nodeInfo.Node()
	if pl.addedNodeSelector != nil && !pl.addedNodeSelector.Match(node) {
		return pl.enforcedMismatch
	}
	var required nodeaffinity.RequiredNodeAffinity
	if d, err := state.Read(preFilterStateKey); err == nil {
		s, ok := d.(*preFilterState)
		if !ok {
			return framework.AsStatus(fmt.Errorf("%+v convert to nodeaffinity.preFilterState error", d))
		}
		required = s.required
	} else {
		required = nodeaffinity.GetRequiredNodeAffinity(pod)
	}
	if match, _ := required.Match(node); !match {
		return pl.podMismatch
	}
	return nil
}

type preScoreState struct {
	preferred *nodeaffinity.PreferredSchedulingTerms
}

func (s *preScoreState) Clone() framework.StateData { return s }

func podPreferredTerms(pod *v1.Pod) (*nodeaffinity.PreferredSchedulingTerms, error) {
	a := pod.Spec.Affinity
	if a != nil && a.NodeAffinity != nil && a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution != nil {
		return nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	return nil, nil
}

// PreScore implements framework.PreScorePlugin; pods without preferred
// terms skip the Score.
func (pl *NodeAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	preferred, err := podPreferredTerms(pod)
	if err != nil {
		return framework.AsStatus(fmt.Errorf("parse pod's preferred node affinity: %w", err))
	}
	if preferred == nil && pl.addedPrefSchedTerms == nil {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{preferred: preferred})
	return nil
}

// Score implements framework.ScorePlugin: the summed weights of the
// preferred terms the node matches.
func (pl *NodeAffinity) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	node := nodeInfo.Node()
	var count int64
	if pl.addedPrefSchedTerms != nil {
		count += pl.addedPrefSchedTerms.Score(node)
	}
	var preferred *nodeaffinity.PreferredSchedulingTerms
	if d, err := state.Read(preScoreStateKey); err == nil {
		s, ok := d.(*preScoreState)
		if !ok {
			return 0, framework.AsStatus(fmt.Errorf("%+v convert to nodeaffinity.preScoreState error", d))
		}
		preferred = s.preferred
	} else if preferred, err = podPreferredTerms(pod); err != nil {
		return 0, framework.AsStatus(err)
	}
	if preferred != nil {
		count += preferred.Score(node)
	}
	return count, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (pl *NodeAffinity) ScoreExtensions() framework.ScoreExtensions { return pl }

// NormalizeScore implements framework.ScoreExtensions.
func (*NodeAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	normalize.Scores(framework.MaxNodeScore, false, scores)
	return nil
}

// EventsToRegister implements framework.EnqueueExtensions: a node added or
// relabelled so that it now matches.
func (pl *NodeAffinity) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{{
		Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel},
		QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
			n, ok := newObj.(*v1.Node)
			if !ok {
				return framework.Queue, nil
			}
			if pl.addedNodeSelector != nil && !pl.addedNodeSelector.Match(n) {
				return framework.QueueSkip, nil
			}
			required := nodeaffinity.GetRequiredNodeAffinity(pod)
			if match, err := required.Match(n); err != nil || !match {
				return framework.QueueSkip, err
			}
			if old, ok := oldObj.(*v1.Node); ok {
				if was, _ := required.Match(old); was {
					return framework.QueueSkip, nil
				}
			}
			return framework.Queue, nil
		},
	}}
}
