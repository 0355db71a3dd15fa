package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/controllers"
	"github.com/skiff-project/skiff/controlplane/leaderelection"
	"github.com/skiff-project/skiff/controlplane/scheduler"
	"github.com/skiff-project/skiff/tools/skiff/component"
)

// Lease names in kube-system, as kube-scheduler and kube-controller-manager
// use them, so tools that look for the leaders find them.
const (
	schedulerLease         = "kube-scheduler"
	controllerManagerLease = "kube-controller-manager"
)

// ControlPlaneOptions configure the components that run beside the API
// server and reach it through the loopback client: the scheduler and the
// controller manager (whose controllers include the cloud controller that
// hands out LoadBalancer addresses).
type ControlPlaneOptions struct {
	// DisableScheduler and DisableControllerManager leave a component out,
	// for a replica that only serves the API or a test that runs its own.
	DisableScheduler         bool
	DisableControllerManager bool
	// LeaderElect runs each component only while this replica holds its
	// Lease (the default), so several servers on one etcd schedule and
	// reconcile with exactly one leader each.
	LeaderElect    bool
	LeaderElection leaderelection.Config
	// Controllers selects controllers as kube-controller-manager's
	// --controllers does.
	Controllers []string
	// Network are the network and cloud controllers' settings.
	Network controllers.NetworkOptions
}

// AddFlags registers the control plane flags on fs.
func (o *ControlPlaneOptions) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.DisableScheduler, "disable-scheduler", false, "do not run the scheduler in this server")
	fs.BoolVar(&o.DisableControllerManager, "disable-controller-manager", false, "do not run the controller manager (and cloud controller) in this server")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the scheduler and controller manager only while this replica holds their Leases")
	o.LeaderElection.AddFlags(fs)
	fs.Func("controllers", "controllers to run: '*' for the default set, 'foo' to enable, '-foo' to disable, comma separated (default '*')", func(s string) error {
		o.Controllers = nil
		for _, c := range strings.Split(s, ",") {
			if c = strings.TrimSpace(c); c != "" {
				o.Controllers = append(o.Controllers, c)
			}
		}
		return nil
	})
	o.Network.AddFlags(fs)
}

// controlPlane is the component that runs the scheduler and the controller
// manager. Both need the loopback client, which exists only once the API
// server has started, so they are built in Start rather than Init.
type controlPlane struct {
	opts    ControlPlaneOptions
	lb      *Loopback
	log     *slog.Logger
	metrics prometheus.Registerer

	running *component.Manager
}

var _ component.Component = (*controlPlane)(nil)

func (c *controlPlane) Name() string { return "control-plane" }

// Init checks what can be checked before the API server runs: the
// controller selection and the leader election timings.
func (c *controlPlane) Init(context.Context) error {
	if c.opts.DisableControllerManager {
		return nil
	}
	// NewManager only resolves the selection; it builds no client from the
	// (empty) rest config, so an unknown controller name fails here, before
	// anything starts.
	_, err := controllers.NewManager(controllers.Config{RESTConfig: &rest.Config{}, Controllers: c.opts.Controllers})
	return err
}

func (c *controlPlane) Start(ctx context.Context) error {
	cfg := c.lb.Config()
	if cfg == nil {
		return errors.New("control plane started before the API server")
	}
	m := component.NewManager(c.log)
	if !c.opts.DisableControllerManager {
		mgr, err := controllers.NewManager(controllers.Config{
			RESTConfig:  cfg,
			Logger:      c.log,
			Metrics:     c.metrics,
			Controllers: c.opts.Controllers,
			Options:     controllers.Options{Network: c.opts.Network},
		})
		if err != nil {
			return err
		}
		if err := c.addElected(m, controllerManagerLease, mgr, mgr.Run); err != nil {
			return err
		}
	}
	if !c.opts.DisableScheduler {
		schedCfg := *cfg
		// Binding is one request per pod: give the scheduler room to bind
		// bursts (upstream's scheduler_perf uses far more).
		schedCfg.QPS, schedCfg.Burst = 500, 1000
		sched, err := scheduler.New(scheduler.Config{RESTConfig: &schedCfg, Log: c.log, Metrics: c.metrics})
		if err != nil {
			return err
		}
		if err := c.addElected(m, schedulerLease, sched, sched.Run); err != nil {
			return err
		}
	}
	if err := m.Init(ctx); err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	c.running = m
	return nil
}

// addElected adds direct to m, under leader election on lease unless
// leader election is off.
func (c *controlPlane) addElected(m *component.Manager, lease string, direct component.Component, run leaderelection.RunFunc) error {
	part, err := c.elected(lease, direct, run)
	if err != nil {
		return err
	}
	m.Add(part)
	return nil
}

// elected wraps a component in leader election on lease, or returns it as
// it is when leader election is off.
func (c *controlPlane) elected(lease string, direct component.Component, run leaderelection.RunFunc) (component.Component, error) {
	if !c.opts.LeaderElect {
		return direct, nil
	}
	client, err := c.lb.Client("skiff-leader-election")
	if err != nil {
		return nil, err
	}
	le := c.opts.LeaderElection
	le.Client = client
	le.Name = lease
	le.Log = c.log
	le.Metrics = c.metrics
	return leaderelection.NewComponent(lease, le, run), nil
}

func (c *controlPlane) Stop() error {
	if c.running == nil {
		return nil
	}
	err := c.running.Stop()
	c.running = nil
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	return nil
}
