package controllers

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/internal/cachetrim"
)

// trimForCache is the shared informers' transform: it drops what no
// controller reads before an object enters the cache (package cachetrim).
// Pod templates (ReplicaSets, Deployments) are kept whole: the Deployment
// controller compares and copies them.
func trimForCache(obj any) (any, error) {
	cachetrim.ManagedFields(obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		cachetrim.Pod(pod)
	}
	return obj, nil
}
