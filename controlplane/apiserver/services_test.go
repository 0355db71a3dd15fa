package apiserver_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/storage"
)

func nodePortService(name, ip string, nodePort int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, ClusterIP: ip,
		Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}
}

// causeField returns the field of an Invalid error's first cause.
func causeField(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil && len(st.Status().Details.Causes) > 0 {
		return st.Status().Details.Causes[0].Field
	}
	return ""
}

func TestServiceAllocation(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.WithServiceCIDR("10.100.0.0/24"), apiservertest.WithNodePortRange(31000, 100))
	ctx := testCtx(t)
	svcs := srv.Client().CoreV1().Services("default")
	_, cidr, _ := net.ParseCIDR("10.100.0.0/24")

	k, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.100.0.1" {
		t.Fatalf("kubernetes service: got %v %v, want ClusterIP 10.100.0.1", k, err)
	}
	a, err := svcs.Create(ctx, nodePortService("a", "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(a.Spec.ClusterIP)
	np := a.Spec.Ports[0].NodePort
	if ip == nil || !cidr.Contains(ip) || a.Spec.ClusterIP == "10.100.0.1" || len(a.Spec.ClusterIPs) != 1 {
		t.Errorf("allocated ClusterIP: got %q (%v), want one in %s other than .1", a.Spec.ClusterIP, a.Spec.ClusterIPs, cidr)
	}
	if np < 31000 || np >= 31100 {
		t.Errorf("allocated NodePort: got %d, want in 31000-31099", np)
	}
	tests := []struct {
		name      string
		svc       *corev1.Service
		wantField string
	}{
		{"taken IP", nodePortService("b", a.Spec.ClusterIP, 0), "spec.clusterIPs[0]"},
		{"IP outside the range", nodePortService("b", "10.200.0.5", 0), "spec.clusterIPs[0]"},
		{"taken port", nodePortService("b", "", np), "spec.ports[0].nodePort"},
		{"port outside the range", nodePortService("b", "", 30000), "spec.ports[0].nodePort"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svcs.Create(ctx, tc.svc, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || causeField(err) != tc.wantField {
				t.Fatalf("got %v (field %q), want 422 on %s", err, causeField(err), tc.wantField)
			}
			if _, err := svcs.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("rejected service: got %v, want nothing stored", err)
			}
		})
	}
	// Requested values that are free are honoured.
	b, err := svcs.Create(ctx, nodePortService("b", "10.100.0.77", 31077), metav1.CreateOptions{})
	if err != nil || b.Spec.ClusterIP != "10.100.0.77" || b.Spec.Ports[0].NodePort != 31077 {
		t.Fatalf("requested free values: got %v %v, want 10.100.0.77 and 31077", b, err)
	}
	// Switching to ClusterIP releases the NodePort.
	b.Spec.Type = corev1.ServiceTypeClusterIP
	b.Spec.Ports[0].NodePort = 0
	if b, err = svcs.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("type change: %v", err)
	}
	if _, err := svcs.Create(ctx, nodePortService("c", "", 31077), metav1.CreateOptions{}); err != nil {
		t.Fatalf("port released by the type change: %v", err)
	}
	// Updates that leave the allocated values out keep them.
	a.Spec.ClusterIP, a.Spec.ClusterIPs, a.Spec.Ports[0].NodePort = "", nil, 0
	a.Labels = map[string]string{"x": "y"}
	if a, err = svcs.Update(ctx, a, metav1.UpdateOptions{}); err != nil || a.Spec.ClusterIP != ip.String() || a.Spec.Ports[0].NodePort != np {
		t.Fatalf("update without the allocated values: got %v %v, want %s and %d kept", a, err, ip, np)
	}
	// Deleting releases; the values survive a restart until then.
	srv.Restart(t)
	svcs = srv.Client().CoreV1().Services("default")
	if _, err := svcs.Create(ctx, nodePortService("d", ip.String(), 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("taken IP after restart: got %v, want 422", err)
	}
	if err := svcs.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, nodePortService("d", ip.String(), np), metav1.CreateOptions{}); err != nil {
		t.Fatalf("IP and port released by delete: %v", err)
	}
}

