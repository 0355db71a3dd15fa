// Package schedtest has object builders for the scheduler's tests: pods,
// nodes and label selectors built with chained calls, in the style of
// upstream's pkg/scheduler/testing, plus a minimal plugin Handle over a
// snapshot.
package schedtest

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ResourceList parses a map such as {"cpu": "500m", "memory": "1Gi"}.
func ResourceList(m map[v1.ResourceName]string) v1.ResourceList {
	rl := make(v1.ResourceList, len(m))
	for k, v := range m {
		rl[k] = resource.MustParse(v)
	}
	return rl
}

// PodWrapper builds a pod.
type PodWrapper struct{ v1.Pod }

// MakePod starts a pod in namespace "default" with the default scheduler.
func MakePod() *PodWrapper {
	p := &PodWrapper{}
	p.Pod.Namespace = "default"
	p.Spec.SchedulerName = v1.DefaultSchedulerName
	return p
}

// Obj returns the pod.
func (p *PodWrapper) Obj() *v1.Pod { return &p.Pod }

// Name sets the name, and the UID to the name when none is set.
func (p *PodWrapper) Name(s string) *PodWrapper {
	p.SetName(s)
	if p.Pod.UID == "" {
		p.Pod.UID = types.UID(s)
	}
	return p
}

// Namespace sets the namespace.
func (p *PodWrapper) Namespace(s string) *PodWrapper { p.SetNamespace(s); return p }

// UID sets the UID.
func (p *PodWrapper) UID(s string) *PodWrapper { p.SetUID(types.UID(s)); return p }

// Label adds a label.
func (p *PodWrapper) Label(k, v string) *PodWrapper {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[k] = v
	return p
}

// SchedulerName sets spec.schedulerName.
func (p *PodWrapper) SchedulerName(s string) *PodWrapper { p.Spec.SchedulerName = s; return p }

// Node sets spec.nodeName.
func (p *PodWrapper) Node(s string) *PodWrapper { p.Spec.NodeName = s; return p }

// Priority sets spec.priority.
func (p *PodWrapper) Priority(v int32) *PodWrapper { p.Spec.Priority = &v; return p }

// Terminating sets a deletion timestamp.
func (p *PodWrapper) Terminating() *PodWrapper {
	now := metav1.Now()
	p.DeletionTimestamp = &now
	return p
}

// Phase sets status.phase.
func (p *PodWrapper) Phase(ph v1.PodPhase) *PodWrapper { p.Status.Phase = ph; return p }

// SchedulingGates adds scheduling gates.
func (p *PodWrapper) SchedulingGates(names ...string) *PodWrapper {
	for _, n := range names {
		p.Spec.SchedulingGates = append(p.Spec.SchedulingGates, v1.PodSchedulingGate{Name: n})
	}
	return p
}

// Req adds a container with the given requests.
func (p *PodWrapper) Req(m map[v1.ResourceName]string) *PodWrapper {
	p.Spec.Containers = append(p.Spec.Containers, v1.Container{
		Name:      "c" + string(rune('0'+len(p.Spec.Containers))),
		Image:     "pause",
		Resources: v1.ResourceRequirements{Requests: ResourceList(m)},
	})
	return p
}

// InitReq adds an init container with the given requests.
func (p *PodWrapper) InitReq(m map[v1.ResourceName]string) *PodWrapper {
	p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{
		Name:      "init" + string(rune('0'+len(p.Spec.InitContainers))),
		Image:     "pause",
		Resources: v1.ResourceRequirements{Requests: ResourceList(m)},
	})
	return p
}

// SidecarReq adds a restartable init container (a sidecar) with the given
// requests.
func (p *PodWrapper) SidecarReq(m map[v1.ResourceName]string) *PodWrapper {
	always := v1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{
		Name:          "sidecar" + string(rune('0'+len(p.Spec.InitContainers))),
		Image:         "pause",
		RestartPolicy: &always,
		Resources:     v1.ResourceRequirements{Requests: ResourceList(m)},
	})
	return p
}

