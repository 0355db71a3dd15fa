package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/controlplane/controllers"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in         string
		base, size int
		ok         bool
	}{
		{"30000-32767", 30000, 2768, true},
		{"1-1", 1, 1, true},
		{"32767-30000", 0, 0, false},
		{"30000", 0, 0, false},
		{"0-10", 0, 0, false},
		{"a-b", 0, 0, false},
	}
	for _, tc := range tests {
		base, size, err := parsePortRange(tc.in)
		if (err == nil) != tc.ok || base != tc.base || size != tc.size {
			t.Errorf("parsePortRange(%q): got %d %d %v, want %d %d ok=%v", tc.in, base, size, err, tc.base, tc.size, tc.ok)
		}
	}
}

// TestServeStartsAndStopsOnCancel runs the whole server (embedded etcd,
// API server, and the scheduler and controller manager under leader
// election) on free ports, uses the kubeconfig it writes, checks that the
// in-process components act on what a client creates, and stops it by
// cancelling the context, as SIGTERM does.
func TestServeStartsAndStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	_, cidr, _ := net.ParseCIDR("10.96.0.0/12")
	opts := Options{
		DataDir: dir, EtcdClientURL: "http://127.0.0.1:0", EtcdPeerURL: "http://127.0.0.1:0",
		BindAddress: "127.0.0.1", SecurePort: 0, ServiceCIDR: cidr, NodePortBase: 30000, NodePortSize: 2768,
		DefaultNotReadyTolerationSeconds: 300, DefaultUnreachableTolerationSeconds: 300,
		ControlPlane: ControlPlaneOptions{
			LeaderElect: true,
			Network:     controllers.NetworkOptions{LoadBalancerIPPools: []string{"192.0.2.10-192.0.2.11"}},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, opts, slog.New(slog.NewTextHandler(testWriter{t}, nil))) }()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	var c kubernetes.Interface
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			if c, err = kubernetes.NewForConfig(cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err == nil {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("server not serving after a minute")
		}
	}
	checkControlPlane(ctx, t, c)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: got %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s")
	}
}

// checkControlPlane checks that the scheduler, the controller manager and
// the cloud controller run in the server: each holds its Lease, a
// Deployment gets a ReplicaSet and pods, the scheduler reports the pods
// unschedulable (there are no nodes), and a LoadBalancer Service gets an
// address from the pool.
func checkControlPlane(ctx context.Context, t *testing.T, c kubernetes.Interface) {
	t.Helper()
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leases held", func() (bool, error) {
		for _, name := range []string{schedulerLease, controllerManagerLease} {
			l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
				return false, nil
			}
		}
		return true, nil
	})
	waitFor(t, "two unschedulable pods of the deployment", func() (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		unschedulable := 0
		for _, p := range pods.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
					unschedulable++
				}
			}
		}
		return unschedulable == 2, nil
	})
	waitFor(t, "load balancer address from the pool", func() (bool, error) {
		s, err := c.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ing := s.Status.LoadBalancer.Ingress
		if len(ing) == 0 {
			return false, nil
		}
		if ing[0].IP != "192.0.2.10" && ing[0].IP != "192.0.2.11" {
			return false, fmt.Errorf("got ingress IP %s, want one from 192.0.2.10-192.0.2.11", ing[0].IP)
		}
		return true, nil
	})
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after a minute", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUnknownControllerFailsInit(t *testing.T) {
	cp := &controlPlane{opts: ControlPlaneOptions{Controllers: []string{"*", "no-such-controller"}}}
	err := cp.Init(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no-such-controller") {
		t.Fatalf("got %v, want an error naming the unknown controller", err)
	}
}
