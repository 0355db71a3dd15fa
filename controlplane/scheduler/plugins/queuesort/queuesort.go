// Package queuesort is the PrioritySort plugin: pods with a higher priority
// are scheduled first, and among equal priorities the one queued first.
package queuesort

import (
	"context"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "PrioritySort"

// PrioritySort orders the active queue.
type PrioritySort struct{}

var _ framework.QueueSortPlugin = (*PrioritySort)(nil)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &PrioritySort{}, nil
}

// Name implements framework.Plugin.
func (*PrioritySort) Name() string { return Name }

// Less implements framework.QueueSortPlugin.
func (*PrioritySort) Less(a, b *framework.QueuedPodInfo) bool {
	p1, p2 := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
	return p1 > p2 || (p1 == p2 && a.Timestamp.Before(b.Timestamp))
}
