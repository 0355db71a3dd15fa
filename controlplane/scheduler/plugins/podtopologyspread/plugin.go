// Package podtopologyspread is the PodTopologySpread plugin: a pod's
// topologySpreadConstraints limit how unevenly matching pods may spread over
// the domains of a topology key. DoNotSchedule constraints filter nodes
// (skew = pods in the node's domain + the pod itself - pods in the emptiest
// eligible domain, at most maxSkew; minDomains counts missing domains as
// empty); ScheduleAnyway constraints score them. Nodes count as eligible
// domains according to nodeAffinityPolicy (Honor by default) and
// nodeTaintsPolicy (Ignore by default), and must carry every constraint's
// topology key. Pods without constraints get the system defaults (spread by
// hostname and zone, ScheduleAnyway) when they belong to a Service,
// ReplicaSet, StatefulSet or ReplicationController.
//
// Counting matching pods per domain is the cost of this plugin: upstream
// walks every pod of every node in each cycle. Here the counts are kept per
// constraint set across cycles and updated only for the nodes whose
// generation changed since the last cycle (see counts.go).
package podtopologyspread

import (
	"context"
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "PodTopologySpread"

// Rejection reasons, as upstream.
const (
	ErrReasonConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	ErrReasonNodeLabelNotMatch   = ErrReasonConstraintsNotMatch + " (missing required label)"
)

// DefaultingType says which constraints pods without their own get.
type DefaultingType string

// The defaulting types.
const (
	// SystemDefaulting spreads by hostname (maxSkew 3) and zone (maxSkew
	// 5), ScheduleAnyway, selecting the pod's Service/controller siblings.
	SystemDefaulting DefaultingType = "System"
	// ListDefaulting uses Args.DefaultConstraints.
	ListDefaulting DefaultingType = "List"
)

// Args configure the plugin.
type Args struct {
	// DefaultConstraints apply to pods without constraints when
	// DefaultingType is List. Their label selectors must be empty: the
	// selector comes from the pod's Services and controllers.
	DefaultConstraints []v1.TopologySpreadConstraint
	// DefaultingType is System by default.
	DefaultingType DefaultingType
}

// SystemDefaultConstraints are upstream's system default constraints.
func SystemDefaultConstraints() []v1.TopologySpreadConstraint {
	return []v1.TopologySpreadConstraint{
		{TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 3},
		{TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 5},
	}
}

// PodTopologySpread filters and scores nodes by topology spread.
type PodTopologySpread struct {
	sharedLister       framework.SharedLister
	parallelizer       framework.Parallelizer
	defaultConstraints []v1.TopologySpreadConstraint
	systemDefaulted    bool

	services         corelisters.ServiceLister
	replicationCtrls corelisters.ReplicationControllerLister
	replicaSets      appslisters.ReplicaSetLister
	statefulSets     appslisters.StatefulSetLister

	counts *countCaches

	// The Filter's rejections, built once.
	missingLabel, skewTooLarge *framework.Status
}

var (
	_ framework.PreFilterPlugin     = (*PodTopologySpread)(nil)
	_ framework.PreFilterExtensions = (*PodTopologySpread)(nil)
	_ framework.FilterPlugin        = (*PodTopologySpread)(nil)
	_ framework.PreScorePlugin      = (*PodTopologySpread)(nil)
	_ framework.ScorePlugin         = (*PodTopologySpread)(nil)
	_ framework.EnqueueExtensions   = (*PodTopologySpread)(nil)
)

// New builds the plugin; args is nil, Args or *Args. With default
// constraints it registers the Service, ReplicationController, ReplicaSet
// and StatefulSet informers, so it must be built before informers start.
func New(_ context.Context, args any, h framework.Handle) (framework.Plugin, error) {
	var a Args
	switch v := args.(type) {
	case nil:
	case Args:
		a = v
	case *Args:
		a = *v
	default:
		return nil, fmt.Errorf("want args of type podtopologyspread.Args, got %T", args)
	}
	if a.DefaultingType == "" {
		a.DefaultingType = SystemDefaulting
	}
	if h.SnapshotSharedLister() == nil {
		return nil, fmt.Errorf("%s needs a snapshot lister", Name)
	}
	pl := &PodTopologySpread{
		sharedLister: h.SnapshotSharedLister(),
		parallelizer: h.Parallelizer(),
		counts:       newCountCaches(maxCountCaches),
		missingLabel: framework.NewPluginStatus(Name, framework.UnschedulableAndUnresolvable, ErrReasonNodeLabelNotMatch),
		skewTooLarge: framework.NewPluginStatus(Name, framework.Unschedulable, ErrReasonConstraintsNotMatch),
	}
	switch a.DefaultingType {
	case SystemDefaulting:
		if len(a.DefaultConstraints) > 0 {
			return nil, fmt.Errorf("default constraints must be empty with %s defaulting", SystemDefaulting)
		}
		pl.defaultConstraints = SystemDefaultConstraints()
		pl.systemDefaulted = true
	case ListDefaulting:
		for _, c := range a.DefaultConstraints {
			if c.LabelSelector != nil {
				return nil, fmt.Errorf("default constraint on %q has a label selector; it must be empty", c.TopologyKey)
			}
		}
		pl.defaultConstraints = a.DefaultConstraints
	default:
		return nil, fmt.Errorf("defaulting type %q is not supported", a.DefaultingType)
	}
	// Without informers (a configuration check), default constraints
	// select nothing.
	if f := h.SharedInformerFactory(); len(pl.defaultConstraints) > 0 && f != nil {
		// Watch only what the server serves: an informer for a missing
		// resource never syncs.
		served := servedResources(h)
		if served["v1/services"] {
			pl.services = f.Core().V1().Services().Lister()
		}
		if served["v1/replicationcontrollers"] {
			pl.replicationCtrls = f.Core().V1().ReplicationControllers().Lister()
		}
		if served["apps/v1/replicasets"] {
			pl.replicaSets = f.Apps().V1().ReplicaSets().Lister()
		}
		if served["apps/v1/statefulsets"] {
			pl.statefulSets = f.Apps().V1().StatefulSets().Lister()
		}
	}
	return pl, nil
}

// servedResources asks discovery which of the resources that define a
// pod's siblings the server serves, as "group/version/resource".
func servedResources(h framework.Handle) map[string]bool {
	out := map[string]bool{}
	c := h.ClientSet()
	if c == nil {
		return out
	}
	for _, gv := range []string{"v1", "apps/v1"} {
		l, err := c.Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			if h.Log() != nil {
				h.Log().Debug("discover resources for default spread constraints", "groupVersion", gv, "err", err)
			}
			continue
		}
		for _, r := range l.APIResources {
			out[gv+"/"+r.Name] = true
		}
	}
	return out
}

