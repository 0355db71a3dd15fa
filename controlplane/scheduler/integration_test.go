package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func startRealScheduler(t *testing.T, srv *apiservertest.Server) {
	t.Helper()
	cfg := srv.RESTConfig()
	cfg.QPS, cfg.Burst = 5000, 5000
	s, err := New(Config{
		RESTConfig:     cfg,
		Log:            st.TestLogger(t),
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("new scheduler: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		if err := s.Stop(); err != nil {
			t.Errorf("stop scheduler: %v", err)
		}
	})
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start scheduler: %v", err)
	}
}

func createNode(t *testing.T, c kubernetes.Interface, name, cpu string) {
	t.Helper()
	n := st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{"cpu": cpu, "memory": "16Gi", "pods": "110"}).Obj()
	if _, err := c.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}

func listPods(t *testing.T, c kubernetes.Interface) []v1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return l.Items
}

func scheduledCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// TestIntegrationBurstNeverOvercommits creates more pods at once than the
// nodes hold, against a real API server: the pods that fit are bound
// without any node going over its allocatable cpu, the rest get the
// unschedulable condition, and they are bound once a node is added.
func TestIntegrationBurstNeverOvercommits(t *testing.T) {
	srv := apiservertest.Start(t)
	c := srv.Client()
	for i := range 3 {
		createNode(t, c, fmt.Sprintf("node-%d", i), "1")
	}
	startRealScheduler(t, srv)

	const pods = 12 // 3 of 300m fit on each 1-cpu node: 9 fit.
	for i := range pods {
		p := st.MakePod().Name(fmt.Sprintf("burst-%02d", i)).Req(map[v1.ResourceName]string{"cpu": "300m"}).Obj()
		p.UID = ""
		if _, err := c.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
	}

	const want = "0/3 nodes are available: 3 Insufficient cpu."
	var items []v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		items = listPods(t, c)
		bound, failed := 0, 0
		for i := range items {
			if items[i].Spec.NodeName != "" {
				bound++
			} else if cond := scheduledCondition(&items[i]); cond != nil && cond.Status == v1.ConditionFalse && cond.Message == want {
				failed++
			}
		}
		return bound == 9 && failed == 3, nil
	})
	if err != nil {
		for _, p := range items {
			t.Logf("pod %s node %q condition %+v", p.Name, p.Spec.NodeName, scheduledCondition(&p))
		}
		t.Fatalf("waiting for 9 bound and 3 unschedulable pods: %v", err)
	}
	perNode := map[string]int64{}
	for i := range items {
		if n := items[i].Spec.NodeName; n != "" {
			q := items[i].Spec.Containers[0].Resources.Requests[v1.ResourceCPU]
			perNode[n] += q.MilliValue()
		}
	}
	capacity := resource.MustParse("1")
	for n, m := range perNode {
		if m > capacity.MilliValue() {
			t.Errorf("node %s: got %dm cpu requested, want at most 1000m", n, m)
		}
	}

	// A new node makes room: the three waiting pods are bound.
	createNode(t, c, "node-3", "1")
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		for _, p := range listPods(t, c) {
			if p.Spec.NodeName == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for all pods to be bound after adding a node: %v", err)
	}
}

// TestIntegrationEvents checks the Scheduled and FailedScheduling events.
func TestIntegrationEvents(t *testing.T) {
	srv := apiservertest.Start(t)
	c := srv.Client()
	createNode(t, c, "node-0", "1")
	startRealScheduler(t, srv)
	for _, p := range []*v1.Pod{
		st.MakePod().Name("fits").Req(map[v1.ResourceName]string{"cpu": "100m"}).Obj(),
		st.MakePod().Name("too-big").Req(map[v1.ResourceName]string{"cpu": "4"}).Obj(),
	} {
		p.UID = ""
		if _, err := c.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
	}
	want := map[string]string{
		"fits":    "Scheduled Successfully assigned default/fits to node-0",
		"too-big": "FailedScheduling 0/1 nodes are available: 1 Insufficient cpu.",
	}
	found := map[string]bool{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, e := range eventsFor(ctx, c) {
			for pod, w := range want {
				if e == pod+" "+w {
					found[pod] = true
				}
			}
		}
		return len(found) == len(want), nil
	})
	if err != nil {
		t.Fatalf("waiting for events %v: got %v: %v", want, eventsFor(context.Background(), c), err)
	}
}

// eventsFor lists "<pod> <reason> <note>" from events.k8s.io/v1, or core/v1
// when the server does not serve it.
func eventsFor(ctx context.Context, c kubernetes.Interface) []string {
	var out []string
	if l, err := c.EventsV1().Events("default").List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range l.Items {
			out = append(out, e.Regarding.Name+" "+e.Reason+" "+e.Note)
		}
	}
	if l, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range l.Items {
			out = append(out, e.InvolvedObject.Name+" "+e.Reason+" "+e.Message)
		}
	}
	return out
}
