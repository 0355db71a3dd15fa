// Package interpodaffinity is the InterPodAffinity plugin: required pod
// affinity and anti-affinity filter nodes, preferred terms score them, with
// the semantics of upstream's plugin:
//
//   - a term selects pods by labels in its namespaces (the pod's own by
//     default, or those named, or those whose labels match its namespace
//     selector) and groups nodes by its topology key;
//   - a pod with required affinity needs, in the node's domain, pods matching
//     all its terms; the first pod of a group that matches its own terms may
//     go anywhere when no such pods exist yet;
//   - a pod with required anti-affinity avoids domains holding pods that
//     match any of its terms, and existing pods' required anti-affinity keeps
//     matching pods out of their domains;
//   - scoring adds the weights of preferred terms (and required affinity
//     terms of existing pods, with the hard pod affinity weight) per domain.
//
// Terms whose topology key is the hostname are checked against the pods of
// the node itself during Filter (upstream's hostname fast path), so the
// common "one per node" anti-affinity costs nothing per cycle; other terms
// are counted per domain once per cycle in PreFilter.
package interpodaffinity

import (
	"context"
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	listersv1 "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "InterPodAffinity"

// Args configure the plugin.
type Args struct {
	// HardPodAffinityWeight is the score weight of existing pods' required
	// affinity terms that the incoming pod matches; 1 by default (0 is
	// taken as the default; use a negative value to disable).
	HardPodAffinityWeight int32
	// IgnorePreferredTermsOfExistingPods skips scoring by existing pods'
	// terms when the incoming pod has no preferred terms.
	IgnorePreferredTermsOfExistingPods bool
}

// InterPodAffinity filters and scores nodes by pod affinity.
type InterPodAffinity struct {
	args         Args
	sharedLister framework.SharedLister
	parallelizer framework.Parallelizer
	nsLister     listersv1.NamespaceLister

	// The Filter's rejections, built once.
	affinityMismatch, antiAffinityMismatch, existingAntiAffinityMismatch *framework.Status

	// Per-node counts for hostname-scoped terms, kept across cycles.
	hostCounts *hostCountCaches
	existing   *existingAntiIndex
}

var (
	_ framework.PreFilterPlugin     = (*InterPodAffinity)(nil)
	_ framework.PreFilterExtensions = (*InterPodAffinity)(nil)
	_ framework.FilterPlugin        = (*InterPodAffinity)(nil)
	_ framework.PreScorePlugin      = (*InterPodAffinity)(nil)
	_ framework.ScorePlugin         = (*InterPodAffinity)(nil)
	_ framework.EnqueueExtensions   = (*InterPodAffinity)(nil)
)

// New builds the plugin; args is nil, Args or *Args. It registers the
// namespace informer, so it must be built before the informers start.
func New(_ context.Context, args any, h framework.Handle) (framework.Plugin, error) {
	var a Args
	switch v := args.(type) {
	case nil:
	case Args:
		a = v
	case *Args:
		a = *v
	default:
		return nil, fmt.Errorf("want args of type interpodaffinity.Args, got %T", args)
	}
	if a.HardPodAffinityWeight == 0 {
		a.HardPodAffinityWeight = 1
	}
	if a.HardPodAffinityWeight > 100 {
		return nil, fmt.Errorf("hardPodAffinityWeight %d is not in [0, 100]", a.HardPodAffinityWeight)
	}
	if h.SnapshotSharedLister() == nil {
		return nil, fmt.Errorf("%s needs a snapshot lister", Name)
	}
	pl := &InterPodAffinity{
		args: a, sharedLister: h.SnapshotSharedLister(), parallelizer: h.Parallelizer(),
		affinityMismatch:             framework.NewPluginStatus(Name, framework.UnschedulableAndUnresolvable, ErrReasonAffinityRulesNotMatch),
		antiAffinityMismatch:         framework.NewPluginStatus(Name, framework.Unschedulable, ErrReasonAntiAffinityRulesNotMatch),
		existingAntiAffinityMismatch: framework.NewPluginStatus(Name, framework.Unschedulable, ErrReasonExistingAntiAffinityRulesNotMatch),
		hostCounts:                   &hostCountCaches{entries: make(map[string]*hostCounts)},
		existing:                     &existingAntiIndex{},
	}
	if f := h.SharedInformerFactory(); f != nil {
		inf := f.Core().V1().Namespaces()
		inf.Informer()
		pl.nsLister = inf.Lister()
	}
	return pl, nil
}

// Name implements framework.Plugin.
func (*InterPodAffinity) Name() string { return Name }

// mergeNamespaces returns a copy of terms in which a namespace selector is
// replaced by the namespaces it selects now, as upstream does for the
// incoming pod's terms.
func (pl *InterPodAffinity) mergeNamespaces(terms []framework.AffinityTerm) ([]framework.AffinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]framework.AffinityTerm, len(terms))
	copy(out, terms)
	for i := range out {
		t := &out[i]
		if t.NamespaceSelector.Empty() {
			// Selects every namespace; Matches handles it.
			continue
		}
		if _, selectable := t.NamespaceSelector.Requirements(); !selectable {
			// labels.Nothing(): no namespace selector.
			continue
		}
		t.Namespaces = t.Namespaces.Clone()
		if pl.nsLister != nil {
			nss, err := pl.nsLister.List(t.NamespaceSelector)
			if err != nil {
				return nil, fmt.Errorf("list namespaces for a namespace selector: %w", err)
			}
			for _, ns := range nss {
				t.Namespaces.Insert(ns.Name)
			}
		}
		t.NamespaceSelector = labels.Nothing()
		t.Compile()
	}
	return out, nil
}

