package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func lbService(name string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.Now()},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			ClusterIP:  "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// events collects what a FakeRecorder saw.
type events struct {
	mu  sync.Mutex
	rec *record.FakeRecorder
	all []string
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		select {
		case ev := <-e.rec.Events:
			e.all = append(e.all, ev)
		default:
			return slices.Clone(e.all)
		}
	}
}

func (e *events) has(substr string) bool {
	return slices.ContainsFunc(e.list(), func(ev string) bool { return strings.Contains(ev, substr) })
}

func start(t *testing.T, client *fake.Clientset, pool []string, class string) (*events, func()) {
	t.Helper()
	ev := &events{rec: record.NewFakeRecorder(1000)}
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory, ev.rec, slog.New(slog.NewTextHandler(tWriter{t}, nil)), nil, Options{Pool: pool, Class: class})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx, 2); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			factory.Shutdown()
		})
	}
	t.Cleanup(stop)
	return ev, stop
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ips(t *testing.T, client *fake.Clientset, name string) []string {
	t.Helper()
	s, err := client.CoreV1().Services("ns").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func hasIPs(t *testing.T, client *fake.Clientset, name string, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := ips(t, client, name)
		return slices.Equal(got, want), fmt.Sprint(got)
	}
}

func TestAllocationAndRelease(t *testing.T) {
	client := fake.NewClientset(lbService("a"))
	ev, _ := start(t, client, []string{"192.0.2.10-192.0.2.11"}, "")
	ctx := context.Background()

	waitFor(t, "a's address", hasIPs(t, client, "a", "192.0.2.10"))
	a, _ := client.CoreV1().Services("ns").Get(ctx, "a", metav1.GetOptions{})
	if !slices.Contains(a.Finalizers, Finalizer) {
		t.Errorf("got finalizers %v, want %s", a.Finalizers, Finalizer)
	}
	if m := a.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("got ipMode %v, want VIP", m)
	}
	waitFor(t, "the ensure events", func() (bool, string) {
		return ev.has("Normal EnsuringLoadBalancer Ensuring load balancer") && ev.has("Normal EnsuredLoadBalancer Ensured load balancer"), fmt.Sprint(ev.list())
	})

	// b takes the last address; c finds the pool exhausted.
	for _, n := range []string{"b", "c"} {
		if _, err := client.CoreV1().Services("ns").Create(ctx, lbService(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if n == "b" {
			waitFor(t, "b's address", hasIPs(t, client, "b", "192.0.2.11"))
		}
	}
	waitFor(t, "c's AllocationFailed event", func() (bool, string) {
		return ev.has(`Warning AllocationFailed Failed to allocate IP for "ns/c": no available IPs`), fmt.Sprint(ev.list())
	})
	if got := ips(t, client, "c"); len(got) != 0 {
		t.Errorf("got %v for c with the pool exhausted, want pending", got)
	}

	// a stops being a LoadBalancer: its address goes to c.
	a, _ = client.CoreV1().Services("ns").Get(ctx, "a", metav1.GetOptions{})
	a.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := client.CoreV1().Services("ns").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a released and c served", func() (bool, string) {
		ga, gc := ips(t, client, "a"), ips(t, client, "c")
		return len(ga) == 0 && slices.Equal(gc, []string{"192.0.2.10"}), fmt.Sprint(ga, gc)
	})
	waitFor(t, "a's finalizer removed", func() (bool, string) {
		a, _ := client.CoreV1().Services("ns").Get(ctx, "a", metav1.GetOptions{})
		return !slices.Contains(a.Finalizers, Finalizer), fmt.Sprint(a.Finalizers)
	})

	// b is deleted: a, a LoadBalancer again, gets b's address.
	if err := client.CoreV1().Services("ns").Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ = client.CoreV1().Services("ns").Get(ctx, "a", metav1.GetOptions{})
	a.Spec.Type = corev1.ServiceTypeLoadBalancer
	if _, err := client.CoreV1().Services("ns").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a served again", hasIPs(t, client, "a", "192.0.2.11"))
}

