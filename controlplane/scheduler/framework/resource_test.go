package framework

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestComputePodRequestsDirectSum: the direct sum for pods whose requests
// are their containers' gives what upstream's helper gives, for every kind
// of request (none, zero, CPU or memory alone, ephemeral storage,
// extended resources, hugepages, several containers).
func TestComputePodRequestsDirectSum(t *testing.T) {
	rl := func(kv ...string) v1.ResourceList {
		out := v1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			out[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return out
	}
	pod := func(reqs ...v1.ResourceList) *v1.Pod {
		p := &v1.Pod{}
		for _, r := range reqs {
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Resources: v1.ResourceRequirements{Requests: r, Limits: r.DeepCopy()}})
		}
		return p
	}
	tests := map[string]*v1.Pod{
		"no containers":        pod(),
		"no requests":          pod(nil),
		"cpu only":             pod(rl("cpu", "250m")),
		"memory only":          pod(rl("memory", "64Mi")),
		"zero requests":        pod(rl("cpu", "0", "memory", "0")),
		"both":                 pod(rl("cpu", "1", "memory", "1Gi")),
		"ephemeral storage":    pod(rl("cpu", "100m", "ephemeral-storage", "1Gi")),
		"extended resource":    pod(rl("cpu", "100m", "example.com/gpu", "2")),
		"hugepages":            pod(rl("memory", "1Gi", "hugepages-2Mi", "256Mi")),
		"several containers":   pod(rl("cpu", "100m"), nil, rl("memory", "500Mi", "example.com/gpu", "1"), rl("cpu", "1500m", "memory", "1")),
		"fractional and large": pod(rl("cpu", "1.5", "memory", "3.5Gi"), rl("cpu", "3m", "memory", "1e9")),
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			if !onlyContainerRequests(p) {
				t.Fatal("pod does not take the direct sum")
			}
			req, cpu, mem := ComputePodRequests(p)
			wreq, wcpu, wmem := podRequests(p)
			if !reflect.DeepEqual(req, wreq) || cpu != wcpu || mem != wmem {
				t.Errorf("got %+v, %d, %d; upstream's helper: %+v, %d, %d", req, cpu, mem, wreq, wcpu, wmem)
			}
		})
	}
}

// TestComputePodRequestsOtherPods: init containers, overhead, pod-level
// resources and resized containers go through upstream's helper.
func TestComputePodRequestsOtherPods(t *testing.T) {
	cpu := func(v string) v1.ResourceList { return v1.ResourceList{v1.ResourceCPU: resource.MustParse(v)} }
	base := func() *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: cpu("100m")}}}}}
	}
	init := base()
	init.Spec.InitContainers = []v1.Container{{Name: "i", Resources: v1.ResourceRequirements{Requests: cpu("2")}}}
	overhead := base()
	overhead.Spec.Overhead = cpu("50m")
	podLevel := base()
	podLevel.Spec.Resources = &v1.ResourceRequirements{Requests: cpu("1")}
	resized := base()
	resized.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "c", Resources: &v1.ResourceRequirements{Requests: cpu("300m")}}}
	for name, tc := range map[string]struct {
		pod      *v1.Pod
		milliCPU int64
	}{
		"init container larger than the containers": {init, 2000},
		"overhead":                        {overhead, 150},
		"pod-level requests":              {podLevel, 1000},
		"resized container (max of both)": {resized, 300},
	} {
		t.Run(name, func(t *testing.T) {
			if onlyContainerRequests(tc.pod) {
				t.Fatal("pod takes the direct sum")
			}
			if req, _, _ := ComputePodRequests(tc.pod); req.MilliCPU != tc.milliCPU {
				t.Errorf("got %d millicores, want %d", req.MilliCPU, tc.milliCPU)
			}
		})
	}
}

// BenchmarkComputePodRequests compares the direct sum with upstream's
// helper on a pod like the scheduler benchmark's (one container, CPU and
// memory requests and limits).
func BenchmarkComputePodRequests(b *testing.B) {
	r := v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("500Mi")}
	p := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{Requests: r, Limits: r.DeepCopy()}}}}}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ComputePodRequests(p)
		}
	})
	b.Run("helper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			podRequests(p)
		}
	})
}
