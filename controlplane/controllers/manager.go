package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-project/skiff/tools/skiff/component"
)

// Config configures a Manager.
type Config struct {
	// RESTConfig builds Client and Metadata when they are nil.
	RESTConfig *rest.Config
	// Client and Metadata, when set, are used as they are (unit tests pass
	// fakes here).
	Client   kubernetes.Interface
	Metadata metadata.Interface
	Dynamic  dynamic.Interface

	// Logger receives the manager's and the controllers' logs; nil discards.
	Logger *slog.Logger
	// Metrics receives the controllers' collectors; nil means a private
	// registry.
	Metrics prometheus.Registerer

	// Controllers selects the controllers to run, as kube-controller-manager's
	// --controllers flag: "*" enables all that are on by default, "foo"
	// enables foo, "-foo" disables foo. Empty means ["*"].
	Controllers []string
	// Registrations is the controller table; nil means
	// DefaultRegistrations().
	Registrations []Registration

	// Options are passed to every controller through its Context.
	Options Options
}

// Manager runs the enabled controllers over shared informers. It implements
// component.Component for the server role and Run for callers that run it
// under leader election.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	enabled []Registration

	client     kubernetes.Interface
	metadata   metadata.Interface
	dynamic    dynamic.Interface
	restConfig *rest.Config

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	runErr  error
	running bool
}

var _ component.Component = (*Manager)(nil)

// NewManager validates cfg and resolves which controllers are enabled. It
// builds no clients and starts nothing.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Client == nil && cfg.RESTConfig == nil {
		return nil, errors.New("controller manager: need a client or a rest config")
	}
	regs := cfg.Registrations
	if regs == nil {
		regs = DefaultRegistrations()
	}
	byName := make(map[string]Registration, len(regs))
	for _, r := range regs {
		if r.Name == "" || r.New == nil {
			return nil, fmt.Errorf("controller manager: registration %q lacks a name or constructor", r.Name)
		}
		if _, dup := byName[r.Name]; dup {
			return nil, fmt.Errorf("controller manager: controller %q registered twice", r.Name)
		}
		byName[r.Name] = r
	}
	sel := cfg.Controllers
	if len(sel) == 0 {
		sel = []string{"*"}
	}
	for _, s := range sel {
		if s == "*" {
			continue
		}
		name := s
		if len(name) > 0 && name[0] == '-' {
			name = name[1:]
		}
		if _, ok := byName[name]; !ok {
			return nil, fmt.Errorf("controller manager: unknown controller %q in --controllers", s)
		}
	}
	var enabled []Registration
	for _, r := range regs {
		if IsEnabled(sel, r.Name, r.DisabledByDefault) {
			enabled = append(enabled, r)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log.With("component", "controller-manager"), enabled: enabled}, nil
}

// IsEnabled applies kube-controller-manager's --controllers rules to name:
// the first entry naming it ("foo" or "-foo") decides; otherwise "*"
// enables it unless it is disabled by default.
func IsEnabled(selection []string, name string, disabledByDefault bool) bool {
	star := false
	for _, s := range selection {
		switch s {
		case name:
			return true
		case "-" + name:
			return false
		case "*":
			star = true
		}
	}
	return star && !disabledByDefault
}

// Enabled returns the names of the enabled controllers in start order.
func (m *Manager) Enabled() []string {
	names := make([]string, 0, len(m.enabled))
	for _, r := range m.enabled {
		names = append(names, r.Name)
	}
	return names
}

// Name implements component.Component.
func (m *Manager) Name() string { return "controller-manager" }

// Init builds the clients. It starts nothing.
func (m *Manager) Init(context.Context) error {
	return m.initClients()
}

func (m *Manager) initClients() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil {
		return nil
	}
	m.client, m.metadata, m.dynamic, m.restConfig = m.cfg.Client, m.cfg.Metadata, m.cfg.Dynamic, m.cfg.RESTConfig
	if m.restConfig != nil {
		cfg := rest.CopyConfig(m.restConfig)
		if cfg.UserAgent == "" {
			cfg.UserAgent = "skiff-controller-manager"
		}
		// client-go's default (5 QPS) starves a controller manager;
		// kube-controller-manager defaults to 20/30, we allow more as our
		// API server is cheap.
		if cfg.QPS == 0 {
			cfg.QPS, cfg.Burst = 100, 200
		}
		if m.client == nil {
			// Typed clients speak protobuf, as kube-controller-manager's
			// (--kube-api-content-type); the metadata and dynamic
			// clients choose their own encodings.
			pc := rest.CopyConfig(cfg)
			if pc.ContentType == "" {
				pc.ContentType = "application/vnd.kubernetes.protobuf"
				pc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
			}
			c, err := kubernetes.NewForConfig(pc)
			if err != nil {
				return fmt.Errorf("build clientset: %w", err)
			}
			m.client = c
		}
		if m.metadata == nil {
			c, err := metadata.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("build metadata client: %w", err)
			}
			m.metadata = c
		}
		if m.dynamic == nil {
			c, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("build dynamic client: %w", err)
			}
			m.dynamic = c
		}
	}
	return nil
}