// Name implements framework.Plugin.
func (*PodTopologySpread) Name() string { return Name }

// constraint is a parsed TopologySpreadConstraint.
type constraint struct {
	MaxSkew            int32
	TopologyKey        string
	Selector           labels.Selector
	MinDomains         int32
	NodeAffinityPolicy v1.NodeInclusionPolicy
	NodeTaintsPolicy   v1.NodeInclusionPolicy
}

// filterConstraints parses the constraints with the given action, merging
// matchLabelKeys into the selector.
func filterConstraints(cs []v1.TopologySpreadConstraint, podLabels map[string]string, action v1.UnsatisfiableConstraintAction) ([]constraint, error) {
	var out []constraint
	for _, c := range cs {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, err
		}
		if len(c.MatchLabelKeys) > 0 {
			match := make(labels.Set)
			for _, k := range c.MatchLabelKeys {
				if v, ok := podLabels[k]; ok {
					match[k] = v
				}
			}
			if len(match) > 0 {
				sel = mergeLabelSetWithSelector(match, sel)
			}
		}
		tc := constraint{
			MaxSkew:            c.MaxSkew,
			TopologyKey:        c.TopologyKey,
			Selector:           sel,
			MinDomains:         1,
			NodeAffinityPolicy: v1.NodeInclusionPolicyHonor,
			NodeTaintsPolicy:   v1.NodeInclusionPolicyIgnore,
		}
		if c.MinDomains != nil {
			tc.MinDomains = *c.MinDomains
		}
		if c.NodeAffinityPolicy != nil {
			tc.NodeAffinityPolicy = *c.NodeAffinityPolicy
		}
		if c.NodeTaintsPolicy != nil {
			tc.NodeTaintsPolicy = *c.NodeTaintsPolicy
		}
		out = append(out, tc)
	}
	return out, nil
}

func mergeLabelSetWithSelector(match labels.Set, s labels.Selector) labels.Selector {
	merged := labels.SelectorFromSet(match)
	reqs, ok := s.Requirements()
	if !ok {
		return s
	}
	for _, r := range reqs {
		merged = merged.Add(r)
	}
	return merged
}

// constraints returns the pod's constraints with the action, or the
// default ones when the pod has none.
func (pl *PodTopologySpread) constraints(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]constraint, error) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		return filterConstraints(pod.Spec.TopologySpreadConstraints, pod.Labels, action)
	}
	return pl.buildDefaultConstraints(pod, action)
}