// Overhead sets spec.overhead.
func (p *PodWrapper) Overhead(m map[v1.ResourceName]string) *PodWrapper {
	p.Spec.Overhead = ResourceList(m)
	return p
}

// HostPort adds a container port bound on the host.
func (p *PodWrapper) HostPort(proto v1.Protocol, hostIP string, port int32) *PodWrapper {
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "c0", Image: "pause"})
	}
	c := &p.Spec.Containers[0]
	c.Ports = append(c.Ports, v1.ContainerPort{Protocol: proto, HostIP: hostIP, HostPort: port, ContainerPort: port})
	return p
}

// Toleration adds a toleration.
func (p *PodWrapper) Toleration(key string, op v1.TolerationOperator, value string, effect v1.TaintEffect) *PodWrapper {
	p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: key, Operator: op, Value: value, Effect: effect})
	return p
}

// NodeSelector adds a nodeSelector entry.
func (p *PodWrapper) NodeSelector(k, v string) *PodWrapper {
	if p.Spec.NodeSelector == nil {
		p.Spec.NodeSelector = map[string]string{}
	}
	p.Spec.NodeSelector[k] = v
	return p
}

func (p *PodWrapper) nodeAffinity() *v1.NodeAffinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &v1.Affinity{}
	}
	if p.Spec.Affinity.NodeAffinity == nil {
		p.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{}
	}
	return p.Spec.Affinity.NodeAffinity
}

// NodeAffinity adds a required node selector term with one expression.
func (p *PodWrapper) NodeAffinity(key string, op v1.NodeSelectorOperator, vals ...string) *PodWrapper {
	na := p.nodeAffinity()
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &v1.NodeSelector{}
	}
	ns := na.RequiredDuringSchedulingIgnoredDuringExecution
	ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, v1.NodeSelectorTerm{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}},
	})
	return p
}

// NodeAffinityName adds a required term selecting node names with a
// matchFields expression.
func (p *PodWrapper) NodeAffinityName(names ...string) *PodWrapper {
	na := p.nodeAffinity()
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &v1.NodeSelector{}
	}
	ns := na.RequiredDuringSchedulingIgnoredDuringExecution
	ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, v1.NodeSelectorTerm{
		MatchFields: []v1.NodeSelectorRequirement{{Key: metav1.ObjectNameField, Operator: v1.NodeSelectorOpIn, Values: names}},
	})
	return p
}

// PreferredNodeAffinity adds a preferred term with one expression.
func (p *PodWrapper) PreferredNodeAffinity(weight int32, key string, op v1.NodeSelectorOperator, vals ...string) *PodWrapper {
	na := p.nodeAffinity()
	na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution,
		v1.PreferredSchedulingTerm{Weight: weight, Preference: v1.NodeSelectorTerm{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}},
		}})
	return p
}

// PodAffinityKind says which kind of pod affinity term to add.
type PodAffinityKind int

// The kinds of pod affinity terms.
const (
	Affinity PodAffinityKind = iota
	AntiAffinity
)

func (p *PodWrapper) affinity() *v1.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &v1.Affinity{}
	}
	return p.Spec.Affinity
}

// PodAffinity adds a required term of the given kind.
func (p *PodWrapper) PodAffinity(kind PodAffinityKind, topologyKey string, sel *metav1.LabelSelector, namespaces ...string) *PodWrapper {
	return p.PodAffinityTerm(kind, v1.PodAffinityTerm{LabelSelector: sel, TopologyKey: topologyKey, Namespaces: namespaces})
}

// PodAffinityTerm adds a required term given in full.
func (p *PodWrapper) PodAffinityTerm(kind PodAffinityKind, term v1.PodAffinityTerm) *PodWrapper {
	a := p.affinity()
	switch kind {
	case Affinity:
		if a.PodAffinity == nil {
			a.PodAffinity = &v1.PodAffinity{}
		}
		a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term)
	case AntiAffinity:
		if a.PodAntiAffinity == nil {
			a.PodAntiAffinity = &v1.PodAntiAffinity{}
		}
		a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term)
	}
	return p
}

