package hollownode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startCluster(t *testing.T, client kubernetes.Interface, n int) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), Config{Client: client, Count: n, RenewInterval: 20 * time.Millisecond, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func TestRegistersNodesAndLeases(t *testing.T) {
	client := fake.NewClientset()
	c := startCluster(t, client, 4)
	ctx := context.Background()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 4 {
		t.Fatalf("got %d nodes, want 4", len(nodes.Items))
	}
	cidrs := map[string]bool{}
	for _, n := range nodes.Items {
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			t.Errorf("node %s: got not Ready, want Ready", n.Name)
		}
		if n.Labels[corev1.LabelHostname] != n.Name || n.Labels[corev1.LabelTopologyZone] == "" {
			t.Errorf("node %s: got labels %v, want hostname and zone", n.Name, n.Labels)
		}
		if n.Status.Allocatable.Pods().Value() != 110 || n.Status.Allocatable.Cpu().String() != "4" {
			t.Errorf("node %s: got allocatable %v, want 4 cpus and 110 pods", n.Name, n.Status.Allocatable)
		}
		if cidrs[n.Spec.PodCIDR] {
			t.Errorf("node %s: got podCIDR %s twice", n.Name, n.Spec.PodCIDR)
		}
		cidrs[n.Spec.PodCIDR] = true
		lease, err := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("lease of %s: %v", n.Name, err)
		}
		if *lease.Spec.HolderIdentity != n.Name || *lease.Spec.LeaseDurationSeconds != 40 {
			t.Errorf("lease %s: got holder %s duration %d, want %s 40", n.Name, *lease.Spec.HolderIdentity, *lease.Spec.LeaseDurationSeconds, n.Name)
		}
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); len(nodes.Items) != 0 {
		t.Errorf("got %d nodes after Delete, want 0", len(nodes.Items))
	}
}

func TestStopNodeStopsRenewing(t *testing.T) {
	client := fake.NewClientset()
	c := startCluster(t, client, 2)
	ctx := context.Background()
	renewTime := func(name string) time.Time {
		l, err := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Spec.RenewTime.Time
	}
	alive, dead := c.Nodes()[0], c.Nodes()[1]
	if err := c.StopNode(dead); err != nil {
		t.Fatal(err)
	}
	// Let any renewal already under way finish: wait for the live node to
	// renew twice, then take the dead node's time.
	for range 2 {
		before := renewTime(alive)
		waitFor(t, "a renewal", func() (bool, error) { return renewTime(alive).After(before), nil })
	}
	deadAt := renewTime(dead)
	for range 3 {
		before := renewTime(alive)
		waitFor(t, "a renewal", func() (bool, error) { return renewTime(alive).After(before), nil })
	}
	if got := renewTime(dead); !got.Equal(deadAt) {
		t.Errorf("got the stopped node's lease renewed at %v, want it left at %v", got, deadAt)
	}
	if err := c.StopNode("nope"); err == nil {
		t.Errorf("got no error stopping an unknown node, want one")
	}
}

func TestPodLifecycle(t *testing.T) {
	client := fake.NewClientset()
	c := startCluster(t, client, 2)
	ctx := context.Background()
	node := c.Nodes()[1]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p"},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	waitFor(t, "the pod to run", func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return p.Status.Phase == corev1.PodRunning && isReady(p), nil
	})
	cidr, _ := c.PodCIDR(node)
	ip, err := netip.ParseAddr(got.Status.PodIP)
	if err != nil || !cidr.Contains(ip) {
		t.Errorf("got pod IP %q, want one in %s", got.Status.PodIP, cidr)
	}
	if got.Status.StartTime == nil || len(got.Status.ContainerStatuses) != 1 || !got.Status.ContainerStatuses[0].Ready {
		t.Errorf("got status %+v, want a start time and one ready container", got.Status)
	}
	// Graceful deletion as the API server starts it: the agent finishes it.
	now := metav1.Now()
	grace := int64(0)
	got.DeletionTimestamp = &now
	got.DeletionGracePeriodSeconds = &grace
	if _, err := client.CoreV1().Pods("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod to be removed", func() (bool, error) {
		_, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// nodeAddresses returns every node's podCIDR and InternalIP.
func nodeAddresses(t *testing.T, client kubernetes.Interface) (cidrs, ips map[string]string) {
	t.Helper()
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cidrs, ips = map[string]string{}, map[string]string{}
	for _, n := range nodes.Items {
		cidrs[n.Name] = n.Spec.PodCIDR
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ips[n.Name] = a.Address
			}
		}
	}
	return cidrs, ips
}

// Two sets of hollow nodes in one cluster (two `skiff hollow-nodes`
// processes with different prefixes) must not share pod CIDRs or node
// addresses: pods on different nodes would get the same IP.
func TestSecondClusterGetsFreeAddresses(t *testing.T) {
	client := fake.NewClientset()
	a, err := Start(t.Context(), Config{Client: client, Count: 3, Prefix: "a-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	b, err := Start(t.Context(), Config{Client: client, Count: 2, Prefix: "b-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	cidrs, ips := nodeAddresses(t, client)
	if len(cidrs) != 5 {
		t.Fatalf("got %d nodes, want 5", len(cidrs))
	}
	byCIDR, byIP := map[string]string{}, map[string]string{}
	for name, cidr := range cidrs {
		if other, ok := byCIDR[cidr]; ok {
			t.Errorf("got podCIDR %s on %s and %s, want one node each", cidr, other, name)
		}
		byCIDR[cidr] = name
		if got, _ := b.PodCIDR(name); got.IsValid() && got.String() != cidr {
			t.Errorf("node %s: got agent pod CIDR %s, want the node's %s", name, got, cidr)
		}
	}
	for name, ip := range ips {
		if other, ok := byIP[ip]; ok {
			t.Errorf("got InternalIP %s on %s and %s, want one node each", ip, other, name)
		}
		byIP[ip] = name
	}
	// Restarting the second set keeps its nodes' addresses.
	b.Stop()
	b2, err := Start(t.Context(), Config{Client: client, Count: 2, Prefix: "b-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Stop)
	cidrs2, ips2 := nodeAddresses(t, client)
	for _, name := range b2.Nodes() {
		if cidrs2[name] != cidrs[name] || ips2[name] != ips[name] {
			t.Errorf("node %s after a restart: got %s %s, want %s %s", name, cidrs2[name], ips2[name], cidrs[name], ips[name])
		}
	}
}

// A node that already exists with a podCIDR (given by the node IPAM
// controller, or by an earlier run) keeps it: the agent hands out pod IPs
// from the node's podCIDR, as a kubelet does.
func TestAdoptsExistingPodCIDR(t *testing.T) {
	client := fake.NewClientset()
	ctx := context.Background()
	existing := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "hollow-node-0"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.7.0/24", PodCIDRs: []string{"10.244.7.0/24"}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, existing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, client, 1)
	if got, _ := c.PodCIDR("hollow-node-0"); got.String() != "10.244.7.0/24" {
		t.Errorf("got pod CIDR %s, want the node's 10.244.7.0/24", got)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p"},
		Spec:       corev1.PodSpec{NodeName: "hollow-node-0", Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod to run", func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase != corev1.PodRunning {
			return false, nil
		}
		if p.Status.PodIP != "10.244.7.2" {
			t.Errorf("got pod IP %s, want 10.244.7.2 from the node's podCIDR", p.Status.PodIP)
		}
		return true, nil
	})
}
