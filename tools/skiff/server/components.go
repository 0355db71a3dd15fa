package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/apiserver"
	"github.com/skiff-project/skiff/controlplane/apiserver/openapi"
	"github.com/skiff-project/skiff/controlplane/auth"
	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
	"github.com/skiff-project/skiff/tools/skiff/component"
)

// Loopback hands in-process components their connection to the API
// server. It is filled when the API server has started, before any later
// component starts.
type Loopback struct {
	mu  sync.Mutex
	cfg *rest.Config
}

// Config returns a copy of the loopback REST config (admin credentials).
// It is nil before the API server started.
//
// Every client built from it has a connection of its own, as a component
// in its own process would. client-go otherwise shares one HTTP/2
// connection among all clients with the same TLS settings, and a single
// connection carrying the scheduler's binds, the controllers' writes and
// all their watches queues each behind the others: `skiff bench
// scheduler` bound 700 pods/s on one shared connection and 920 on two.
// A config with a Dial function is never shared (client-go cannot compare
// functions).
func (l *Loopback) Config() *rest.Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg == nil {
		return nil
	}
	cfg := rest.CopyConfig(l.cfg)
	cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return cfg
}

// Client returns a clientset on the loopback config, with name as its user
// agent, speaking protobuf as the control plane's components do.
func (l *Loopback) Client(name string) (kubernetes.Interface, error) {
	cfg := l.Config()
	if cfg == nil {
		return nil, errors.New("loopback client requested before the API server started")
	}
	cfg.UserAgent = name
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return kubernetes.NewForConfig(cfg)
}

func (l *Loopback) set(cfg *rest.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
}

// etcdComponent is the embedded etcd or the client of an external one.
type etcdComponent struct {
	opts     Options
	log      *slog.Logger
	embedded *storage.Embedded
	client   *clientv3.Client
}

var _ component.Component = (*etcdComponent)(nil)

func (e *etcdComponent) Name() string { return "etcd" }

func (e *etcdComponent) Init(context.Context) error {
	if len(e.opts.EtcdEndpoints) == 0 && (e.opts.EtcdCAFile != "" || e.opts.EtcdCertFile != "" || e.opts.EtcdKeyFile != "") {
		return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-endpoints")
	}
	if (e.opts.EtcdCertFile == "") != (e.opts.EtcdKeyFile == "") {
		return errors.New("--etcd-certfile and --etcd-keyfile go together")
	}
	return nil
}

func (e *etcdComponent) Start(ctx context.Context) error {
	endpoints := e.opts.EtcdEndpoints
	if len(endpoints) == 0 {
		em, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{
			DataDir: e.opts.DataDir, ClientURL: e.opts.EtcdClientURL, PeerURL: e.opts.EtcdPeerURL,
		}, e.log)
		if err != nil {
			return err
		}
		e.embedded = em
		// The server's own requests go to etcd in process; the client
		// URL serves etcdctl and other tools.
		e.client = em.Client()
		e.log.Info("embedded etcd ready", "url", em.ClientURL())
		return nil
	}
	c, err := storage.NewClient(ctx, storage.ClientConfig{
		Endpoints: endpoints, CAFile: e.opts.EtcdCAFile, CertFile: e.opts.EtcdCertFile, KeyFile: e.opts.EtcdKeyFile,
	})
	if err != nil {
		return err
	}
	e.client = c
	return nil
}

func (e *etcdComponent) Stop() error {
	var err error
	if e.client != nil {
		// Closing the in-process client cancels its context and reports
		// that as its error; that is a clean close.
		if cerr := e.client.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = cerr
		}
		e.client = nil
	}
	if e.embedded != nil {
		e.embedded.Close()
		e.embedded = nil
	}
	return err
}

// apiComponent is the API server over HTTPS.
type apiComponent struct {
	opts Options
	etcd *etcdComponent
	log  *slog.Logger
	lb   *Loopback
	// metrics is the process's registry; the API server serves it.
	metrics *prometheus.Registry

	url    string
	pki    *auth.PKI
	api    *apiserver.Server
	http   *http.Server
	served chan struct{}
	cancel context.CancelFunc
	failed chan error
}

var _ component.Component = (*apiComponent)(nil)

func (a *apiComponent) Name() string { return "apiserver" }

