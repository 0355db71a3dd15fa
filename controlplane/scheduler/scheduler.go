// Package scheduler is Skiff's pod scheduler: it watches pods and nodes
// through the API (informers), assigns each pending pod whose
// spec.schedulerName is its own to a node chosen by the plugins of its
// profile, and binds it through pods/binding.
//
// One goroutine runs scheduling cycles, one pod at a time, against a
// snapshot of the cache; the chosen node is assumed in the cache at once and
// the bind call runs in the background on a bounded pool, so a burst of pods
// neither waits for API round trips nor double-books a node. A pod that fits
// nowhere gets PodScheduled=False with the upstream-form message ("0/3 nodes
// are available: ...") and a FailedScheduling event, and waits in the queue
// until a cluster event that can help it. See README.md for the design.
//
// Use New and Run (blocking, for leader election), or the
// tools/skiff/component lifecycle (Init/Start/Stop).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/cache"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/queue"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins"
	"github.com/skiff-project/skiff/tools/skiff/component"
)

// Config configures a Scheduler. Client (or RESTConfig) is required; the
// rest has defaults.
type Config struct {
	// Client talks to the API server. Its rate limits bound the binding
	// rate: give it a high QPS (upstream's scheduler_perf uses 5000).
	Client kubernetes.Interface
	// EventClient records the scheduler's events; Client by default. With
	// a RESTConfig it is a client of its own, which gets a connection of
	// its own when the config has a Dial function (client-go shares one
	// otherwise): an event per pod then does not queue the pod's binding
	// (bench scheduler, basic: 763-781 pods/s on one connection, 862-938
	// on two).
	EventClient kubernetes.Interface
	// RESTConfig builds a Client when Client is nil, with DefaultQPS
	// unless it sets a QPS, and protobuf request bodies.
	RESTConfig *rest.Config
	// Log receives the scheduler's logs; discarded when nil.
	Log *slog.Logger
	// SchedulerName is the spec.schedulerName this scheduler serves;
	// "default-scheduler" by default. It overrides the profile's.
	SchedulerName string
	// Profile lists the plugins; plugins.DefaultProfile() by default.
	Profile *runtime.Profile
	// Registry adds out-of-tree plugin factories to the in-tree ones.
	Registry runtime.Registry
	// Metrics registers the scheduler's metrics; none when nil.
	Metrics prometheus.Registerer
	// Parallelism is the number of goroutines filtering and scoring nodes;
	// GOMAXPROCS by default.
	Parallelism int
	// BindParallelism bounds the bind calls in flight; 64 by default.
	BindParallelism int
	// InitialBackoff and MaxBackoff bound the per-pod backoff after a
	// failed attempt (1 s doubling to 10 s by default).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxInUnschedulable is how long an unschedulable pod waits for a
	// helpful event before it is retried anyway (5 min by default).
	MaxInUnschedulable time.Duration
	// AssumedPodTTL expires assumed pods the informer never confirms,
	// counted from the end of binding (15 min by default; negative
	// disables).
	AssumedPodTTL time.Duration
	// EventRecorder records events; by default the scheduler records to
	// the API (events.k8s.io/v1, or core/v1 when the server lacks it).
	EventRecorder events.EventRecorder
}

// DefaultQPS is the client rate limit (and burst) used with a RESTConfig
// that sets none, as upstream's scheduler_perf sets it: the scheduler makes
// a bind call and records an event per pod.
const DefaultQPS = 5000

// Scheduler schedules pods. Run may be called again after it returned (for
// example after regaining leadership); each run starts from fresh informers.
type Scheduler struct {
	cfg      Config
	log      *slog.Logger
	registry runtime.Registry
	profile  runtime.Profile
	metrics  *metrics

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	running bool
}

var _ component.Component = (*Scheduler)(nil)

