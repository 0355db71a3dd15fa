package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimForCache(t *testing.T) {
	container := corev1.Container{
		Name: "app", Image: "app:1", Args: []string{"--v=2"},
		Env:            []corev1.EnvVar{{Name: "A", Value: "b"}},
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{},
	}
	meta := metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "x"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	pod := &corev1.Pod{ObjectMeta: meta, Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{container},
		Volumes: []corev1.Volume{{Name: "v"}}}}
	if _, err := trimForCache(pod); err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if pod.ManagedFields != nil || pod.Spec.Volumes != nil || c.Args != nil || c.Env != nil || c.ReadinessProbe != nil {
		t.Errorf("pod not trimmed: %+v", pod)
	}
	if pod.Labels["app"] != "x" || pod.Spec.NodeName != "n1" || c.Image != "app:1" || len(c.Ports) != 1 || c.Ports[0].Name != "http" {
		t.Errorf("pod lost what controllers read: %+v", pod)
	}

	rs := &appsv1.ReplicaSet{ObjectMeta: *meta.DeepCopy(), Spec: appsv1.ReplicaSetSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{container}}}}}
	if _, err := trimForCache(rs); err != nil {
		t.Fatal(err)
	}
	if rs.ManagedFields != nil {
		t.Error("replicaset keeps managedFields")
	}
	if tc := rs.Spec.Template.Spec.Containers[0]; len(tc.Env) != 1 || len(tc.Args) != 1 || tc.ReadinessProbe == nil {
		t.Errorf("pod template trimmed: %+v", tc)
	}
}
