// Package tainttoleration is the TaintToleration plugin: a node's NoSchedule
// and NoExecute taints keep off pods that do not tolerate them, and nodes
// with fewer untolerated PreferNoSchedule taints score higher.
package tainttoleration

import (
	"context"
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/normalize"
)

// Name is the plugin's name.
const Name = "TaintToleration"

const preScoreStateKey framework.StateKey = "PreScore" + Name

// TaintToleration filters and scores nodes by taints.
type TaintToleration struct{}

var (
	_ framework.FilterPlugin      = (*TaintToleration)(nil)
	_ framework.PreScorePlugin    = (*TaintToleration)(nil)
	_ framework.ScorePlugin       = (*TaintToleration)(nil)
	_ framework.ScoreExtensions   = (*TaintToleration)(nil)
	_ framework.EnqueueExtensions = (*TaintToleration)(nil)
)

// New builds the plugin.
func New(context.Context, any, framework.Handle) (framework.Plugin, error) {
	return &TaintToleration{}, nil
}

// Name implements framework.Plugin.
func (*TaintToleration) Name() string { return Name }

// ErrReason is the rejection reason for an untolerated taint, in the form
// kubectl users know: "node(s) had untolerated taint {key: value}".
func ErrReason(t v1.Taint) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
}

// Filter implements framework.FilterPlugin.
func (*TaintToleration) Filter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	taint, untolerated := framework.FindMatchingUntoleratedTaint(nodeInfo.Taints(), pod.Spec.Tolerations, framework.DoNotScheduleTaint)
	if !untolerated {
		return nil
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason(taint))
}

type preScoreState struct {
	tolerationsPreferNoSchedule []v1.Toleration
}

func (s *preScoreState) Clone() framework.StateData { return s }

// PreScore implements framework.PreScorePlugin.
func (*TaintToleration) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	var tolerations []v1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == v1.TaintEffectPreferNoSchedule {
			tolerations = append(tolerations, t)
		}
	}
	state.Write(preScoreStateKey, &preScoreState{tolerationsPreferNoSchedule: tolerations})
	return nil
}

// Score implements framework.ScorePlugin: the number of PreferNoSchedule
// taints the pod does not tolerate (reversed by NormalizeScore).
func (*TaintToleration) Score(_ context.Context, state *framework.CycleState, _ *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	d, err := state.Read(preScoreStateKey)
	if err != nil {
		return 0, framework.AsStatus(fmt.Errorf("read prescore state: %w", err))
	}
	s, ok := d.(*preScoreState)
	if !ok {
		return 0, framework.AsStatus(fmt.Errorf("%+v convert to tainttoleration.preScoreState error", d))
	}
	var n int64
	taints := nodeInfo.Taints()
	for i := range taints {
		if taints[i].Effect != v1.TaintEffectPreferNoSchedule {
			continue
		}
		if !framework.TolerationsTolerateTaint(s.tolerationsPreferNoSchedule, &taints[i]) {
			n++
		}
	}
	return n, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (pl *TaintToleration) ScoreExtensions() framework.ScoreExtensions { return pl }

// NormalizeScore implements framework.ScoreExtensions: fewer untolerated
// taints score higher.
func (*TaintToleration) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	normalize.Scores(framework.MaxNodeScore, true, scores)
	return nil
}

// EventsToRegister implements framework.EnqueueExtensions: a node added or
// whose taints changed so that the pod now tolerates them.
func (*TaintToleration) EventsToRegister() []framework.ClusterEventWithHint {
	return []framework.ClusterEventWithHint{{
		Event: framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeTaint},
		QueueingHintFn: func(_ *slog.Logger, pod *v1.Pod, oldObj, newObj any) (framework.QueueingHint, error) {
			n, ok := newObj.(*v1.Node)
			if !ok {
				return framework.Queue, nil
			}
			wasUntolerated := true
			if old, ok := oldObj.(*v1.Node); ok {
				_, wasUntolerated = framework.FindMatchingUntoleratedTaint(old.Spec.Taints, pod.Spec.Tolerations, framework.DoNotScheduleTaint)
			}
			_, isUntolerated := framework.FindMatchingUntoleratedTaint(n.Spec.Taints, pod.Spec.Tolerations, framework.DoNotScheduleTaint)
			if wasUntolerated && !isUntolerated {
				return framework.Queue, nil
			}
			return framework.QueueSkip, nil
		},
	}}
}
