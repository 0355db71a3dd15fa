// Package pods answers the questions workload controllers ask about pods:
// is a pod active, ready, available after minReadySeconds, and when will it
// become available. The answers follow Kubernetes' pod utilities exactly, so
// that replica counts in status mean what kubectl users expect.
package pods

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// IsActive reports whether pod counts towards a controller's replicas: it
// has not finished and is not being deleted.
func IsActive(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded &&
		pod.Status.Phase != corev1.PodFailed &&
		pod.DeletionTimestamp == nil
}

// IsTerminating reports whether pod is being deleted but has not finished.
func IsTerminating(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil &&
		pod.Status.Phase != corev1.PodSucceeded &&
		pod.Status.Phase != corev1.PodFailed
}

// ReadyCondition returns pod's Ready condition, or nil.
func ReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// IsReady reports whether pod's Ready condition is True.
func IsReady(pod *corev1.Pod) bool {
	c := ReadyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsAvailable reports whether pod has been ready for at least
// minReadySeconds at now.
func IsAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := ReadyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	d := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(d).Before(now)
}

// NextAvailabilityCheck returns how long until the first of pods that is
// ready but not yet available becomes available, or false when none is
// waiting for minReadySeconds.
func NextAvailabilityCheck(pods []*corev1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	if minReadySeconds == 0 {
		return 0, false
	}
	var (
		found bool
		min   time.Duration
	)
	for _, p := range pods {
		c := ReadyCondition(p)
		if c == nil || c.Status != corev1.ConditionTrue || IsAvailable(p, minReadySeconds, now) {
			continue
		}
		d := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
		// Wake just after the instant: IsAvailable wants strictly after.
		d += time.Millisecond
		if d < 0 {
			d = 0
		}
		if !found || d < min {
			min, found = d, true
		}
	}
	return min, found
}

// Key returns "namespace/name", the key expectations track pods by.
func Key(pod *corev1.Pod) string {
	return pod.Namespace + "/" + pod.Name
}
