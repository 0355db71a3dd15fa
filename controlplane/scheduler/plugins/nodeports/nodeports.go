// Package nodeports is the NodePorts plugin: a pod whose containers bind
// host ports fits only nodes where those ports are free.
package nodeports

import (
	"context"
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const (
	// Name is the plugin's name.
	Name = "NodePorts"
	// ErrReason is the rejection reason.
	ErrReason = "node(s) didn't have free ports for the requested pod ports"

	preFilterStateKey framework.StateKey = "PreFilter" + Name
)

// NodePorts filters nodes by free host ports.
type NodePorts struct{}

var (
	_ framework.PreFilterPlugin   = (*NodePorts)(nil)
	_ framework.FilterPlugin      = (*NodePorts)(nil)
	_ framework.EnqueueExtensions = (*NodePorts)(nil)
)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &NodePorts{}, nil
}

// Name implements framework.Plugin.
func (*NodePorts) Name() string { return Name }

type preFilterState []v1.ContainerPort

func (s preFilterState) Clone() framework.StateData { return s }

// hostPorts returns the host ports of the pod's containers and sidecars.
func hostPorts(pod *v1.Pod) []v1.ContainerPort {
	var ports []v1.ContainerPort
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			continue
		}
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// PreFilter implements framework.PreFilterPlugin; pods without host ports
// skip the Filter.
func (*NodePorts) PreFilter(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	ports := hostPorts(pod)
	if len(ports) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterStateKey, preFilterState(ports))
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (*NodePorts) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter implements framework.FilterPlugin.
func (*NodePorts) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	var ports []v1.ContainerPort
	if d, err := state.Read(preFilterStateKey); err == nil {
		s, ok := d.(preFilterState)
		if !ok {
			return framework.AsStatus(fmt.Errorf("%+v convert to nodeports.preFilterState error", d))
		}
		ports = s
	} else {
		ports = hostPorts(pod)
	}
	if !fitsPorts(ports, nodeInfo.UsedPorts) {
		return framework.NewStatus(framework.Unschedulable, ErrReason)
	}
	return nil
}

func fitsPorts(want []v1.ContainerPort, inUse framework.HostPortInfo) bool {
	for _, p := range want {
		if inUse.CheckConflict(p.HostIP, string(p.Protocol), p.HostPort) {
			return false
		}
	}
	return true
}

// Fits reports whether the pod's host ports are free on the node.
func Fits(pod *v1.Pod, nodeInfo *framework.NodeInfo) bool {
	return fitsPorts(hostPorts(pod), nodeInfo.UsedPorts)
}

// EventsToRegister implements framework.EnqueueExtensions: a deleted pod
// that held one of the ports, or a new node.
func (*NodePorts) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{
		{
			Event: framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Delete},
			QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, oldObj, _ any) (framework.QueueingHint, error) {
				deleted, ok := oldObj.(*v1.Pod)
				if !ok {
					return framework.Queue, nil
				}
				mine := hostPorts(pod)
				for _, p := range hostPorts(deleted) {
					for _, q := range mine {
						if p.HostPort == q.HostPort && p.Protocol == q.Protocol {
							return framework.Queue, nil
						}
					}
				}
				return framework.QueueSkip, nil
			},
		},
		{Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add}},
	}
}