func (a *apiComponent) kubeconfigPath() string { return filepath.Join(a.opts.DataDir, "kubeconfig") }

func (a *apiComponent) Init(context.Context) error {
	if net.ParseIP(a.opts.BindAddress) == nil {
		return fmt.Errorf("--bind-address %q is not an IP address", a.opts.BindAddress)
	}
	if a.opts.SecurePort < 0 || a.opts.SecurePort > 65535 {
		return fmt.Errorf("--secure-port %d is out of range", a.opts.SecurePort)
	}
	a.failed = make(chan error, 1)
	return nil
}

// publicAddress is the address the kubernetes Service's endpoints name:
// the bind address, or the first global unicast address of the host.
func publicAddress(bind net.IP) net.IP {
	if !bind.IsUnspecified() {
		return bind
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP
		}
	}
	return nil
}

func (a *apiComponent) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	bind := net.ParseIP(a.opts.BindAddress)
	sans := append([]string(nil), a.opts.TLSSANs...)
	if !bind.IsUnspecified() {
		sans = append(sans, bind.String())
	}
	if first := firstServiceIP(a.opts.ServiceCIDR); first != nil {
		sans = append(sans, first.String())
	}
	pki, err := auth.EnsurePKI(a.opts.DataDir, sans)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	a.pki = pki
	spec, err := openapi.New()
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	tc, err := spec.TypeConverter()
	if err != nil {
		return fmt.Errorf("openapi type converter: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(bind.String(), strconv.Itoa(a.opts.SecurePort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	api, err := apiserver.New(apiserver.Config{
		Store: storage.NewStore(a.etcd.client, a.log, nil),
		Resources: registry.Catalogue(registry.Options{
			DefaultNotReadyTolerationSeconds:    a.opts.DefaultNotReadyTolerationSeconds,
			DefaultUnreachableTolerationSeconds: a.opts.DefaultUnreachableTolerationSeconds,
		}),
		RepairInterval: a.opts.RepairInterval,
		Log:            a.log,
		Authenticate:   func(r *http.Request) bool { _, ok := pki.Authenticate(r); return ok },
		TypeConverter:  tc,
		OpenAPI:        spec,
		ServiceCIDR:    a.opts.ServiceCIDR,
		NodePortBase:   a.opts.NodePortBase,
		NodePortSize:   a.opts.NodePortSize,
		PublicAddress:  publicAddress(bind),
		SecurePort:     port,
		Metrics:        a.metrics,
	})
	if err != nil {
		ln.Close()
		return err
	}
	a.api = api
	if a.opts.CompactInterval > 0 {
		go storage.NewCompactor(a.etcd.client, a.opts.CompactInterval, a.log).Run(ctx)
	}
	a.http = &http.Server{Handler: api.Handler(), TLSConfig: pki.ServerTLSConfig(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	a.served = make(chan struct{})
	go func() {
		defer close(a.served)
		if err := a.http.Serve(tls.NewListener(ln, a.http.TLSConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.failed <- fmt.Errorf("serve: %w", err)
		}
	}()
	host := "127.0.0.1"
	if !bind.IsUnspecified() {
		host = bind.String()
	}
	a.url = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	// The kubeconfig exists before /readyz passes, so whoever waits for
	// readiness can use it.
	if err := pki.WriteKubeconfig(a.kubeconfigPath(), a.url); err != nil {
		return err
	}
	bctx, bcancel := context.WithTimeout(ctx, time.Minute)
	defer bcancel()
	if err := api.Bootstrap(bctx); err != nil {
		return err
	}
	cfg := pki.RESTConfig(a.url)
	cfg.QPS, cfg.Burst = 200, 400
	a.lb.set(cfg)
	return nil
}

func firstServiceIP(cidr *net.IPNet) net.IP {
	if cidr == nil {
		return nil
	}
	ip := make(net.IP, len(cidr.IP))
	copy(ip, cidr.IP)
	ip[len(ip)-1]++
	return ip
}

func (a *apiComponent) Stop() error {
	if a.api != nil {
		a.api.Close()
	}
	var err error
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err = a.http.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			err = a.http.Close()
		}
		cancel()
		<-a.served
		a.http = nil
	}
	if a.cancel != nil {
		a.cancel()
	}
	return err
}
