package cloud_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/cloud"
	"github.com/skiff-project/skiff/controlplane/controllers"
)

func startManager(t *testing.T, srv *apiservertest.Server, pool []string) func() {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := controllers.NewManager(controllers.Config{
		RESTConfig:  srv.RESTConfig(),
		Logger:      log,
		Controllers: []string{cloud.Name},
		Options:     controllers.Options{Network: controllers.NetworkOptions{LoadBalancerIPPools: pool}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := m.Stop(); err != nil {
			t.Errorf("stop controller manager: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lbService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

func ingressIPs(client kubernetes.Interface, ns, name string) ([]string, error) {
	s, err := client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out, nil
}

func hasIPs(t *testing.T, client kubernetes.Interface, ns, name string, want ...string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s to have %v", name, want), func() (bool, string) {
		got, err := ingressIPs(client, ns, name)
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

func hasEvent(t *testing.T, client kubernetes.Interface, ns, object, reason, message string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("event %s on %s", reason, object), func() (bool, string) {
		evs, err := client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			seen = append(seen, e.InvolvedObject.Name+":"+e.Reason)
			if e.InvolvedObject.Name == object && e.Reason == reason && strings.Contains(e.Message, message) {
				return true, ""
			}
		}
		return false, fmt.Sprint(seen)
	})
}

// TestIntegrationLoadBalancerAddresses allocates, exhausts, releases (on
// delete through the finalizer, and on a type change) and recovers after a
// controller restart, against a real API server.
func TestIntegrationLoadBalancerAddresses(t *testing.T) {
	srv := apiservertest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	pool := []string{"192.0.2.10-192.0.2.11"}
	stop := startManager(t, srv, pool)
	nsObj, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lb-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	create := func(name string) {
		t.Helper()
		if _, err := client.CoreV1().Services(ns).Create(ctx, lbService(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	create("a")
	hasIPs(t, client, ns, "a", "192.0.2.10")
	a, err := client.CoreV1().Services(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.Finalizers, cloud.Finalizer) {
		t.Errorf("got finalizers %v, want %s", a.Finalizers, cloud.Finalizer)
	}
	if m := a.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("got ipMode %v, want VIP", m)
	}
	hasEvent(t, client, ns, "a", "EnsuredLoadBalancer", "Ensured load balancer")

	create("b")
	hasIPs(t, client, ns, "b", "192.0.2.11")
	create("c")
	hasEvent(t, client, ns, "c", "AllocationFailed", "no available IPs")
	if got, _ := ingressIPs(client, ns, "c"); len(got) != 0 {
		t.Errorf("got %v for c with the pool exhausted, want pending", got)
	}

	// Deleting a waits for the release (finalizer), then c gets its address.
	if err := client.CoreV1().Services(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a gone", func() (bool, string) {
		_, err := client.CoreV1().Services(ns).Get(ctx, "a", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	hasIPs(t, client, ns, "c", "192.0.2.10")

	// b stops being a LoadBalancer: its address is released.
	b, err := client.CoreV1().Services(ns).Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.Type = corev1.ServiceTypeClusterIP
	b.Spec.AllocateLoadBalancerNodePorts = nil
	for i := range b.Spec.Ports {
		b.Spec.Ports[i].NodePort = 0
	}
	if _, err := client.CoreV1().Services(ns).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	hasIPs(t, client, ns, "b")
	waitUntil(t, "b's finalizer removed", func() (bool, string) {
		b, err := client.CoreV1().Services(ns).Get(ctx, "b", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return !slices.Contains(b.Finalizers, cloud.Finalizer), fmt.Sprint(b.Finalizers)
	})

	// A restarted controller recovers c's address from its status: d gets
	// the free one, e waits.
	stop()
	create("d")
	startManager(t, srv, pool)
	hasIPs(t, client, ns, "d", "192.0.2.11")
	create("e")
	hasEvent(t, client, ns, "e", "AllocationFailed", "no available IPs")
	hasIPs(t, client, ns, "c", "192.0.2.10")
}
