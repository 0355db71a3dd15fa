package framework

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

const (
	// DefaultMilliCPURequest is the CPU request that scoring assumes for a
	// container that requests none (0.1 core), as upstream does.
	DefaultMilliCPURequest int64 = 100
	// DefaultMemoryRequest is the memory request that scoring assumes for a
	// container that requests none (200 MB).
	DefaultMemoryRequest int64 = 200 * 1024 * 1024
	// MaxNodeScore is the highest score a Score plugin gives after
	// normalisation.
	MaxNodeScore int64 = 100
	// MinNodeScore is the lowest.
	MinNodeScore int64 = 0
)

// Resource is an amount of the resources the scheduler accounts for: CPU in
// millicores, memory and ephemeral storage in bytes, a pod count, and
// scalar resources (extended resources, hugepages) by name.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// AllowedPodNumber is the "pods" resource: how many pods a node takes.
	AllowedPodNumber int
	ScalarResources  map[v1.ResourceName]int64
}

// NewResource converts a ResourceList.
func NewResource(rl v1.ResourceList) Resource {
	var r Resource
	r.Add(rl)
	return r
}

// Add adds the quantities in rl.
func (r *Resource) Add(rl v1.ResourceList) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case v1.ResourceMemory:
			r.Memory += q.Value()
		case v1.ResourcePods:
			r.AllowedPodNumber += int(q.Value())
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		default:
			if IsScalarResourceName(name) {
				r.AddScalar(name, q.Value())
			}
		}
	}
}

// AddScalar adds quantity of the scalar resource name.
func (r *Resource) AddScalar(name v1.ResourceName, quantity int64) {
	if r.ScalarResources == nil {
		r.ScalarResources = make(map[v1.ResourceName]int64, 1)
	}
	r.ScalarResources[name] += quantity
}

// addResource adds sign times o to r.
func (r *Resource) addResource(o *Resource, sign int64) {
	r.MilliCPU += sign * o.MilliCPU
	r.Memory += sign * o.Memory
	r.EphemeralStorage += sign * o.EphemeralStorage
	for name, q := range o.ScalarResources {
		r.AddScalar(name, sign*q)
	}
}

// Clone returns a deep copy.
func (r Resource) Clone() Resource {
	out := r
	if r.ScalarResources != nil {
		out.ScalarResources = make(map[v1.ResourceName]int64, len(r.ScalarResources))
		for k, v := range r.ScalarResources {
			out.ScalarResources[k] = v
		}
	}
	return out
}

// IsZero reports whether no resource is requested.
func (r *Resource) IsZero() bool {
	if r.MilliCPU != 0 || r.Memory != 0 || r.EphemeralStorage != 0 {
		return false
	}
	for _, q := range r.ScalarResources {
		if q != 0 {
			return false
		}
	}
	return true
}

// IsScalarResourceName reports whether name is accounted as a scalar
// resource: an extended resource (a domain-prefixed name outside
// kubernetes.io), hugepages, a kubernetes.io-prefixed native resource, or an
// attachable-volumes count.
func IsScalarResourceName(name v1.ResourceName) bool {
	s := string(name)
	return isExtendedResourceName(s) ||
		strings.HasPrefix(s, v1.ResourceHugePagesPrefix) ||
		(strings.Contains(s, "/") && strings.HasPrefix(s, v1.ResourceDefaultNamespacePrefix)) ||
		strings.HasPrefix(s, v1.ResourceAttachableVolumesPrefix)
}

// IsExtendedResourceName reports whether name is an extended resource: it
// has a domain prefix other than kubernetes.io and is not a quota name.
func IsExtendedResourceName(name v1.ResourceName) bool {
	return isExtendedResourceName(string(name))
}

func isExtendedResourceName(s string) bool {
	if !strings.Contains(s, "/") || strings.HasPrefix(s, v1.ResourceDefaultNamespacePrefix) {
		return false
	}
	return !strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix)
}

// ComputePodRequests computes what a pod requests as upstream's
// NodeResourcesFit counts it: the larger of the sum of the regular (and sidecar) containers
// and the largest init container, pod-level requests when set, plus the
// pod overhead. nonZero are the CPU and memory requests with defaults
// filled in for containers that request none, which scoring uses.
func ComputePodRequests(pod *v1.Pod) (req Resource, nonZeroCPU, nonZeroMem int64) {
	if !onlyContainerRequests(pod) {
		return podRequests(pod)
	}
	// The common case, added up directly: upstream's helper builds several
	// ResourceLists per call (about 10 KB of garbage), and this runs for
	// every pod the scheduler queues or caches.
	for i := range pod.Spec.Containers {
		rl := pod.Spec.Containers[i].Resources.Requests
		req.Add(rl)
		if q, ok := rl[v1.ResourceCPU]; ok {
			nonZeroCPU += q.MilliValue()
		} else {
			nonZeroCPU += DefaultMilliCPURequest
		}
		if q, ok := rl[v1.ResourceMemory]; ok {
			nonZeroMem += q.Value()
		} else {
			nonZeroMem += DefaultMemoryRequest
		}
	}
	return req, nonZeroCPU, nonZeroMem
}

// onlyContainerRequests reports whether pod's requests are the plain sum
// of its containers' requests: no init containers, overhead or pod-level
// resources, and no container status that reports resources (an in-place
// resize, which the helper takes into account).
func onlyContainerRequests(pod *v1.Pod) bool {
	if len(pod.Spec.InitContainers) > 0 || pod.Spec.Overhead != nil || pod.Spec.Resources != nil {
		return false
	}
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Resources != nil {
			return false
		}
	}
	return true
}

// podRequests is ComputePodRequests for any pod, with upstream's helper.
func podRequests(pod *v1.Pod) (req Resource, nonZeroCPU, nonZeroMem int64) {
	opts := resourcehelper.PodResourcesOptions{UseStatusResources: true}
	reqs := resourcehelper.PodRequests(pod, opts)
	req = NewResource(reqs)

	podLevel := resourcehelper.IsPodLevelRequestsSet(pod)
	var nonMissing v1.ResourceList
	if !podLevel {
		nonMissing = v1.ResourceList{
			v1.ResourceCPU:    *resource.NewMilliQuantity(DefaultMilliCPURequest, resource.DecimalSI),
			v1.ResourceMemory: *resource.NewQuantity(DefaultMemoryRequest, resource.DecimalSI),
		}
	} else {
		nonMissing = v1.ResourceList{}
		if _, ok := reqs[v1.ResourceCPU]; !ok {
			nonMissing[v1.ResourceCPU] = *resource.NewMilliQuantity(DefaultMilliCPURequest, resource.DecimalSI)
		}
		if _, ok := reqs[v1.ResourceMemory]; !ok {
			nonMissing[v1.ResourceMemory] = *resource.NewQuantity(DefaultMemoryRequest, resource.DecimalSI)
		}
	}
	non0 := reqs
	if len(nonMissing) > 0 {
		opts.NonMissingContainerRequests = nonMissing
		non0 = resourcehelper.PodRequests(pod, opts)
	}
	cpu := non0[v1.ResourceCPU]
	mem := non0[v1.ResourceMemory]
	return req, cpu.MilliValue(), mem.Value()
}