func TestRequestedIPAndClasses(t *testing.T) {
	other := "example.com/other"
	client := fake.NewClientset(
		lbService("wants-12", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.12" }),
		lbService("wants-outside", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.1" }),
		lbService("other-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }),
		lbService("our-class", func(s *corev1.Service) { c := "skiff.io/lb"; s.Spec.LoadBalancerClass = &c }),
		lbService("dual", func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		}),
	)
	ev, _ := start(t, client, []string{"192.0.2.10-192.0.2.14", "2001:db8::10-2001:db8::11"}, "")
	waitFor(t, "the requested address", hasIPs(t, client, "wants-12", "192.0.2.12"))
	waitFor(t, "our class served", func() (bool, string) {
		got := ips(t, client, "our-class")
		return len(got) == 1 && got[0] != "192.0.2.12", fmt.Sprint(got)
	})
	waitFor(t, "dual stack in family order", func() (bool, string) {
		got := ips(t, client, "dual")
		return len(got) == 2 && got[0] == "2001:db8::10" && strings.HasPrefix(got[1], "192.0.2."), fmt.Sprint(got)
	})
	waitFor(t, "a failure for the address outside the pool", func() (bool, string) {
		return ev.has(`Warning AllocationFailed Failed to allocate IP for "ns/wants-outside"`), fmt.Sprint(ev.list())
	})
	if got := ips(t, client, "wants-outside"); len(got) != 0 {
		t.Errorf("got %v for a loadBalancerIP outside the pool, want none", got)
	}
	s, _ := client.CoreV1().Services("ns").Get(context.Background(), "other-class", metav1.GetOptions{})
	if len(s.Status.LoadBalancer.Ingress) != 0 || len(s.Finalizers) != 0 {
		t.Errorf("got status %v finalizers %v on another class's Service, want it untouched", s.Status.LoadBalancer.Ingress, s.Finalizers)
	}
}

func TestRecoveryAfterRestart(t *testing.T) {
	held := lbService("held", func(s *corev1.Service) {
		s.Finalizers = []string{Finalizer}
		s.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}
	})
	// A younger Service claims the same address (a stale or hand-made
	// status): it must get another one, the older keeps its own.
	dup := lbService("dup", func(s *corev1.Service) {
		s.Finalizers = []string{Finalizer}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}
	})
	objs := []runtime.Object{held, dup, lbService("new")}
	client := fake.NewClientset(objs...)
	_, stop := start(t, client, []string{"192.0.2.10-192.0.2.12"}, "")
	waitFor(t, "three distinct addresses", func() (bool, string) {
		h, d, n := ips(t, client, "held"), ips(t, client, "dup"), ips(t, client, "new")
		ok := slices.Equal(h, []string{"192.0.2.10"}) && len(d) == 1 && len(n) == 1 && d[0] != n[0] && d[0] != h[0] && n[0] != h[0]
		return ok, fmt.Sprint(h, d, n)
	})
	stop()

	// A second controller (a restart, or the next leader) sees the same
	// allocations and gives a new Service nothing that is held.
	if _, err := client.CoreV1().Services("ns").Create(context.Background(), lbService("late"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ := start(t, client, []string{"192.0.2.10-192.0.2.12"}, "")
	waitFor(t, "late pending", func() (bool, string) {
		return ev.has(`AllocationFailed Failed to allocate IP for "ns/late"`), fmt.Sprint(ev.list())
	})
	for _, n := range []string{"held", "dup", "new"} {
		if got := ips(t, client, n); len(got) != 1 {
			t.Errorf("got %v for %s after the restart, want its address kept", got, n)
		}
	}
}

func TestNewRejectsBadPool(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	if _, err := New(client, factory, nil, nil, nil, Options{Pool: []string{"not-an-ip"}}); err == nil {
		t.Error("got no error for a bad pool, want one")
	}
	if _, err := New(client, factory, nil, nil, nil, Options{}); err == nil {
		t.Error("got no error for an empty pool, want one")
	}
}
