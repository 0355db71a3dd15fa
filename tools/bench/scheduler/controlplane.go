package scheduler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/apiserver"
	"github.com/skiff-project/skiff/controlplane/apiserver/openapi"
	"github.com/skiff-project/skiff/controlplane/auth"
	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// controlPlane is an embedded etcd and the API server over HTTPS on
// 127.0.0.1, in this process, wired as controlplane/apiserver/apiservertest
// wires them.
type controlPlane struct {
	log    *slog.Logger
	etcd   *storage.Embedded
	cli    *clientv3.Client
	api    *apiserver.Server
	http   *http.Server
	served chan struct{}
	cancel context.CancelFunc
	cfg    *rest.Config
	// metrics is the API server's registry, read for the request
	// breakdown.
	metrics *prometheus.Registry
}

func startControlPlane(ctx context.Context, dir string, noFsync bool, log *slog.Logger) (_ *controlPlane, err error) {
	ctx, cancel := context.WithCancel(ctx)
	cp := &controlPlane{log: log, cancel: cancel, metrics: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			cp.stop()
		}
	}()
	cp.etcd, err = storage.StartEmbedded(ctx, storage.EmbeddedConfig{
		DataDir: dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", UnsafeNoFsync: noFsync,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	// The in-process client, as `skiff server` uses with its embedded etcd.
	cp.cli = cp.etcd.Client()
	pki, err := auth.EnsurePKI(dir, []string{"127.0.0.1"})
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	spec, err := openapi.New()
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	tc, err := spec.TypeConverter()
	if err != nil {
		return nil, fmt.Errorf("openapi type converter: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	cp.api, err = apiserver.New(apiserver.Config{
		Store:         storage.NewStore(cp.cli, log, nil),
		Resources:     registry.Resources(),
		Log:           log,
		Authenticate:  func(r *http.Request) bool { _, ok := pki.Authenticate(r); return ok },
		TypeConverter: tc,
		OpenAPI:       spec,
		PublicAddress: addr.IP,
		SecurePort:    addr.Port,
		Metrics:       cp.metrics,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("api server: %w", err)
	}
	cp.http = &http.Server{Handler: cp.api.Handler(), TLSConfig: pki.ServerTLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	cp.served = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}(cp.http, cp.served)
	bctx, bcancel := context.WithTimeout(ctx, time.Minute)
	defer bcancel()
	if err := cp.api.Bootstrap(bctx); err != nil {
		return nil, fmt.Errorf("bootstrap api server: %w", err)
	}
	cp.cfg = pki.RESTConfig("https://" + addr.String())
	return cp, nil
}

// restConfig returns a client configuration with upstream scheduler_perf's
// rate limits and the protobuf encoding kube-scheduler uses.
func (cp *controlPlane) restConfig(agent string) *rest.Config {
	c := rest.CopyConfig(cp.cfg)
	c.QPS, c.Burst = 5000, 5000
	c.UserAgent = agent
	// Its own connection, as the load generator and the scheduler are
	// separate processes in a real cluster: client-go would otherwise
	// share one HTTP/2 connection among every client in this process. A
	// config with a Dial function is never shared.
	c.Dial = (&net.Dialer{}).DialContext
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return c
}

func (cp *controlPlane) stop() {
	if cp.api != nil {
		cp.api.Close()
	}
	if cp.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cp.http.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			cp.log.Warn("http shutdown", "err", err)
		}
		if ctx.Err() != nil {
			cp.http.Close()
		}
		cancel()
		<-cp.served
	}
	if cp.cancel != nil {
		cp.cancel()
	}
	if cp.cli != nil {
		cp.cli.Close()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
}
