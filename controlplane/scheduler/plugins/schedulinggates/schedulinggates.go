// Package schedulinggates is the SchedulingGates plugin: a pod with
// spec.schedulingGates stays out of the active queue until they are removed.
package schedulinggates

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "SchedulingGates"

// SchedulingGates gates pods.
type SchedulingGates struct{}

var _ framework.PreEnqueuePlugin = (*SchedulingGates)(nil)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &SchedulingGates{}, nil
}

// Name implements framework.Plugin.
func (*SchedulingGates) Name() string { return Name }

// PreEnqueue implements framework.PreEnqueuePlugin.
func (*SchedulingGates) PreEnqueue(_ context.Context, pod *v1.Pod) *framework.Status {
	if len(pod.Spec.SchedulingGates) == 0 {
		return nil
	}
	gates := make([]string, 0, len(pod.Spec.SchedulingGates))
	for _, g := range pod.Spec.SchedulingGates {
		gates = append(gates, g.Name)
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for scheduling gates: %v", gates))
}
