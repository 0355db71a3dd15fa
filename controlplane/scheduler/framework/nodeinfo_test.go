package framework

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestNodeInfoKeepsSchedulingFields checks that the node fields a NodeInfo
// keeps for Filter follow the node through SetNode, Clone and RemoveNode.
func TestNodeInfoKeepsSchedulingFields(t *testing.T) {
	taint := v1.Taint{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}
	check := func(step string, ni *NodeInfo, unschedulable bool, taints []v1.Taint) {
		t.Helper()
		if ni.Unschedulable() != unschedulable || !reflect.DeepEqual(ni.Taints(), taints) {
			t.Errorf("%s: got unschedulable %v taints %v, want %v %v", step, ni.Unschedulable(), ni.Taints(), unschedulable, taints)
		}
	}
	ni := NewNodeInfo()
	check("without a node", ni, false, nil)
	cordoned := &v1.Node{Spec: v1.NodeSpec{Unschedulable: true, Taints: []v1.Taint{taint}}}
	ni.SetNode(cordoned)
	check("cordoned and tainted", ni, true, []v1.Taint{taint})
	clone := ni.Clone()
	check("clone", clone, true, []v1.Taint{taint})
	ni.SetNode(&v1.Node{})
	check("uncordoned and untainted", ni, false, nil)
	check("clone after the original changed", clone, true, []v1.Taint{taint})
	clone.RemoveNode()
	check("removed", clone, false, nil)
}