// TestTwoServersNeverShareAnAllocation races two servers on one etcd for
// a small range: every service gets a different IP and port, and when the
// range is exhausted the rest fail without storing anything.
func TestTwoServersNeverShareAnAllocation(t *testing.T) {
	opts := []apiservertest.Option{apiservertest.WithServiceCIDR("10.101.0.0/27"), apiservertest.WithNodePortRange(32000, 40)}
	first := apiservertest.Start(t, opts...)
	second := apiservertest.Start(t, append(opts, apiservertest.WithSharedEtcd(first))...)
	ctx := testCtx(t)
	clients := []kubernetes.Interface{first.Client(), second.Client()}
	const perServer = 20 // 40 services for 29 free IPs (32 - network, broadcast, the kubernetes one)
	var mu sync.Mutex
	var created []*corev1.Service
	var failed int
	var wg sync.WaitGroup
	for i, c := range clients {
		for j := range perServer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := c.CoreV1().Services("default").Create(ctx, nodePortService(fmt.Sprintf("s%d-%d", i, j), "", 0), metav1.CreateOptions{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if !apierrors.IsInternalError(err) {
						t.Errorf("create: got %v, want success or a full range", err)
					}
					failed++
					return
				}
				created = append(created, s)
			}()
		}
	}
	wg.Wait()
	ips, ports := map[string]string{}, map[int32]string{}
	for _, s := range created {
		if prev, dup := ips[s.Spec.ClusterIP]; dup {
			t.Errorf("ClusterIP %s given to %s and %s", s.Spec.ClusterIP, prev, s.Name)
		}
		ips[s.Spec.ClusterIP] = s.Name
		np := s.Spec.Ports[0].NodePort
		if prev, dup := ports[np]; dup {
			t.Errorf("NodePort %d given to %s and %s", np, prev, s.Name)
		}
		ports[np] = s.Name
	}
	if len(created) != 29 || failed != 11 {
		t.Errorf("got %d created and %d failed, want 29 and 11", len(created), failed)
	}
	list, err := first.Client().CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(created)+1 {
		t.Errorf("stored services: got %d, want %d (and kubernetes)", len(list.Items), len(created))
	}
}

// TestAllocationRepairRunsInTheServer: the repair loop runs with the
// server: a Service whose allocation keys were lost (as after an etcd
// restore) gets them back, with events kubectl shows, and a leaked key is
// released.
func TestAllocationRepairRunsInTheServer(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.WithRepairInterval(50*time.Millisecond))
	ctx := testCtx(t)
	cli, err := storage.NewClient(ctx, storage.ClientConfig{Endpoints: []string{srv.EtcdURL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	svcs := srv.Client().CoreV1().Services("default")
	svc, err := svcs.Create(ctx, nodePortService("lost", "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ipKey := "/registry/allocations/serviceips/" + svc.Spec.ClusterIP
	portKey := fmt.Sprintf("/registry/allocations/servicenodeports/tcp-%d", svc.Spec.Ports[0].NodePort)
	const leak = "/registry/allocations/serviceips/10.96.0.250"
	if _, err := cli.Txn(ctx).Then(clientv3.OpDelete(ipKey), clientv3.OpDelete(portKey), clientv3.OpPut(leak, "default/gone")).Commit(); err != nil {
		t.Fatal(err)
	}
	value := func(key string) string {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	deadline := time.Now().Add(30 * time.Second)
	for value(ipKey) != "default/lost" || value(portKey) != "default/lost" || value(leak) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("repair: got %s=%q %s=%q %s=%q, want the first two default/lost and the leak released",
				ipKey, value(ipKey), portKey, value(portKey), leak, value(leak))
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs, err := srv.Client().CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Service,involvedObject.name=lost"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, ev := range evs.Items {
		reasons[ev.Reason] = true
	}
	if !reasons["ClusterIPNotAllocated"] || !reasons["PortNotAllocated"] {
		t.Errorf("events about the Service: got %v, want ClusterIPNotAllocated and PortNotAllocated", reasons)
	}
}