// PreferredPodAffinity adds a preferred term of the given kind.
func (p *PodWrapper) PreferredPodAffinity(kind PodAffinityKind, weight int32, topologyKey string, sel *metav1.LabelSelector, namespaces ...string) *PodWrapper {
	a := p.affinity()
	w := v1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: v1.PodAffinityTerm{LabelSelector: sel, TopologyKey: topologyKey, Namespaces: namespaces}}
	switch kind {
	case Affinity:
		if a.PodAffinity == nil {
			a.PodAffinity = &v1.PodAffinity{}
		}
		a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
	case AntiAffinity:
		if a.PodAntiAffinity == nil {
			a.PodAntiAffinity = &v1.PodAntiAffinity{}
		}
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
	}
	return p
}

// SpreadConstraint adds a topology spread constraint. minDomains 0 leaves
// it unset.
func (p *PodWrapper) SpreadConstraint(maxSkew int32, topologyKey string, mode v1.UnsatisfiableConstraintAction, sel *metav1.LabelSelector, minDomains int32) *PodWrapper {
	c := v1.TopologySpreadConstraint{MaxSkew: maxSkew, TopologyKey: topologyKey, WhenUnsatisfiable: mode, LabelSelector: sel}
	if minDomains > 0 {
		c.MinDomains = &minDomains
	}
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	return p
}

// SpreadConstraintFull adds a topology spread constraint given in full.
func (p *PodWrapper) SpreadConstraintFull(c v1.TopologySpreadConstraint) *PodWrapper {
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	return p
}

// NominatedNodeName sets status.nominatedNodeName.
func (p *PodWrapper) NominatedNodeName(n string) *PodWrapper {
	p.Status.NominatedNodeName = n
	return p
}

// NodeWrapper builds a node.
type NodeWrapper struct{ v1.Node }

// MakeNode starts a node.
func MakeNode() *NodeWrapper { return &NodeWrapper{} }

// Obj returns the node.
func (n *NodeWrapper) Obj() *v1.Node { return &n.Node }

// Name sets the name and the kubernetes.io/hostname label.
func (n *NodeWrapper) Name(s string) *NodeWrapper {
	n.SetName(s)
	n.UID = types.UID(s)
	return n.Label(v1.LabelHostname, s)
}

// Label adds a label.
func (n *NodeWrapper) Label(k, v string) *NodeWrapper {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[k] = v
	return n
}

// Capacity sets capacity and allocatable.
func (n *NodeWrapper) Capacity(m map[v1.ResourceName]string) *NodeWrapper {
	n.Status.Capacity = ResourceList(m)
	n.Status.Allocatable = ResourceList(m)
	return n
}

// Taint adds a taint.
func (n *NodeWrapper) Taint(key, value string, effect v1.TaintEffect) *NodeWrapper {
	n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Value: value, Effect: effect})
	return n
}

// Unschedulable sets spec.unschedulable.
func (n *NodeWrapper) Unschedulable(u bool) *NodeWrapper { n.Spec.Unschedulable = u; return n }

// SelectorWrapper builds a label selector.
type SelectorWrapper struct{ metav1.LabelSelector }

// MakeLabelSelector starts an empty selector (which selects everything).
func MakeLabelSelector() *SelectorWrapper { return &SelectorWrapper{} }

// Obj returns the selector.
func (s *SelectorWrapper) Obj() *metav1.LabelSelector { return &s.LabelSelector }

// Label adds a matchLabels entry.
func (s *SelectorWrapper) Label(k, v string) *SelectorWrapper {
	if s.MatchLabels == nil {
		s.MatchLabels = map[string]string{}
	}
	s.MatchLabels[k] = v
	return s
}

// Expr adds a match expression.
func (s *SelectorWrapper) Expr(k string, op metav1.LabelSelectorOperator, vals ...string) *SelectorWrapper {
	s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: op, Values: vals})
	return s
}
