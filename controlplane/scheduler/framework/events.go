package framework

import "strings"

// EventResource is the kind of object a cluster event is about.
type EventResource string

// The resources the scheduler watches.
const (
	// AssignedPod is a pod bound to a node.
	AssignedPod EventResource = "AssignedPod"
	// UnscheduledPod is a pod not bound yet (another pending pod).
	UnscheduledPod EventResource = "UnscheduledPod"
	Node           EventResource = "Node"
	Namespace      EventResource = "Namespace"
	// WildCard matches every resource.
	WildCard EventResource = "*"
)

// ActionType is what happened; values combine as a bit mask.
type ActionType uint64

// The actions. Update is split into the node and pod fields plugins care
// about, so that a node heartbeat moves no pod.
const (
	Add ActionType = 1 << iota
	Delete
	UpdateNodeAllocatable
	UpdateNodeLabel
	UpdateNodeTaint
	UpdateNodeCondition
	UpdateNodeAnnotation
	UpdatePodLabel
	UpdatePodScaleDown
	UpdatePodToleration

	// UpdateNode is any update of a node the scheduler cares about.
	UpdateNode = UpdateNodeAllocatable | UpdateNodeLabel | UpdateNodeTaint | UpdateNodeCondition | UpdateNodeAnnotation
	// UpdatePod is any update of a pod the scheduler cares about.
	UpdatePod = UpdatePodLabel | UpdatePodScaleDown | UpdatePodToleration
	// Update is any update.
	Update = UpdateNode | UpdatePod
	// All is every action.
	All ActionType = 1<<iota - 1
)

var actionNames = []struct {
	a    ActionType
	name string
}{
	{Add, "Add"}, {Delete, "Delete"}, {UpdateNodeAllocatable, "UpdateNodeAllocatable"},
	{UpdateNodeLabel, "UpdateNodeLabel"}, {UpdateNodeTaint, "UpdateNodeTaint"},
	{UpdateNodeCondition, "UpdateNodeCondition"}, {UpdateNodeAnnotation, "UpdateNodeAnnotation"},
	{UpdatePodLabel, "UpdatePodLabel"}, {UpdatePodScaleDown, "UpdatePodScaleDown"},
	{UpdatePodToleration, "UpdatePodToleration"},
}

// String lists the set bits.
func (a ActionType) String() string {
	if a == All {
		return "All"
	}
	var parts []string
	for _, n := range actionNames {
		if a&n.a != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, "|")
}

// ClusterEvent is a change in the cluster that may make pending pods
// schedulable.
type ClusterEvent struct {
	Resource   EventResource
	ActionType ActionType
	// Label names the event in metrics and logs.
	Label string
}

// Match reports whether an incoming event is covered by the registered
// event e.
func (e ClusterEvent) Match(incoming ClusterEvent) bool {
	return (e.Resource == WildCard || e.Resource == incoming.Resource) && e.ActionType&incoming.ActionType != 0
}

// Events the scheduler's informers generate.
var (
	EventAssignedPodAdd       = ClusterEvent{Resource: AssignedPod, ActionType: Add, Label: "AssignedPodAdd"}
	EventAssignedPodDelete    = ClusterEvent{Resource: AssignedPod, ActionType: Delete, Label: "AssignedPodDelete"}
	EventNodeAdd              = ClusterEvent{Resource: Node, ActionType: Add, Label: "NodeAdd"}
	EventUnschedulableTimeout = ClusterEvent{Resource: WildCard, ActionType: All, Label: "UnschedulableTimeout"}
	EventForceActivate        = ClusterEvent{Resource: WildCard, ActionType: All, Label: "ForceActivate"}
)
