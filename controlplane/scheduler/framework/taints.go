package framework

import (
	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
)

// TolerationsTolerateTaint reports whether any toleration tolerates the
// taint. The Lt/Gt comparison operators are disabled, as in upstream where
// they are an alpha feature.
func TolerationsTolerateTaint(tolerations []v1.Toleration, taint *v1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(logr.Discard(), taint, false) {
			return true
		}
	}
	return false
}

// DoNotScheduleTaint reports whether a taint keeps new pods off a node:
// NoSchedule or NoExecute.
func DoNotScheduleTaint(t *v1.Taint) bool {
	return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
}

// FindMatchingUntoleratedTaint returns the first taint accepted by filter
// (all taints when filter is nil) that the tolerations do not tolerate.
func FindMatchingUntoleratedTaint(taints []v1.Taint, tolerations []v1.Toleration, filter func(*v1.Taint) bool) (v1.Taint, bool) {
	for i := range taints {
		t := &taints[i]
		if filter != nil && !filter(t) {
			continue
		}
		if !TolerationsTolerateTaint(tolerations, t) {
			return *t, true
		}
	}
	return v1.Taint{}, false
}
