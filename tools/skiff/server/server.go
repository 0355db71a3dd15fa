// Package server is the `skiff server` subcommand: the control plane in one
// process. It starts etcd (embedded in --data-dir, or a client of an
// external cluster with --etcd-endpoints), the API server over HTTPS with
// the certificates and admin kubeconfig it creates on first start, and the
// in-process components that talk to the API server through its loopback
// client (scheduler, controller manager, cloud controller). SIGTERM (the
// cancelled context from main) stops them in reverse order.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/skiff-project/skiff/tools/internal/gcbudget"
	"github.com/skiff-project/skiff/tools/skiff/component"
)

// Options are the server's flags.
type Options struct {
	DataDir       string
	EtcdEndpoints []string
	EtcdCAFile    string
	EtcdCertFile  string
	EtcdKeyFile   string
	// EtcdClientURL and EtcdPeerURL are where the embedded etcd listens.
	EtcdClientURL string
	EtcdPeerURL   string
	BindAddress   string
	SecurePort    int
	TLSSANs       []string
	ServiceCIDR   *net.IPNet
	NodePortBase  int
	NodePortSize  int
	// CompactInterval is how often etcd history is compacted.
	CompactInterval time.Duration
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerationSeconds of the NoExecute tolerations every pod gets
	// for the not-ready and unreachable taints (300 as in Kubernetes;
	// shorter in labs, so pods leave a dead node sooner).
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64
	// RepairInterval is how often ClusterIP and NodePort allocations are
	// checked for leaks and duplicates.
	RepairInterval time.Duration
	// ControlPlane configures the scheduler and controller manager.
	ControlPlane ControlPlaneOptions
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Run is the `skiff server` command.
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	opts := Options{}
	var endpoints, cidr, portRange, logLevel, logFormat string
	var gcBudgetMiB int64
	var sans stringList
	fs.StringVar(&opts.DataDir, "data-dir", "/var/lib/skiff/server", "directory for etcd data, certificates and the admin kubeconfig")
	fs.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated client URLs of an external etcd cluster (default: embedded etcd)")
	fs.StringVar(&opts.EtcdCAFile, "etcd-cafile", "", "CA bundle to verify the external etcd servers")
	fs.StringVar(&opts.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	fs.StringVar(&opts.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd")
	fs.StringVar(&opts.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:2379", "where the embedded etcd serves clients")
	fs.StringVar(&opts.EtcdPeerURL, "etcd-peer-url", "http://127.0.0.1:2380", "where the embedded etcd serves peers")
	fs.StringVar(&opts.BindAddress, "bind-address", "0.0.0.0", "address the API server listens on")
	fs.IntVar(&opts.SecurePort, "secure-port", 6443, "HTTPS port of the API server (0 picks a free one)")
	fs.Var(&sans, "tls-san", "extra host name or IP for the serving certificate (repeatable)")
	fs.StringVar(&cidr, "service-cidr", "10.96.0.0/12", "range of Service ClusterIPs")
	fs.StringVar(&portRange, "service-node-port-range", "30000-32767", "range of Service NodePorts")
	fs.DurationVar(&opts.CompactInterval, "etcd-compaction-interval", 5*time.Minute, "how often etcd history is compacted (0 disables)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.Int64Var(&gcBudgetMiB, "gc-memory-budget", gcbudget.DefaultBudget>>20, "MiB of Go memory under which the GC runs at GOGC 100 with this soft limit; above it GOGC 50 without one (0: always GOGC 50). GOGC or GOMEMLIMIT in the environment override it")
	fs.Int64Var(&opts.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", 300, "tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration added to every pod")
	fs.Int64Var(&opts.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", 300, "tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute toleration added to every pod")
	fs.DurationVar(&opts.RepairInterval, "service-ip-repair-interval", 3*time.Minute, "how often ClusterIP and NodePort allocations are checked for leaks and duplicates")
	opts.ControlPlane.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if endpoints != "" {
		for _, e := range strings.Split(endpoints, ",") {
			if e = strings.TrimSpace(e); e != "" {
				opts.EtcdEndpoints = append(opts.EtcdEndpoints, e)
			}
		}
	}
	opts.TLSSANs = sans
	var err error
	if _, opts.ServiceCIDR, err = net.ParseCIDR(cidr); err != nil {
		return fmt.Errorf("--service-cidr: %w", err)
	}
	if opts.NodePortBase, opts.NodePortSize, err = parsePortRange(portRange); err != nil {
		return fmt.Errorf("--service-node-port-range: %w", err)
	}
	log, err := newLogger(logLevel, logFormat)
	if err != nil {
		return err
	}
	// The GC's policy within a memory budget (docs/decisions/0006).
	gcbudget.Start(ctx, gcBudgetMiB<<20, log)
	return Serve(ctx, opts, log)
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}

// parsePortRange parses "30000-32767" into a base and size.
func parsePortRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not of the form LOW-HIGH", s)
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	if l < 1 || h > 65535 || h < l {
		return 0, 0, fmt.Errorf("%q is not a range of ports", s)
	}
	return l, h - l + 1, nil
}

// Serve runs the server until ctx ends.
func Serve(ctx context.Context, opts Options, log *slog.Logger) error {
	if opts.DataDir == "" {
		return errors.New("--data-dir is empty")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	m := component.NewManager(log)
	etcd := &etcdComponent{opts: opts, log: log.With("component", "etcd")}
	// One metrics registry for the whole process, served on /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := &apiComponent{opts: opts, etcd: etcd, log: log.With("component", "apiserver"), lb: &Loopback{}, metrics: reg}
	m.Add(etcd, api)
	m.Add(&controlPlane{opts: opts.ControlPlane, lb: api.lb, log: log, metrics: reg})
	if err := m.Init(ctx); err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	log.Info("skiff server running", "url", api.url, "kubeconfig", api.kubeconfigPath())
	fmt.Fprintf(os.Stderr, "\nSkiff is serving the Kubernetes API at %s. Point kubectl at it with:\n\n  export KUBECONFIG=%s\n  kubectl get nodes,pods -A\n\n", api.url, api.kubeconfigPath())
	select {
	case <-ctx.Done():
	case err := <-api.failed:
		log.Error("API server failed", "err", err)
		return errors.Join(err, m.Stop())
	}
	log.Info("shutting down")
	return m.Stop()
}