// Start runs the controllers in the background until Stop is called or ctx
// ends. It returns once the informers have been started, or with the error
// that kept the controllers from being built.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.initClients(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("controller manager already started")
	}
	runCtx, cancel := context.WithCancel(ctx)
	m.cancel, m.done, m.running = cancel, make(chan struct{}), true
	m.mu.Unlock()

	started := make(chan error, 1)
	go func() {
		err := m.run(runCtx, started)
		m.mu.Lock()
		m.runErr = err
		m.mu.Unlock()
		close(m.done)
	}()
	select {
	case err := <-started:
		if err != nil {
			<-m.done
			return err
		}
		return nil
	case <-m.done:
		return m.runErr
	}
}

// Stop stops the controllers started by Start and waits for them. It is safe
// to call after a failed or partial Start, and more than once.
func (m *Manager) Stop() error {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.runErr
	m.runErr, m.cancel, m.done, m.running = nil, nil, nil, false
	return err
}

// Run builds the enabled controllers, starts the shared informers, runs the
// controllers and blocks until ctx ends or a controller fails. Everything it
// started (informers, event broadcaster, metrics) is released before it
// returns, so Run may be called again for a new leadership term.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.initClients(); err != nil {
		return err
	}
	return m.run(ctx, nil)
}

func (m *Manager) run(ctx context.Context, started chan<- error) (err error) {
	signal := func(err error) {
		if started != nil {
			started <- err
			started = nil
		}
	}
	defer func() { signal(err) }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	metrics := newTrackingRegisterer(m.cfg.Metrics)
	defer metrics.unregisterAll()

	factory := informers.NewSharedInformerFactoryWithOptions(m.client, m.cfg.Options.ResyncPeriod, informers.WithTransform(trimForCache))
	defer factory.Shutdown()

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	var recMu sync.Mutex
	recorders := map[string]record.EventRecorder{}
	recorderFor := func(component string) record.EventRecorder {
		recMu.Lock()
		defer recMu.Unlock()
		r, ok := recorders[component]
		if !ok {
			r = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
			recorders[component] = r
		}
		return r
	}

	informersStarted := make(chan struct{})
	type runnable struct {
		c       Controller
		workers int
	}
	var runs []runnable
	for _, r := range m.enabled {
		cctx := &Context{
			Client:           m.client,
			Metadata:         m.metadata,
			Dynamic:          m.dynamic,
			RESTConfig:       m.restConfig,
			Informers:        factory,
			Logger:           m.log.With("controller", r.Name),
			Metrics:          metrics,
			Options:          m.cfg.Options,
			InformersStarted: informersStarted,
			recorders:        recorderFor,
		}
		c, err := r.New(cctx)
		if err != nil {
			return fmt.Errorf("build controller %s: %w", r.Name, err)
		}
		if c == nil {
			m.log.Info("controller disabled by its options", "controller", r.Name)
			continue
		}
		workers := r.Workers
		if w, ok := m.cfg.Options.Workers[r.Name]; ok {
			workers = w
		}
		if workers <= 0 {
			workers = DefaultWorkers
		}
		runs = append(runs, runnable{c: c, workers: workers})
	}

	factory.Start(ctx.Done())
	close(informersStarted)
	signal(nil)

	errs := make(chan error, len(runs))
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.log.Info("starting controller", "controller", r.c.Name(), "workers", r.workers)
			if err := r.c.Run(ctx, r.workers); err != nil {
				errs <- fmt.Errorf("controller %s: %w", r.c.Name(), err)
				cancel()
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}

// trackingRegisterer registers collectors with the wrapped registerer and
// remembers them so that they can be unregistered when a run ends.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func newTrackingRegisterer(reg prometheus.Registerer) *trackingRegisterer {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &trackingRegisterer{reg: reg}
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool {
	t.mu.Lock()
	for i, x := range t.cs {
		if x == c {
			t.cs = append(t.cs[:i], t.cs[i+1:]...)
			break
		}
	}
	t.mu.Unlock()
	return t.reg.Unregister(c)
}

func (t *trackingRegisterer) unregisterAll() {
	t.mu.Lock()
	cs := t.cs
	t.cs = nil
	t.mu.Unlock()
	for _, c := range cs {
		t.reg.Unregister(c)
	}
}