func (pl *PodTopologySpread) buildDefaultConstraints(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]constraint, error) {
	cs, err := filterConstraints(pl.defaultConstraints, pod.Labels, action)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	sel := pl.defaultSelector(pod)
	if sel.Empty() {
		return nil, nil
	}
	for i := range cs {
		cs[i].Selector = sel
	}
	return cs, nil
}

// defaultSelector selects the pod's siblings: the union of its Services'
// selectors and its controller's selector, as upstream's DefaultSelector.
func (pl *PodTopologySpread) defaultSelector(pod *v1.Pod) labels.Selector {
	set := make(labels.Set)
	if pl.services != nil {
		if svcs, err := pl.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
			for _, s := range svcs {
				if s.Spec.Selector == nil {
					continue
				}
				if labels.Set(s.Spec.Selector).AsSelectorPreValidated().Matches(labels.Set(pod.Labels)) {
					set = labels.Merge(set, s.Spec.Selector)
				}
			}
		}
	}
	sel := set.AsSelector()
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return sel
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return sel
	}
	addSelector := func(ls *metav1.LabelSelector) {
		other, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return
		}
		if r, ok := other.Requirements(); ok {
			sel = sel.Add(r...)
		}
	}
	switch gv.WithKind(owner.Kind) {
	case v1.SchemeGroupVersion.WithKind("ReplicationController"):
		if pl.replicationCtrls != nil {
			if rc, err := pl.replicationCtrls.ReplicationControllers(pod.Namespace).Get(owner.Name); err == nil {
				set = labels.Merge(set, rc.Spec.Selector)
				sel = set.AsSelector()
			}
		}
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}:
		if pl.replicaSets != nil {
			if rs, err := pl.replicaSets.ReplicaSets(pod.Namespace).Get(owner.Name); err == nil {
				addSelector(rs.Spec.Selector)
			}
		}
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}:
		if pl.statefulSets != nil {
			if ss, err := pl.statefulSets.StatefulSets(pod.Namespace).Get(owner.Name); err == nil {
				addSelector(ss.Spec.Selector)
			}
		}
	}
	return sel
}

// nodeLabelsMatchConstraints reports whether the node has every topology
// key.
func nodeLabelsMatchConstraints(nodeLabels map[string]string, cs []constraint) bool {
	for _, c := range cs {
		if _, ok := nodeLabels[c.TopologyKey]; !ok {
			return false
		}
	}
	return true
}

// countPodsMatchSelector counts the non-terminating pods of namespace ns
// that the selector matches.
func countPodsMatchSelector(pods []*framework.PodInfo, sel labels.Selector, ns string) int {
	if sel.Empty() {
		return 0
	}
	n := 0
	for _, p := range pods {
		if p.Pod.DeletionTimestamp != nil || p.Pod.Namespace != ns {
			continue
		}
		if sel.Matches(labels.Set(p.Pod.Labels)) {
			n++
		}
	}
	return n
}

// EventsToRegister implements framework.EnqueueExtensions.
func (pl *PodTopologySpread) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{
		{
			Event:          framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Add | framework.UpdatePodLabel | framework.Delete},
			QueueingHintFn: pl.isSchedulableAfterPodChange,
		},
		{
			Event:          framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.Delete | framework.UpdateNodeLabel | framework.UpdateNodeTaint},
			QueueingHintFn: pl.isSchedulableAfterNodeChange,
		},
	}
}

// isSchedulableAfterPodChange: a pod in the same namespace, matching a
// constraint before or after the change.
func (pl *PodTopologySpread) isSchedulableAfterPodChange(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
	cs, err := pl.constraints(pod, v1.DoNotSchedule)
	if err != nil {
		return framework.Queue, err
	}
	for _, obj := range []any{oldObj, newObj} {
		p, ok := obj.(*v1.Pod)
		if !ok || p.Namespace != pod.Namespace {
			continue
		}
		for _, c := range cs {
			if c.Selector.Matches(labels.Set(p.Labels)) {
				return framework.Queue, nil
			}
		}
	}
	return framework.QueueSkip, nil
}

// isSchedulableAfterNodeChange: a node that has (or had) all the topology
// keys of the pod's constraints.
func (pl *PodTopologySpread) isSchedulableAfterNodeChange(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
	cs, err := pl.constraints(pod, v1.DoNotSchedule)
	if err != nil {
		return framework.Queue, err
	}
	for _, obj := range []any{oldObj, newObj} {
		if n, ok := obj.(*v1.Node); ok && nodeLabelsMatchConstraints(n.Labels, cs) {
			return framework.Queue, nil
		}
	}
	return framework.QueueSkip, nil
}
