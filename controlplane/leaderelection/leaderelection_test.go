package leaderelection

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// leaseStore is a Lease store with the API server's optimistic concurrency
// (resourceVersion conflicts), which client-go's fake tracker lacks. Several
// fake clientsets share one store, one per candidate; each can be cut off to
// simulate a partitioned or dead replica.
type leaseStore struct {
	mu     sync.Mutex
	rv     int
	leases map[string]*coordinationv1.Lease
}

var leaseGR = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

func newLeaseStore() *leaseStore {
	return &leaseStore{leases: map[string]*coordinationv1.Lease{}}
}

func (s *leaseStore) get(ns, name string) (*coordinationv1.Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[ns+"/"+name]
	if !ok {
		return nil, false
	}
	return l.DeepCopy(), true
}

// client returns a clientset whose lease requests go to the store and fail
// while cut is true.
func (s *leaseStore) client(cut *atomic.Bool) *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("*", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if cut.Load() {
			return true, nil, errors.New("connection refused")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch a.GetVerb() {
		case "get":
			a := a.(k8stesting.GetAction)
			l, ok := s.leases[a.GetNamespace()+"/"+a.GetName()]
			if !ok {
				return true, nil, apierrors.NewNotFound(leaseGR, a.GetName())
			}
			return true, l.DeepCopy(), nil
		case "create":
			a := a.(k8stesting.CreateAction)
			l := a.GetObject().(*coordinationv1.Lease).DeepCopy()
			key := a.GetNamespace() + "/" + l.Name
			if _, ok := s.leases[key]; ok {
				return true, nil, apierrors.NewAlreadyExists(leaseGR, l.Name)
			}
			s.rv++
			l.ResourceVersion = strconv.Itoa(s.rv)
			s.leases[key] = l
			return true, l.DeepCopy(), nil
		case "update":
			a := a.(k8stesting.UpdateAction)
			l := a.GetObject().(*coordinationv1.Lease).DeepCopy()
			key := a.GetNamespace() + "/" + l.Name
			cur, ok := s.leases[key]
			if !ok {
				return true, nil, apierrors.NewNotFound(leaseGR, l.Name)
			}
			if cur.ResourceVersion != l.ResourceVersion {
				return true, nil, apierrors.NewConflict(leaseGR, l.Name, fmt.Errorf("resourceVersion %s is stale, current %s", l.ResourceVersion, cur.ResourceVersion))
			}
			s.rv++
			l.ResourceVersion = strconv.Itoa(s.rv)
			s.leases[key] = l
			return true, l.DeepCopy(), nil
		}
		return true, nil, fmt.Errorf("unexpected lease action %s", a.GetVerb())
	})
	return c
}

// leaders counts the candidates running their work at once and remembers the
// highest count seen.
type leaders struct {
	mu      sync.Mutex
	now     int
	max     int
	current string
	terms   map[string]int
}

func (l *leaders) work(id string) func(ctx context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.now++
		l.max = max(l.max, l.now)
		l.current = id
		if l.terms == nil {
			l.terms = map[string]int{}
		}
		l.terms[id]++
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.now--
		if l.current == id {
			l.current = ""
		}
		l.mu.Unlock()
	}
}

