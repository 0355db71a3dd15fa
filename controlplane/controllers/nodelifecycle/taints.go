package nodelifecycle

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Taints this controller manages: NoExecute node.kubernetes.io/not-ready
// (Ready=False) and node.kubernetes.io/unreachable (Ready=Unknown) drive
// eviction; the NoSchedule ones mirror the node's conditions for the
// scheduler (upstream's TaintNodesByCondition).

type conditionTaint struct {
	cond   corev1.NodeConditionType
	status corev1.ConditionStatus
	key    string
}

// conditionTaints maps a node condition and status to the NoSchedule taint
// it implies.
func conditionTaints() []conditionTaint {
	return []conditionTaint{
		{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
		{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
		{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
		{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
		{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
		{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
	}
}

// managed reports whether t is one of the taints this controller owns.
func managed(t corev1.Taint) bool {
	switch t.Effect {
	case corev1.TaintEffectNoExecute:
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	case corev1.TaintEffectNoSchedule:
		if t.Key == corev1.TaintNodeUnschedulable {
			return true
		}
		for _, ct := range conditionTaints() {
			if ct.key == t.Key {
				return true
			}
		}
	}
	return false
}

// noScheduleTaints are the NoSchedule taints node's conditions and
// spec.unschedulable call for.
func noScheduleTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, ct := range conditionTaints() {
		if c := condition(node, ct.cond); c != nil && c.Status == ct.status {
			out = append(out, corev1.Taint{Key: ct.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

// noExecuteTaint is the NoExecute taint the node's Ready condition calls for,
// or nil.
func noExecuteTaint(node *corev1.Node) *corev1.Taint {
	c := condition(node, corev1.NodeReady)
	if c == nil {
		return nil
	}
	switch c.Status {
	case corev1.ConditionFalse:
		return &corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
	case corev1.ConditionUnknown:
		return &corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	}
	return nil
}

// withTaints returns node's taints with the managed ones replaced by want;
// taints already present keep their timeAdded, new NoExecute taints get now.
// It reports whether anything changed.
func withTaints(current []corev1.Taint, want []corev1.Taint, now time.Time) ([]corev1.Taint, bool) {
	var out []corev1.Taint
	changed := false
	for _, t := range current {
		if managed(t) && !slices.ContainsFunc(want, func(w corev1.Taint) bool { return w.MatchTaint(&t) }) {
			changed = true
			continue
		}
		out = append(out, t)
	}
	for _, w := range want {
		if slices.ContainsFunc(out, func(t corev1.Taint) bool { return t.MatchTaint(&w) }) {
			continue
		}
		if w.Effect == corev1.TaintEffectNoExecute {
			ts := metav1.NewTime(now)
			w.TimeAdded = &ts
		}
		out = append(out, w)
		changed = true
	}
	return out, changed
}

func condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

func hasNoExecute(node *corev1.Node) bool {
	return slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute && managed(t)
	})
}
