// Package plugins registers the in-tree scheduler plugins and defines the
// default profile, with upstream's plugin order and score weights. Each
// plugin lives in its own package below this one.
package plugins

import (
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/balancedallocation"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/defaultbinder"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/interpodaffinity"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/nodeaffinity"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/nodename"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/nodeports"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/noderesourcesfit"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/podtopologyspread"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/queuesort"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/schedulinggates"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/tainttoleration"
)

// NewInTreeRegistry returns the factories of all in-tree plugins.
func NewInTreeRegistry() runtime.Registry {
	return runtime.Registry{
		schedulinggates.Name:    schedulinggates.New,
		queuesort.Name:          queuesort.New,
		nodename.Name:           nodename.New,
		nodeunschedulable.Name:  nodeunschedulable.New,
		tainttoleration.Name:    tainttoleration.New,
		nodeaffinity.Name:       nodeaffinity.New,
		nodeports.Name:          nodeports.New,
		noderesourcesfit.Name:   noderesourcesfit.New,
		podtopologyspread.Name:  podtopologyspread.New,
		interpodaffinity.Name:   interpodaffinity.New,
		balancedallocation.Name: balancedallocation.New,
		defaultbinder.Name:      defaultbinder.New,
	}
}

// DefaultProfile is upstream's default profile without the volume,
// dynamic-resource, image-locality and preemption plugins, which Skiff does
// not have: the same order and the same weights (TaintToleration 3,
// NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit
// 1, NodeResourcesBalancedAllocation 1).
func DefaultProfile() runtime.Profile {
	return runtime.Profile{
		SchedulerName: v1.DefaultSchedulerName,
		Plugins: []runtime.PluginConfig{
			{Name: schedulinggates.Name},
			{Name: queuesort.Name},
			{Name: nodename.Name},
			{Name: nodeunschedulable.Name},
			{Name: tainttoleration.Name, Weight: 3},
			{Name: nodeaffinity.Name, Weight: 2},
			{Name: nodeports.Name},
			{Name: noderesourcesfit.Name, Weight: 1},
			{Name: podtopologyspread.Name, Weight: 2},
			{Name: interpodaffinity.Name, Weight: 2},
			{Name: balancedallocation.Name, Weight: 1},
			{Name: defaultbinder.Name},
		},
	}
}
