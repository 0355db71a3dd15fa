package leaderelection_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/cloud"
	"github.com/skiff-project/skiff/controlplane/controllers"
	"github.com/skiff-project/skiff/controlplane/leaderelection"
)

// leaders counts the replicas doing leader work at once.
type leaders struct {
	mu      sync.Mutex
	now     int
	max     int
	current string
}

func (l *leaders) run(id string) leaderelection.RunFunc {
	return func(ctx context.Context) error {
		l.mu.Lock()
		l.now++
		l.max = max(l.max, l.now)
		l.current = id
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.now--
		if l.current == id {
			l.current = ""
		}
		l.mu.Unlock()
		return nil
	}
}

func (l *leaders) state() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current, l.max
}

const (
	leaseDuration = 3 * time.Second
	renewDeadline = 2 * time.Second
	retryPeriod   = 500 * time.Millisecond
	lbPool        = "198.51.100.10-198.51.100.12"
)

// replica is one `skiff server`: its own API server's client, and the
// controller manager (here only the service-lb controller) plus the shared
// counter run under leader election.
func replica(t *testing.T, srv *apiservertest.Server, id string, l *leaders) *leaderelection.Component {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", id)
	m, err := controllers.NewManager(controllers.Config{
		RESTConfig:  srv.RESTConfig(),
		Logger:      log,
		Controllers: []string{cloud.Name},
		Options:     controllers.Options{Network: controllers.NetworkOptions{LoadBalancerIPPools: []string{lbPool}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c := leaderelection.NewComponent("leader-"+id, leaderelection.Config{
		Client:        srv.Client(),
		Name:          "skiff-controllers",
		Identity:      id,
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Log:           log,
	}, l.run(id), m.Run)
	if err := c.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaseRecord(t *testing.T, client kubernetes.Interface) *coordinationv1.Lease {
	t.Helper()
	l, err := client.CoordinationV1().Leases(leaderelection.DefaultNamespace).Get(context.Background(), "skiff-controllers", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.RenewTime == nil || l.Spec.AcquireTime == nil {
		t.Fatalf("lease without renew or acquire time: %+v", l.Spec)
	}
	return l
}

func lease(t *testing.T, client kubernetes.Interface) (holder string, transitions int32) {
	t.Helper()
	l, err := client.CoordinationV1().Leases(leaderelection.DefaultNamespace).Get(context.Background(), "skiff-controllers", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return holder, transitions
}

func lbIP(client kubernetes.Interface, ns, name string) string {
	s, err := client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
		return ""
	}
	return s.Status.LoadBalancer.Ingress[0].IP
}

func createLB(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationTwoServersFailover runs two API servers on one etcd, each
// with a replica campaigning for the controllers' lease. The leader's server
// dies: the other replica takes over once the lease expires, never while
// the first still works, and continues allocating without reusing an
// address. Then a clean shutdown hands over at once.
func TestIntegrationTwoServersFailover(t *testing.T) {
	srv1 := apiservertest.Start(t)
	srv2 := apiservertest.Start(t, apiservertest.WithSharedEtcd(srv1))
	client := srv1.Client()
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaderelection.DefaultNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	nsObj, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "failover-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	l := &leaders{}

	// The replica on srv2 (which does not own etcd, so it can die alone)
	// leads first.
	b := replica(t, srv2, "b", l)
	waitUntil(t, "b leading", 30*time.Second, func() (bool, string) {
		cur, _ := l.state()
		return cur == "b" && b.Leading(), cur
	})
	a := replica(t, srv1, "a", l)
	createLB(t, client, ns, "first")
	waitUntil(t, "first's address", 30*time.Second, func() (bool, string) {
		ip := lbIP(client, ns, "first")
		return ip == "198.51.100.10", ip
	})
	if a.Leading() {
		t.Fatal("got a leading while b holds the lease")
	}

	// Kill b's server: b cannot renew and must stop; a takes over.
	_, before := lease(t, client)
	killed := time.Now()
	srv2.Stop()
	// b can no longer renew: the Lease now shows its last renewal.
	lastRenew := leaseRecord(t, client).Spec.RenewTime.Time
	waitUntil(t, "a leading", 60*time.Second, func() (bool, string) {
		cur, _ := l.state()
		return cur == "a" && a.Leading(), cur
	})
	t.Logf("a took over %s after b's server died (lease duration %s)", time.Since(killed).Round(10*time.Millisecond), leaseDuration)
	// The takeover, by the Lease's own clock: a candidate sees b's last
	// renewal within one retry period, waits out the lease duration from
	// then, and acquires at its next retry. One more second for a busy
	// machine; a takeover that waited for anything else (a second lease
	// duration, a restart) would be well past it.
	acquired := leaseRecord(t, client).Spec.AcquireTime.Time
	if limit := leaseDuration + 2*retryPeriod + time.Second; acquired.Sub(lastRenew) > limit {
		t.Errorf("a acquired the lease %s after b's last renewal, want within %s (lease duration %s)", acquired.Sub(lastRenew), limit, leaseDuration)
	}
	if holder, transitions := lease(t, client); holder != "a" || transitions <= before {
		t.Errorf("got holder %q transitions %d, want a and more than %d", holder, transitions, before)
	}
	if _, maxSeen := l.state(); maxSeen != 1 {
		t.Errorf("got %d concurrent leaders at most, want 1", maxSeen)
	}
	// b stepped down by itself (the counter shows one leader at most);
	// now its process goes too.
	if b.Leading() {
		t.Error("got b still leading after losing its server")
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	// a's controllers recovered first's address: second gets the next.
	createLB(t, client, ns, "second")
	waitUntil(t, "second's address", 30*time.Second, func() (bool, string) {
		ip := lbIP(client, ns, "second")
		return ip == "198.51.100.11", ip
	})
	if ip := lbIP(client, ns, "first"); ip != "198.51.100.10" {
		t.Errorf("got first's address %q after the failover, want 198.51.100.10 kept", ip)
	}

	// b's server comes back with a new replica c; a shuts down cleanly and
	// releases the lease, so c leads without waiting for it to expire.
	srv2.Restart(t)
	c := replica(t, srv2, "c", l)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	holder, _ := lease(t, client)
	if holder == "a" {
		t.Errorf("got holder %q after a's clean shutdown, want the lease released", holder)
	}
	waitUntil(t, "c leading", 30*time.Second, func() (bool, string) {
		cur, _ := l.state()
		return cur == "c" && c.Leading(), cur
	})
	createLB(t, srv2.Client(), ns, "third")
	waitUntil(t, "third's address", 30*time.Second, func() (bool, string) {
		ip := lbIP(client, ns, "third")
		return ip == "198.51.100.12", ip
	})
	if _, maxSeen := l.state(); maxSeen != 1 {
		t.Errorf("got %d concurrent leaders at most, want 1", maxSeen)
	}
	ips := []string{lbIP(client, ns, "first"), lbIP(client, ns, "second"), lbIP(client, ns, "third")}
	sorted := slices.Clone(ips)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != 3 {
		t.Errorf("got addresses %v, want three distinct", ips)
	}
	fmt.Fprintln(t.Output(), "addresses:", ips)
}
