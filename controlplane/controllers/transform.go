package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trimForCache is the shared informers' transform: it drops what no
// controller reads before an object enters the cache, as kube-controller-
// manager does with managedFields. With 10,000 pods in the cache this is a
// large part of the controller manager's heap.
//
// Controllers write back only what they own: status updates (the server
// keeps the stored spec) and patches; an update of an object without
// managedFields keeps the stored ones, so nothing dropped here is lost.
// Pod templates (ReplicaSets, Deployments) are kept whole: the Deployment
// controller compares and copies them.
func trimForCache(obj any) (any, error) {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		a.GetObjectMeta().SetManagedFields(nil)
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		// Kept: labels, owners, node, tolerations, container ports (named
		// target ports for EndpointSlices), resources, status.
		pod.Spec.Volumes = nil
		trimContainers(pod.Spec.InitContainers)
		trimContainers(pod.Spec.Containers)
		pod.Spec.EphemeralContainers = nil
	}
	return obj, nil
}

func trimContainers(cs []corev1.Container) {
	for i := range cs {
		c := &cs[i]
		c.Command, c.Args, c.Env, c.EnvFrom, c.VolumeMounts, c.VolumeDevices = nil, nil, nil, nil, nil, nil
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
	}
}
