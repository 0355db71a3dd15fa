// Package leaderelection runs work only while this process holds a
// coordination.k8s.io/v1 Lease, so that several skiff server replicas on one
// etcd schedule and reconcile with exactly one leader.
//
// It wraps client-go's tools/leaderelection with a Lease lock and adds what a
// server role needs around it: the work of a term is cancelled when the lease
// is lost and waited for before anything else happens; the lease is released
// (holder cleared) only after the work has returned, so a successor takes over
// at once on a clean shutdown yet never runs beside us; a replica that lost
// its lease campaigns again; transitions are logged and counted.
//
// Safety rests on the client-go timing rules: a leader that cannot renew for
// RenewDeadline stops leading, and a candidate takes over only when it has
// seen the record unchanged for LeaseDuration. Work must therefore stop within
// LeaseDuration-RenewDeadline of its context being cancelled.
package leaderelection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Defaults as kube-controller-manager and kube-scheduler use them.
const (
	DefaultNamespace     = "kube-system"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config configures one candidate.
type Config struct {
	// Client reaches the API server that stores the Lease.
	Client kubernetes.Interface
	// Namespace and Name of the Lease; Namespace defaults to kube-system.
	Namespace string
	Name      string
	// Identity names this candidate in the Lease's holderIdentity; it must
	// be unique among the candidates. Empty means hostname plus a random
	// suffix.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod have client-go's meaning
	// and default to 15 s, 10 s and 2 s.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// Log receives transitions; nil discards.
	Log *slog.Logger
	// Metrics, when set, receives skiff_leader_election_is_leader and
	// skiff_leader_election_terms_total (labelled by lease name).
	Metrics prometheus.Registerer
	// OnNewLeader, when set, is called with the identity of every leader
	// this candidate observes (including itself).
	OnNewLeader func(identity string)
}

func (c *Config) complete() error {
	if c.Client == nil {
		return errors.New("leader election: client is required")
	}
	if c.Name == "" {
		return errors.New("leader election: lease name is required")
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Identity == "" {
		id, err := DefaultIdentity()
		if err != nil {
			return err
		}
		c.Identity = id
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.LeaseDuration <= c.RenewDeadline {
		return fmt.Errorf("leader election: lease duration %s must be greater than renew deadline %s", c.LeaseDuration, c.RenewDeadline)
	}
	if c.LeaseDuration < time.Second {
		// The Lease stores whole seconds.
		return fmt.Errorf("leader election: lease duration %s is shorter than one second", c.LeaseDuration)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// DefaultIdentity is the hostname followed by a random suffix, unique per
// process even when replicas share a hostname.
func DefaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return host + "_" + hex.EncodeToString(b[:]), nil
}

// Run campaigns for the Lease until ctx ends. Each time it becomes leader it
// calls work with a context that is cancelled when leadership is lost or ctx
// ends, and waits for work to return. After work returns the lease is
// released if still held, so a successor can take over without waiting for
// the lease to expire; then, unless ctx has ended, Run campaigns again. Work
// that returns by itself while still leading ends the term the same way.
//
// Run returns nil when ctx ends and an error only for an invalid Config.
func Run(ctx context.Context, cfg Config, work func(ctx context.Context)) error {
	if err := cfg.complete(); err != nil {
		return err
	}
	if work == nil {
		return errors.New("leader election: work is required")
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return err
	}
	log := cfg.Log.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
	// client-go logs through klog's context logger: route it to our slog.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(log.Handler()))

	for ctx.Err() == nil {
		if err := runTerm(ctx, cfg, log, m, work); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
		// Lost or gave up leadership: wait a retry period and campaign again.
		select {
		case <-ctx.Done():
		case <-time.After(cfg.RetryPeriod):
		}
	}
	return nil
}

// runTerm campaigns once: it returns when ctx ends before leadership is
// acquired, or after a term as leader has ended, the work has returned and
// the lease has been released.
func runTerm(ctx context.Context, cfg Config, log *slog.Logger, m *metrics, work func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}

	termCtx, endTerm := context.WithCancel(ctx)
	defer endTerm()

	// client-go starts OnStartedLeading in a goroutine of its own, which may
	// be scheduled only after Run has returned (the lease was lost at once).
	// ended makes such a late start run nothing, so that no work outlives
	// the term; the lease then simply expires.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		leading bool
		ended   bool
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Name:          cfg.Name,
		// The lease is released below, after the work has returned:
		// client-go's ReleaseOnCancel would release it while work may still
		// be running.
		ReleaseOnCancel: false,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) {
				mu.Lock()
				if ended {
					mu.Unlock()
					return
				}
				leading = true
				wg.Add(1)
				mu.Unlock()
				m.on(cfg.Name)
				log.Info("became leader")
				defer wg.Done()
				work(leadCtx)
				// Work ended by itself while leading: end the term.
				endTerm()
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				log.Info("observed leader", "leader", identity)
				if cfg.OnNewLeader != nil {
					cfg.OnNewLeader(identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}

	le.Run(termCtx)
	// client-go has cancelled the context it gave the work; wait for the
	// work before giving the lease away.
	mu.Lock()
	ended = true
	wasLeading := leading
	mu.Unlock()
	wg.Wait()
	if !wasLeading {
		return nil
	}
	m.off(cfg.Name)
	if err := release(cfg, lock); err != nil {
		log.Warn("could not release lease; a successor waits for it to expire", "err", err)
	} else {
		log.Info("stopped leading and released the lease")
	}
	return nil
}

// release clears the holder of the Lease if it is still ours, as client-go's
// ReleaseOnCancel does, so that candidates may acquire it at once.
func release(cfg Config, lock *resourcelock.LeaseLock) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RenewDeadline)
	defer cancel()
	for {
		rec, _, err := lock.Get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get lease: %w", err)
		}
		if rec.HolderIdentity != cfg.Identity {
			return nil
		}
		now := metav1.Now()
		err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
			LeaderTransitions:    rec.LeaderTransitions,
			LeaseDurationSeconds: 1,
			RenewTime:            now,
			AcquireTime:          now,
		})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update lease: %w", err)
		}
		return nil
	}
}

// metrics are the Prometheus collectors of the candidates sharing a
// registry.
type metrics struct {
	isLeader *prometheus.GaugeVec
	terms    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		isLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_leader_election_is_leader",
			Help: "1 while this process holds the named lease, else 0.",
		}, []string{"name"}),
		terms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_leader_election_terms_total",
			Help: "Number of times this process became leader of the named lease.",
		}, []string{"name"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.isLeader, err = register(reg, m.isLeader); err != nil {
		return nil, err
	}
	if m.terms, err = register(reg, m.terms); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description (another candidate in this process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register leader election metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) on(name string) {
	m.isLeader.WithLabelValues(name).Set(1)
	m.terms.WithLabelValues(name).Inc()
}

func (m *metrics) off(name string) {
	m.isLeader.WithLabelValues(name).Set(0)
}

// AddFlags registers kube-controller-manager's leader election timing flags
// on fs, writing into c (the role decides on --leader-elect itself).
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", DefaultLeaseDuration, "how long candidates wait after the last renewal before taking over")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", DefaultRenewDeadline, "how long the leader retries renewing before it stops leading")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", DefaultRetryPeriod, "how long candidates wait between tries")
	fs.StringVar(&c.Namespace, "leader-elect-resource-namespace", DefaultNamespace, "namespace of the leader election Lease")
	fs.StringVar(&c.Identity, "leader-elect-identity", "", "this replica's identity in the Lease (default: hostname and a random suffix)")
}
