// Package nodename is the NodeName plugin: a pod that names a node in
// spec.nodeName fits only that node.
package nodename

import (
	"context"
	"log/slog"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const (
	// Name is the plugin's name.
	Name = "NodeName"
	// ErrReason is the rejection reason.
	ErrReason = "node(s) didn't match the requested node name"
)

// NodeName filters on spec.nodeName.
type NodeName struct{}

var (
	_ framework.FilterPlugin      = (*NodeName)(nil)
	_ framework.EnqueueExtensions = (*NodeName)(nil)
)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &NodeName{}, nil
}

// Name implements framework.Plugin.
func (*NodeName) Name() string { return Name }

// EventsToRegister implements framework.EnqueueExtensions: only a new node
// (with the requested name) can help.
func (*NodeName) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{{
		Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add},
		QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, _, newObj any) (framework.QueueingHint, error) {
			if n, ok := newObj.(*v1.Node); ok && !Fits(pod, n) {
				return framework.QueueSkip, nil
			}
			return framework.Queue, nil
		},
	}}
}

// Filter implements framework.FilterPlugin.
func (*NodeName) Filter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	if !Fits(pod, nodeInfo.Node()) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
	}
	return nil
}

// Fits reports whether the pod may run on node.
func Fits(pod *v1.Pod, node *v1.Node) bool {
	return pod.Spec.NodeName == "" || pod.Spec.NodeName == node.Name
}
