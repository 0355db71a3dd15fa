package framework

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
)

// NodeInfo is a node with the pods the scheduler places on it and their
// aggregated requests and host ports.
//
// The cache owns one NodeInfo per node and changes it under its lock; the
// scheduling cycle reads a snapshot copy that nobody changes while it runs.
type NodeInfo struct {
	node *v1.Node
	// unschedulable and taints are the node's spec.unschedulable and
	// spec.taints, copied by SetNode. Filter plugins read them for every
	// node they consider, thousands per pod; by then the NodeInfo is in
	// the CPU cache and the Node, a separate allocation, mostly is not.
	unschedulable bool
	taints        []v1.Taint

	// Pods are all pods on the node, assumed ones included.
	Pods []*PodInfo
	// PodsWithAffinity are the pods with pod affinity or anti-affinity.
	PodsWithAffinity []*PodInfo
	// PodsWithRequiredAntiAffinity are the pods with required
	// anti-affinity terms.
	PodsWithRequiredAntiAffinity []*PodInfo
	// PodsWithScoringAffinity are the pods whose terms score incoming pods
	// (required affinity, preferred affinity or anti-affinity).
	PodsWithScoringAffinity []*PodInfo
	// NonHostnameAntiAffinityPods counts the pods with a required
	// anti-affinity term whose topology key is not the hostname.
	NonHostnameAntiAffinityPods int

	// UsedPorts are the host ports taken by the pods.
	UsedPorts HostPortInfo
	// Requested is the sum of the pods' requests.
	Requested Resource
	// NonZeroRequested is the sum with defaults for empty requests, used
	// for scoring.
	NonZeroRequested Resource
	// Allocatable is the node's allocatable resources.
	Allocatable Resource

	// Generation changes whenever the NodeInfo changes; snapshots copy
	// only the NodeInfos whose generation moved.
	Generation int64
	// Index is the NodeInfo's position in its snapshot's List, or -1.
	// Plugins index per-node state kept across cycles by it.
	Index int32
}

// NewNodeInfo returns a NodeInfo holding pods and no node.
func NewNodeInfo(pods ...*v1.Pod) *NodeInfo {
	ni := &NodeInfo{UsedPorts: make(HostPortInfo), Index: -1}
	for _, p := range pods {
		ni.AddPodInfo(NewPodInfo(p))
	}
	return ni
}

// Node returns the node, or nil when the node was deleted while pods remain.
func (n *NodeInfo) Node() *v1.Node {
	if n == nil {
		return nil
	}
	return n.node
}

// Unschedulable is the node's spec.unschedulable (false without a node).
func (n *NodeInfo) Unschedulable() bool { return n.unschedulable }

// Taints are the node's spec.taints (none without a node). Callers must
// not change them.
func (n *NodeInfo) Taints() []v1.Taint { return n.taints }

// SetNode sets the node object and its allocatable resources.
func (n *NodeInfo) SetNode(node *v1.Node) {
	n.node = node
	n.unschedulable = node.Spec.Unschedulable
	n.taints = node.Spec.Taints
	n.Allocatable = NewResource(node.Status.Allocatable)
}

// RemoveNode clears the node object, keeping the pods.
func (n *NodeInfo) RemoveNode() {
	n.node = nil
	n.unschedulable, n.taints = false, nil
}

// AddPodInfo adds a pod to the node.
func (n *NodeInfo) AddPodInfo(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if pi.HasAffinity() {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if pi.HasRequiredAntiAffinity() {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
		if pi.HasNonHostnameRequiredAntiAffinity() {
			n.NonHostnameAntiAffinityPods++
		}
	}
	if pi.HasScoringAffinity() {
		n.PodsWithScoringAffinity = append(n.PodsWithScoringAffinity, pi)
	}
	n.update(pi, 1)
}

// RemovePod removes the pod with pod's key from the node.
func (n *NodeInfo) RemovePod(pod *v1.Pod) error {
	key := PodKey(pod)
	var removed *PodInfo
	n.Pods, removed = removePodInfo(n.Pods, key)
	if removed == nil {
		nodeName := ""
		if n.node != nil {
			nodeName = n.node.Name
		}
		return fmt.Errorf("no pod %s/%s on node %q", pod.Namespace, pod.Name, nodeName)
	}
	if removed.HasAffinity() {
		n.PodsWithAffinity, _ = removePodInfo(n.PodsWithAffinity, key)
	}
	if removed.HasRequiredAntiAffinity() {
		n.PodsWithRequiredAntiAffinity, _ = removePodInfo(n.PodsWithRequiredAntiAffinity, key)
		if removed.HasNonHostnameRequiredAntiAffinity() {
			n.NonHostnameAntiAffinityPods--
		}
	}
	if removed.HasScoringAffinity() {
		n.PodsWithScoringAffinity, _ = removePodInfo(n.PodsWithScoringAffinity, key)
	}
	n.update(removed, -1)
	return nil
}

func removePodInfo(s []*PodInfo, key string) ([]*PodInfo, *PodInfo) {
	for i, pi := range s {
		if PodKey(pi.Pod) == key {
			last := len(s) - 1
			s[i] = s[last]
			s[last] = nil
			s = s[:last]
			if len(s) == 0 {
				s = nil
			}
			return s, pi
		}
	}
	return s, nil
}

func (n *NodeInfo) update(pi *PodInfo, sign int64) {
	n.Requested.addResource(&pi.Requests, sign)
	n.NonZeroRequested.MilliCPU += sign * pi.NonZeroCPU
	n.NonZeroRequested.Memory += sign * pi.NonZeroMemory
	if n.UsedPorts == nil {
		n.UsedPorts = make(HostPortInfo)
	}
	for _, p := range pi.HostPorts {
		if sign > 0 {
			n.UsedPorts.Add(p.HostIP, string(p.Protocol), p.HostPort)
		} else {
			n.UsedPorts.Remove(p.HostIP, string(p.Protocol), p.HostPort)
		}
	}
}

// Clone returns a copy that shares the immutable PodInfos and node but none
// of the slices or maps.
func (n *NodeInfo) Clone() *NodeInfo {
	out := &NodeInfo{
		node:                        n.node,
		unschedulable:               n.unschedulable,
		taints:                      n.taints,
		UsedPorts:                   n.UsedPorts.clone(),
		Requested:                   n.Requested.Clone(),
		NonZeroRequested:            n.NonZeroRequested.Clone(),
		Allocatable:                 n.Allocatable.Clone(),
		Generation:                  n.Generation,
		Index:                       n.Index,
		NonHostnameAntiAffinityPods: n.NonHostnameAntiAffinityPods,
	}
	out.Pods = clonePodInfos(n.Pods)
	out.PodsWithAffinity = clonePodInfos(n.PodsWithAffinity)
	out.PodsWithRequiredAntiAffinity = clonePodInfos(n.PodsWithRequiredAntiAffinity)
	out.PodsWithScoringAffinity = clonePodInfos(n.PodsWithScoringAffinity)
	return out
}

func clonePodInfos(s []*PodInfo) []*PodInfo {
	if len(s) == 0 {
		return nil
	}
	return append(make([]*PodInfo, 0, len(s)), s...)
}

// String is for logs.
func (n *NodeInfo) String() string {
	name := "<nil>"
	if n.node != nil {
		name = n.node.Name
	}
	return fmt.Sprintf("NodeInfo{%s pods=%d requested=%dm/%d}", name, len(n.Pods), n.Requested.MilliCPU, n.Requested.Memory)
}
