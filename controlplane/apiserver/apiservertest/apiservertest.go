// Package apiservertest runs a real Skiff API server in-process for tests:
// an embedded etcd in a temporary directory and the API server over HTTPS
// on 127.0.0.1 with a random port, with client-go clients, a REST config
// and a kubeconfig for it. Everything it starts is stopped and removed by
// t.Cleanup, even when the test fails.
//
//	srv := apiservertest.Start(t)
//	pods, err := srv.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
//
// Two servers can share one etcd (WithSharedEtcd), as two `skiff server`
// replicas on an external etcd do, for leader election and allocation
// tests.
package apiservertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/apiserver"
	"github.com/skiff-project/skiff/controlplane/apiserver/openapi"
	"github.com/skiff-project/skiff/controlplane/auth"
	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// Option configures Start.
type Option func(*options)

type options struct {
	shared        *Server
	serviceCIDR   string
	nodePortBase  int
	nodePortSize  int
	bookmarkEvery time.Duration
	log           *slog.Logger
	catalogue     registry.Options
	repairEvery   time.Duration
}

// WithSharedEtcd makes the new server use other's etcd instead of starting
// its own (other must outlive it; stop the servers in reverse order). When
// other restarts, its etcd comes back on the same URL if the port is still
// free, and this server's client reconnects.
func WithSharedEtcd(other *Server) Option { return func(o *options) { o.shared = other } }

// WithServiceCIDR sets the Service ClusterIP range (default 10.96.0.0/12).
func WithServiceCIDR(cidr string) Option { return func(o *options) { o.serviceCIDR = cidr } }

// WithNodePortRange sets the NodePort range to [base, base+size).
func WithNodePortRange(base, size int) Option {
	return func(o *options) { o.nodePortBase, o.nodePortSize = base, size }
}

// WithBookmarkInterval sets how often watches that ask get bookmarks
// (default one minute, as kube-apiserver).
func WithBookmarkInterval(d time.Duration) Option { return func(o *options) { o.bookmarkEvery = d } }

// WithDefaultTolerationSeconds sets the tolerationSeconds of the
// not-ready and unreachable tolerations given to pods (default 300 each,
// as kube-apiserver's --default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds).
func WithDefaultTolerationSeconds(notReady, unreachable int64) Option {
	return func(o *options) {
		o.catalogue.DefaultNotReadyTolerationSeconds = notReady
		o.catalogue.DefaultUnreachableTolerationSeconds = unreachable
	}
}

// WithRepairInterval sets how often the ClusterIP and NodePort allocation
// repair runs (default 3 minutes, as kube-apiserver; negative disables
// it).
func WithRepairInterval(d time.Duration) Option { return func(o *options) { o.repairEvery = d } }

// WithLogger sends the server's logs to log instead of t.Log.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// Server is a running test API server.
type Server struct {
	opts    options
	dataDir string

	mu       sync.Mutex
	etcd     *storage.Embedded
	etcdURL  string
	etcdCli  *clientv3.Client
	api      *apiserver.Server
	http     *http.Server
	served   chan struct{}
	cancel   context.CancelFunc
	addr     string
	pki      *auth.PKI
	cfg      *rest.Config
	client   kubernetes.Interface
	kubeconf string
	stopped  bool
}