// New validates cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil {
		if cfg.RESTConfig == nil {
			return nil, errors.New("scheduler config needs a Client or a RESTConfig")
		}
		rc := rest.CopyConfig(cfg.RESTConfig)
		if rc.QPS == 0 && rc.RateLimiter == nil {
			// client-go's default (5/s) would bound the binding rate.
			rc.QPS, rc.Burst = DefaultQPS, DefaultQPS
		}
		if rc.ContentType == "" {
			rc.ContentType = "application/vnd.kubernetes.protobuf"
			rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		}
		if rc.UserAgent == "" {
			rc.UserAgent = "skiff-scheduler"
		}
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("build client: %w", err)
		}
		cfg.Client = c
		if cfg.EventClient == nil {
			ec, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return nil, fmt.Errorf("build event client: %w", err)
			}
			cfg.EventClient = ec
		}
	}
	if cfg.EventClient == nil {
		cfg.EventClient = cfg.Client
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = v1.DefaultSchedulerName
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = goruntime.GOMAXPROCS(0)
	}
	if cfg.BindParallelism <= 0 {
		cfg.BindParallelism = 64
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = queue.DefaultInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = queue.DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		return nil, fmt.Errorf("max backoff %v is shorter than initial backoff %v", cfg.MaxBackoff, cfg.InitialBackoff)
	}
	if cfg.MaxInUnschedulable <= 0 {
		cfg.MaxInUnschedulable = queue.DefaultMaxInUnschedulable
	}
	if cfg.AssumedPodTTL == 0 {
		cfg.AssumedPodTTL = cache.DefaultAssumedPodTTL
	}
	profile := plugins.DefaultProfile()
	if cfg.Profile != nil {
		profile = *cfg.Profile
	}
	profile.SchedulerName = cfg.SchedulerName
	registry := plugins.NewInTreeRegistry()
	if err := registry.Merge(cfg.Registry); err != nil {
		return nil, fmt.Errorf("merge plugin registry: %w", err)
	}
	s := &Scheduler{
		cfg:      cfg,
		log:      cfg.Log.With("component", "scheduler"),
		registry: registry,
		profile:  profile,
		metrics:  newMetrics(),
	}
	// Build the plugins once to report configuration errors now, without
	// informers so that nothing talks to the server yet.
	if _, err := runtime.New(context.Background(), registry, profile, runtime.Options{
		Log: s.log, Client: cfg.Client, Snapshot: cache.NewEmptySnapshot(),
	}); err != nil {
		return nil, fmt.Errorf("build profile %q: %w", profile.SchedulerName, err)
	}
	if cfg.Metrics != nil {
		if err := s.metrics.register(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("register scheduler metrics: %w", err)
		}
	}
	return s, nil
}

// Run schedules pods until ctx ends. It returns nil when ctx ends, or an
// error when the scheduler cannot start.
func (s *Scheduler) Run(ctx context.Context) error {
	return s.run(ctx, nil)
}

func (s *Scheduler) run(ctx context.Context, synced chan<- error) error {
	inst, err := s.newInstance(ctx)
	if err != nil {
		if synced != nil {
			synced <- err
		}
		return err
	}
	return inst.run(ctx, synced)
}

// Name implements component.Component.
func (s *Scheduler) Name() string { return "scheduler" }

// Init implements component.Component; New already validated the
// configuration.
func (s *Scheduler) Init(context.Context) error { return nil }

// Start implements component.Component: it starts scheduling in the
// background and returns once the informers have synced.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler already started")
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.done = make(chan struct{})
	s.running = true
	done := s.done
	s.mu.Unlock()

	synced := make(chan error, 1)
	go func() {
		defer close(done)
		if err := s.run(runCtx, synced); err != nil {
			s.log.Error("scheduler stopped", "err", err)
		}
	}()
	select {
	case err := <-synced:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop implements component.Component: it stops scheduling and waits for
// in-flight bindings.
func (s *Scheduler) Stop() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.running = false
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}