func (pl *InterPodAffinity) mergeWeightedNamespaces(terms []framework.WeightedAffinityTerm) ([]framework.WeightedAffinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	plain := make([]framework.AffinityTerm, len(terms))
	for i := range terms {
		plain[i] = terms[i].AffinityTerm
	}
	merged, err := pl.mergeNamespaces(plain)
	if err != nil {
		return nil, err
	}
	out := make([]framework.WeightedAffinityTerm, len(terms))
	for i := range terms {
		out[i] = framework.WeightedAffinityTerm{AffinityTerm: merged[i], Weight: terms[i].Weight}
	}
	return out, nil
}

// namespaceLabels returns the labels of namespace ns, nil when unknown.
func (pl *InterPodAffinity) namespaceLabels(ns string) labels.Set {
	if pl.nsLister == nil {
		return nil
	}
	n, err := pl.nsLister.Get(ns)
	if err != nil {
		return nil
	}
	return labels.Merge(n.Labels, nil)
}

func podMatchesAllAffinityTerms(terms []framework.AffinityTerm, pod *v1.Pod) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].Matches(pod, nil) {
			return false
		}
	}
	return true
}

func podMatchesAnyAffinityTerm(terms []framework.AffinityTerm, pod *v1.Pod) bool {
	for i := range terms {
		if terms[i].Matches(pod, nil) {
			return true
		}
	}
	return false
}

func parseTerms(pod *v1.Pod) (affinity, anti []framework.AffinityTerm) {
	pi := framework.NewPodInfo(pod)
	return pi.RequiredAffinityTerms, pi.RequiredAntiAffinityTerms
}

// EventsToRegister implements framework.EnqueueExtensions.
func (pl *InterPodAffinity) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{
		{
			Event:          framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Add | framework.UpdatePodLabel | framework.Delete},
			QueueingHintFn: isSchedulableAfterAssignedPodChange,
		},
		{
			Event:          framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel},
			QueueingHintFn: isSchedulableAfterNodeChange,
		},
	}
}

// isSchedulableAfterAssignedPodChange: a pod that now matches the pending
// pod's affinity, or no longer matches (or was deleted and matched) its
// anti-affinity, or a deleted pod whose anti-affinity kept it out.
func isSchedulableAfterAssignedPodChange(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
	oldPod, _ := oldObj.(*v1.Pod)
	newPod, _ := newObj.(*v1.Pod)
	affinity, anti := parseTerms(pod)
	switch {
	case oldPod != nil && newPod != nil:
		if !podMatchesAllAffinityTerms(affinity, oldPod) && podMatchesAllAffinityTerms(affinity, newPod) {
			return framework.Queue, nil
		}
		if podMatchesAnyAffinityTerm(anti, oldPod) && !podMatchesAnyAffinityTerm(anti, newPod) {
			return framework.Queue, nil
		}
		return framework.QueueSkip, nil
	case newPod != nil:
		if podMatchesAllAffinityTerms(affinity, newPod) {
			return framework.Queue, nil
		}
		return framework.QueueSkip, nil
	case oldPod != nil:
		if podMatchesAnyAffinityTerm(anti, oldPod) {
			return framework.Queue, nil
		}
		_, oldAnti := parseTerms(oldPod)
		for i := range oldAnti {
			if oldAnti[i].Matches(pod, nil) {
				return framework.Queue, nil
			}
		}
		return framework.QueueSkip, nil
	}
	return framework.Queue, nil
}

// isSchedulableAfterNodeChange: a node that gains a topology key of the
// pod's affinity terms, or loses or changes one of its anti-affinity terms.
func isSchedulableAfterNodeChange(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
	newNode, ok := newObj.(*v1.Node)
	if !ok {
		return framework.Queue, nil
	}
	oldNode, _ := oldObj.(*v1.Node)
	affinity, anti := parseTerms(pod)
	for _, t := range affinity {
		if oldNode == nil {
			if _, ok := newNode.Labels[t.TopologyKey]; ok {
				return framework.Queue, nil
			}
			continue
		}
		ov, oldHas := oldNode.Labels[t.TopologyKey]
		nv, newHas := newNode.Labels[t.TopologyKey]
		if (!oldHas && newHas) || (oldHas && newHas && ov != nv) {
			return framework.Queue, nil
		}
	}
	for _, t := range anti {
		if oldNode == nil {
			return framework.Queue, nil
		}
		ov, oldHas := oldNode.Labels[t.TopologyKey]
		nv, newHas := newNode.Labels[t.TopologyKey]
		if (oldHas && !newHas) || (oldHas && newHas && ov != nv) {
			return framework.Queue, nil
		}
	}
	return framework.QueueSkip, nil
}