type tlogWriter struct {
	mu sync.Mutex
	t  testing.TB
	// done is set once the test ended; logging after that panics in
	// testing, so late lines are dropped.
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Start runs etcd and the API server and waits until /readyz passes.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{dataDir: t.TempDir(), opts: options{catalogue: registry.DefaultOptions()}}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.log == nil {
		w := &tlogWriter{t: t}
		t.Cleanup(func() {
			w.mu.Lock()
			w.done = true
			w.mu.Unlock()
		})
		s.opts.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	t.Cleanup(s.Stop)
	if err := s.start(""); err != nil {
		t.Fatalf("apiservertest: %v", err)
	}
	return s
}

func (s *Server) start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.stopped = false

	if s.opts.shared != nil {
		s.etcdURL = s.opts.shared.EtcdURL()
	} else {
		// A restart keeps etcd's client URL when the port is still free,
		// so servers sharing this etcd reconnect to it.
		clientURL := "http://127.0.0.1:0"
		if s.etcdURL != "" {
			clientURL = s.etcdURL
		}
		cfg := storage.EmbeddedConfig{DataDir: s.dataDir, ClientURL: clientURL, PeerURL: "http://127.0.0.1:0", UnsafeNoFsync: true}
		e, err := storage.StartEmbedded(ctx, cfg, s.opts.log)
		if err != nil && clientURL != "http://127.0.0.1:0" {
			cfg.ClientURL = "http://127.0.0.1:0"
			e, err = storage.StartEmbedded(ctx, cfg, s.opts.log)
		}
		if err != nil {
			return err
		}
		s.etcd = e
		s.etcdURL = e.ClientURL()
	}
	if s.etcd != nil {
		// As `skiff server` with its embedded etcd: in process.
		s.etcdCli = s.etcd.Client()
	} else {
		// A server sharing another's etcd reaches it over the network,
		// as one on an external etcd cluster does.
		cli, err := storage.NewClient(ctx, storage.ClientConfig{Endpoints: []string{s.etcdURL}})
		if err != nil {
			s.stopLocked()
			return err
		}
		s.etcdCli = cli
	}

	pki, err := auth.EnsurePKI(s.dataDir, []string{"127.0.0.1"})
	if err != nil {
		s.stopLocked()
		return fmt.Errorf("pki: %w", err)
	}
	s.pki = pki
	spec, err := openapi.New()
	if err != nil {
		s.stopLocked()
		return fmt.Errorf("openapi: %w", err)
	}
	tc, err := spec.TypeConverter()
	if err != nil {
		s.stopLocked()
		return fmt.Errorf("openapi type converter: %w", err)
	}

	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// The old port was taken meanwhile: take any.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			s.stopLocked()
			return fmt.Errorf("listen: %w", err)
		}
	}
	s.addr = ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port

	cfg := apiserver.Config{
		Store:            storage.NewStore(s.etcdCli, s.opts.log, nil),
		Resources:        registry.Catalogue(s.opts.catalogue),
		Log:              s.opts.log,
		Authenticate:     func(r *http.Request) bool { _, ok := pki.Authenticate(r); return ok },
		TypeConverter:    tc,
		OpenAPI:          spec,
		PublicAddress:    net.ParseIP("127.0.0.1"),
		SecurePort:       port,
		NodePortBase:     s.opts.nodePortBase,
		NodePortSize:     s.opts.nodePortSize,
		BookmarkInterval: s.opts.bookmarkEvery,
		RepairInterval:   s.opts.repairEvery,
	}
	if s.opts.serviceCIDR != "" {
		_, cidr, err := net.ParseCIDR(s.opts.serviceCIDR)
		if err != nil {
			ln.Close()
			s.stopLocked()
			return fmt.Errorf("service cidr: %w", err)
		}
		cfg.ServiceCIDR = cidr
	}
	api, err := apiserver.New(cfg)
	if err != nil {
		ln.Close()
		s.stopLocked()
		return err
	}
	s.api = api
	s.http = &http.Server{Handler: api.Handler(), TLSConfig: pki.ServerTLSConfig(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.opts.log.Handler(), slog.LevelDebug)}
	s.served = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}(s.http, s.served)

	bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
	defer bcancel()
	if err := api.Bootstrap(bctx); err != nil {
		s.stopLocked()
		return err
	}

	s.cfg = pki.RESTConfig("https://" + s.addr)
	s.cfg.QPS, s.cfg.Burst = 1000, 2000
	s.kubeconf = filepath.Join(s.dataDir, "kubeconfig")
	if err := pki.WriteKubeconfig(s.kubeconf, "https://"+s.addr); err != nil {
		s.stopLocked()
		return err
	}
	if s.client, err = kubernetes.NewForConfig(rest.CopyConfig(s.cfg)); err != nil {
		s.stopLocked()
		return err
	}
	return nil
}

// Client returns a client-go clientset with admin credentials.
func (s *Server) Client() kubernetes.Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// RESTConfig returns a copy of the admin REST config.
func (s *Server) RESTConfig() *rest.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rest.CopyConfig(s.cfg)
}

// KubeconfigPath is an admin kubeconfig for kubectl.
func (s *Server) KubeconfigPath() string { return s.kubeconf }

// URL is the server's https URL.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "https://" + s.addr
}

// EtcdURL is the etcd client URL the server uses.
func (s *Server) EtcdURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcdURL
}

// DataDir is the server's data directory (etcd data, TLS, kubeconfig).
func (s *Server) DataDir() string { return s.dataDir }

// API returns the API server itself.
func (s *Server) API() *apiserver.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api
}

// Restart stops the server and starts it again on the same data directory
// and, if it is still free, the same port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	addr := s.addr
	s.stopLocked()
	s.mu.Unlock()
	if err := s.start(addr); err != nil {
		t.Fatalf("apiservertest: restart: %v", err)
	}
}

// Compact compacts etcd history up to the current revision, so that
// watches and lists at older resource versions get 410 Gone.
func (s *Server) Compact(t testing.TB) int64 {
	t.Helper()
	s.mu.Lock()
	cli := s.etcdCli
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := storage.NewStore(cli, s.opts.log, nil)
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatalf("apiservertest: read revision: %v", err)
	}
	if err := st.Compact(ctx, rev); err != nil {
		t.Fatalf("apiservertest: compact: %v", err)
	}
	return rev
}

// Stop stops the server (and its etcd unless shared). It is safe to call
// more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.stopped {
		return
	}
	s.stopped = true
	if s.api != nil {
		s.api.Close()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.http.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			s.opts.log.Warn("http shutdown", "err", err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.http.Close()
		}
		cancel()
		<-s.served
		s.http = nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.etcdCli != nil {
		s.etcdCli.Close()
		s.etcdCli = nil
	}
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
	s.api = nil
}
