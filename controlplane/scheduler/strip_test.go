package scheduler

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

// TestStripUnused: the informer transform keeps what plugins and event
// handlers read and drops the rest.
func TestStripUnused(t *testing.T) {
	n := st.MakeNode().Name("n1").Label("zone", "a").Capacity(map[v1.ResourceName]string{"cpu": "4", "pods": "110"}).Obj()
	n.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	n.Spec.Taints = []v1.Taint{{Key: "k", Effect: v1.TaintEffectNoSchedule}}
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.1"}}
	n.Status.NodeInfo.KubeletVersion = "v1.32.0"
	n.Status.Images = []v1.ContainerImage{{Names: []string{"pause"}}}
	alloc := n.Status.Allocatable.DeepCopy()
	if _, err := stripUnused(n); err != nil {
		t.Fatal(err)
	}
	if n.ManagedFields != nil || n.Status.Capacity != nil || n.Status.Addresses != nil || n.Status.Images != nil || n.Status.NodeInfo.KubeletVersion != "" {
		t.Errorf("node keeps dropped fields: %+v", n)
	}
	if n.Labels["zone"] != "a" || len(n.Spec.Taints) != 1 || len(n.Status.Conditions) != 1 || !n.Status.Allocatable.Cpu().Equal(*alloc.Cpu()) {
		t.Errorf("node lost fields plugins read: %+v", n)
	}

	p := st.MakePod().Name("p").Req(map[v1.ResourceName]string{"cpu": "100m"}).Obj()
	c := &p.Spec.Containers[0]
	c.Resources.Limits = v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m")}
	c.Env = []v1.EnvVar{{Name: "A", Value: "b"}}
	c.Ports = []v1.ContainerPort{{HostPort: 80, ContainerPort: 80}}
	p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}
	if _, err := stripUnused(p); err != nil {
		t.Fatal(err)
	}
	c = &p.Spec.Containers[0]
	if c.Resources.Limits != nil || p.Spec.InitContainers[0].Resources.Limits != nil || c.Env != nil {
		t.Errorf("pod keeps dropped fields: %+v", p.Spec)
	}
	if c.Resources.Requests.Cpu().MilliValue() != 100 || p.Spec.InitContainers[0].Resources.Requests.Cpu().MilliValue() != 1000 || len(c.Ports) != 1 {
		t.Errorf("pod lost fields plugins read: %+v", p.Spec)
	}
}