func (l *leaders) state() (now, maxSeen int, current string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now, l.max, l.current
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

type candidate struct {
	id     string
	cut    atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

func startCandidates(t *testing.T, store *leaseStore, l *leaders, reg prometheus.Registerer, ids ...string) map[string]*candidate {
	t.Helper()
	cs := map[string]*candidate{}
	for _, id := range ids {
		c := &candidate{id: id, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		cfg := Config{
			Client:        store.client(&c.cut),
			Name:          "test-lease",
			Identity:      id,
			LeaseDuration: 2 * time.Second,
			RenewDeadline: time.Second,
			RetryPeriod:   100 * time.Millisecond,
			Log:           testLogger(t).With("candidate", id),
			Metrics:       reg,
		}
		go func() {
			defer close(c.done)
			if err := Run(ctx, cfg, l.work(id)); err != nil {
				t.Errorf("candidate %s: Run: %v", id, err)
			}
		}()
		cs[id] = c
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.cancel()
			<-c.done
		}
	})
	return cs
}

func TestOneLeaderAndCleanHandover(t *testing.T) {
	store := newLeaseStore()
	l := &leaders{}
	reg := prometheus.NewRegistry()
	cs := startCandidates(t, store, l, reg, "a", "b", "c")

	var first string
	waitFor(t, "a leader", 10*time.Second, func() bool {
		_, _, first = l.state()
		return first != ""
	})

	// A clean shutdown releases the lease: someone else leads next.
	cs[first].cancel()
	<-cs[first].done
	lease, ok := store.get(DefaultNamespace, "test-lease")
	if !ok {
		t.Fatal("lease not found after handover")
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h == first {
		t.Errorf("got holder %q after clean shutdown, want the lease released", *h)
	}
	var second string
	waitFor(t, "a new leader", 10*time.Second, func() bool {
		_, _, second = l.state()
		return second != "" && second != first
	})
	_, maxSeen, _ := l.state()
	if maxSeen != 1 {
		t.Errorf("got %d concurrent leaders at most, want 1", maxSeen)
	}
	if got := metricSum(t, reg, "skiff_leader_election_terms_total"); got < 2 {
		t.Errorf("got %v terms in the metric, want at least 2", got)
	}
}

// metricSum adds up the values of every series of the named metric.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestPartitionedLeaderStepsDown(t *testing.T) {
	store := newLeaseStore()
	l := &leaders{}
	cs := startCandidates(t, store, l, nil, "a", "b")

	var first string
	waitFor(t, "a leader", 10*time.Second, func() bool {
		_, _, first = l.state()
		return first != ""
	})
	other := "a"
	if first == "a" {
		other = "b"
	}

	// The leader loses the API server: it must stop its work after the
	// renew deadline, and the other candidate takes over once the lease
	// has expired, never while the first still works.
	cut := time.Now()
	cs[first].cut.Store(true)
	waitFor(t, "the other candidate to lead", 20*time.Second, func() bool {
		_, _, cur := l.state()
		return cur == other
	})
	t.Logf("takeover %s after the leader was cut off (lease duration 2s)", time.Since(cut).Round(10*time.Millisecond))
	_, maxSeen, _ := l.state()
	if maxSeen != 1 {
		t.Errorf("got %d concurrent leaders at most, want 1", maxSeen)
	}

	// The old leader comes back and must not lead while the other renews.
	cs[first].cut.Store(false)
	time.Sleep(500 * time.Millisecond)
	if _, _, cur := l.state(); cur != other {
		t.Errorf("got leader %q after the old leader reconnected, want %q", cur, other)
	}
	if n, maxSeen, _ := l.state(); n != 1 || maxSeen != 1 {
		t.Errorf("got %d leaders now and %d at most, want 1 and 1", n, maxSeen)
	}
}

func TestComponentRestartsTermWhenWorkFails(t *testing.T) {
	store := newLeaseStore()
	var cut atomic.Bool
	var calls atomic.Int32
	failing := func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			return errors.New("boom")
		}
		<-ctx.Done()
		return nil
	}
	var steady atomic.Int32
	other := func(ctx context.Context) error {
		steady.Add(1)
		<-ctx.Done()
		return nil
	}
	c := NewComponent("leader-work", Config{
		Client:        store.client(&cut),
		Name:          "component-lease",
		Identity:      "x",
		LeaseDuration: 2 * time.Second,
		RenewDeadline: time.Second,
		RetryPeriod:   100 * time.Millisecond,
		Log:           testLogger(t),
	}, failing, other)
	ctx := context.Background()
	if err := c.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	// The first term ends when one run fails; the next term runs both again.
	waitFor(t, "a second term", 10*time.Second, func() bool { return calls.Load() >= 2 && c.Leading() })
	if got := steady.Load(); got < 2 {
		t.Errorf("got the steady run started %d times, want at least 2 (once per term)", got)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c.Leading() {
		t.Error("got Leading() true after Stop, want false")
	}
	lease, ok := store.get(DefaultNamespace, "component-lease")
	if !ok {
		t.Fatal("lease not found")
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("got holder %q after Stop, want the lease released", *h)
	}
}

func TestConfigValidation(t *testing.T) {
	var cut atomic.Bool
	client := newLeaseStore().client(&cut)
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"no client", Config{Name: "x"}, true},
		{"no name", Config{Client: client}, true},
		{"renew deadline not below lease duration", Config{Client: client, Name: "x", LeaseDuration: 5 * time.Second, RenewDeadline: 5 * time.Second}, true},
		{"sub-second lease", Config{Client: client, Name: "x", LeaseDuration: 500 * time.Millisecond, RenewDeadline: 100 * time.Millisecond}, true},
		{"defaults", Config{Client: client, Name: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.complete()
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if cfg.Namespace != DefaultNamespace || cfg.LeaseDuration != DefaultLeaseDuration || cfg.RenewDeadline != DefaultRenewDeadline || cfg.RetryPeriod != DefaultRetryPeriod || cfg.Identity == "" {
				t.Errorf("got defaults %s %s %s %s %q, want %s %s %s %s and an identity", cfg.Namespace, cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod, cfg.Identity,
					DefaultNamespace, DefaultLeaseDuration, DefaultRenewDeadline, DefaultRetryPeriod)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse([]string{"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-identity=x"}); err != nil {
		t.Fatal(err)
	}
	if cfg.LeaseDuration != 4*time.Second || cfg.RenewDeadline != 3*time.Second || cfg.RetryPeriod != DefaultRetryPeriod ||
		cfg.Identity != "x" || cfg.Namespace != DefaultNamespace {
		t.Errorf("got %s %s %s %q %q, want 4s 3s %s \"x\" %q", cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod, cfg.Identity, cfg.Namespace, DefaultRetryPeriod, DefaultNamespace)
	}
}
