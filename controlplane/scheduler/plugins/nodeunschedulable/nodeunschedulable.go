// Package nodeunschedulable is the NodeUnschedulable plugin: nodes with
// spec.unschedulable (cordoned) take only pods that tolerate the
// node.kubernetes.io/unschedulable:NoSchedule taint.
package nodeunschedulable

import (
	"context"
	"log/slog"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const (
	// Name is the plugin's name.
	Name = "NodeUnschedulable"
	// ErrReasonUnschedulable is the rejection reason.
	ErrReasonUnschedulable = "node(s) were unschedulable"
)

// NodeUnschedulable filters cordoned nodes.
type NodeUnschedulable struct{}

var (
	_ framework.FilterPlugin      = (*NodeUnschedulable)(nil)
	_ framework.EnqueueExtensions = (*NodeUnschedulable)(nil)
)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &NodeUnschedulable{}, nil
}

// Name implements framework.Plugin.
func (*NodeUnschedulable) Name() string { return Name }

func fits(pod *v1.Pod, node *v1.Node) bool {
	return !node.Spec.Unschedulable || toleratesUnschedulable(pod)
}

func toleratesUnschedulable(pod *v1.Pod) bool {
	t := v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}
	return framework.TolerationsTolerateTaint(pod.Spec.Tolerations, &t)
}

// EventsToRegister implements framework.EnqueueExtensions: a node that is
// added schedulable, or uncordoned, may help.
func (*NodeUnschedulable) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{{
		Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeTaint},
		QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
			n, ok := newObj.(*v1.Node)
			if !ok || !fits(pod, n) {
				return framework.QueueSkip, nil
			}
			if old, ok := oldObj.(*v1.Node); ok && fits(pod, old) {
				return framework.QueueSkip, nil
			}
			return framework.Queue, nil
		},
	}}
}

// Filter implements framework.FilterPlugin.
func (*NodeUnschedulable) Filter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	if nodeInfo.Unschedulable() && !toleratesUnschedulable(pod) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonUnschedulable)
	}
	return nil
}
