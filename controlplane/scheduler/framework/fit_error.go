package framework

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// NodeToStatus records why nodes were rejected: a status per evaluated node
// and one status for the nodes not evaluated at all (because a PreFilter
// result excluded them or rejected the pod).
type NodeToStatus struct {
	nodeToStatus map[string]*Status
	absent       *Status
}

// NewNodeToStatus returns a map whose absent nodes are
// UnschedulableAndUnresolvable, as upstream's default.
func NewNodeToStatus() *NodeToStatus {
	return &NodeToStatus{
		nodeToStatus: make(map[string]*Status),
		absent:       NewStatus(UnschedulableAndUnresolvable),
	}
}

// Set records the status of a node.
func (m *NodeToStatus) Set(node string, s *Status) { m.nodeToStatus[node] = s }

// Get returns the status of a node, the absent status when it was not
// evaluated.
func (m *NodeToStatus) Get(node string) *Status {
	if s, ok := m.nodeToStatus[node]; ok {
		return s
	}
	return m.absent
}

// SetAbsentNodesStatus sets the status of the nodes not evaluated.
func (m *NodeToStatus) SetAbsentNodesStatus(s *Status) { m.absent = s }

// AbsentNodesStatus returns it.
func (m *NodeToStatus) AbsentNodesStatus() *Status { return m.absent }

// Len is the number of evaluated nodes with a status.
func (m *NodeToStatus) Len() int { return len(m.nodeToStatus) }

// ForEachExplicitNode calls fn for each evaluated node.
func (m *NodeToStatus) ForEachExplicitNode(fn func(node string, s *Status)) {
	for n, s := range m.nodeToStatus {
		fn(n, s)
	}
}

// Diagnosis explains why a pod fits nowhere.
type Diagnosis struct {
	NodeToStatus *NodeToStatus
	// UnschedulablePlugins are the plugins that rejected the pod.
	UnschedulablePlugins sets.Set[string]
	// PreFilterMsg is the message of a PreFilter rejection.
	PreFilterMsg string
	// PostFilterMsg is the message of the PostFilter (preemption) plugins.
	PostFilterMsg string
}

// AddPluginStatus records the plugin of a rejection.
func (d *Diagnosis) AddPluginStatus(s *Status) {
	if s.Plugin() == "" || !s.IsRejected() {
		return
	}
	if d.UnschedulablePlugins == nil {
		d.UnschedulablePlugins = sets.New[string]()
	}
	d.UnschedulablePlugins.Insert(s.Plugin())
}

// NoNodeAvailableMsg starts the message of a FitError.
const NoNodeAvailableMsg = "0/%v nodes are available"

// FitError is the error of a pod that fits no node.
type FitError struct {
	Pod         *v1.Pod
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error gives the message in the form kubectl users know:
// "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were
// unschedulable." followed by the PostFilter message, if any.
func (f *FitError) Error() string {
	msg := fmt.Sprintf(NoNodeAvailableMsg+":", f.NumAllNodes)
	if f.Diagnosis.PreFilterMsg != "" {
		// A PreFilter rejection applies to all nodes alike; the per-node
		// statuses would only repeat it.
		msg += fmt.Sprintf(" %v.", f.Diagnosis.PreFilterMsg)
	} else {
		reasons := make(map[string]int)
		f.Diagnosis.NodeToStatus.ForEachExplicitNode(func(_ string, s *Status) {
			for _, r := range s.Reasons() {
				reasons[r]++
			}
		})
		if n := f.Diagnosis.NodeToStatus.Len(); n < f.NumAllNodes {
			for _, r := range f.Diagnosis.NodeToStatus.AbsentNodesStatus().Reasons() {
				reasons[r] += f.NumAllNodes - n
			}
		}
		parts := make([]string, 0, len(reasons))
		for r, n := range reasons {
			parts = append(parts, fmt.Sprintf("%v %v", n, r))
		}
		sort.Strings(parts)
		if len(parts) > 0 {
			msg += fmt.Sprintf(" %v.", strings.Join(parts, ", "))
		}
	}
	if f.Diagnosis.PostFilterMsg != "" {
		msg += " " + f.Diagnosis.PostFilterMsg
	}
	return msg
}
