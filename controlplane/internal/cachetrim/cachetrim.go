// Package cachetrim drops from objects, before an informer caches them,
// the fields that the control plane's components never read. The
// scheduler and the controller manager each cache every pod in the
// cluster; with 10,000 pods the managed fields, environments and probes
// they would otherwise keep are a large part of their heaps.
//
// Components write back only what they own (status updates, where the
// server keeps the stored spec, and patches), and an update of an object
// without managedFields keeps the stored ones, so nothing dropped here is
// lost on the server.
package cachetrim

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagedFields drops obj's managedFields, as kube-controller-manager and
// kube-scheduler do for their caches.
func ManagedFields(obj any) {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		a.GetObjectMeta().SetManagedFields(nil)
	}
}

// Pod drops the pod's volumes and ephemeral containers and, of its
// containers, the commands, arguments, environment, mounts, probes and
// lifecycle hooks. Kept: metadata, images, ports (named target ports),
// resources, node, tolerations, affinity, status.
func Pod(p *corev1.Pod) {
	p.Spec.Volumes = nil
	containers(p.Spec.InitContainers)
	containers(p.Spec.Containers)
	p.Spec.EphemeralContainers = nil
}

func containers(cs []corev1.Container) {
	for i := range cs {
		c := &cs[i]
		c.Command, c.Args, c.Env, c.EnvFrom, c.VolumeMounts, c.VolumeDevices = nil, nil, nil, nil, nil, nil
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
	}
}
