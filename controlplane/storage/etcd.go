package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// EmbeddedConfig configures an embedded single-member etcd.
type EmbeddedConfig struct {
	// DataDir holds etcd's data (created if missing).
	DataDir string
	// ClientURL and PeerURL to listen on; port 0 picks a free port.
	// Defaults: http://127.0.0.1:2379 and http://127.0.0.1:2380.
	ClientURL string
	PeerURL   string
	// ReadyTimeout bounds the wait for etcd to serve (default 60s).
	ReadyTimeout time.Duration
	// SnapshotCount is the number of applied entries between raft
	// snapshots; fewer keep less of the raft log in memory
	// (default 1000).
	SnapshotCount uint64
	// QuotaBackendBytes is the backend size limit (default 2 GiB).
	QuotaBackendBytes int64
	// UnsafeNoFsync disables fsync. Tests only: a crash loses data.
	UnsafeNoFsync bool
}

// Embedded is a running embedded etcd.
type Embedded struct {
	etcd      *embed.Etcd
	clientURL string
	log       *slog.Logger
	stopped   chan struct{}
}

// StartEmbedded starts etcd in cfg.DataDir and waits until it serves. On
// any failure it stops what it started and returns the error.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: data dir is empty")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = "http://127.0.0.1:2379"
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = "http://127.0.0.1:2380"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.SnapshotCount == 0 {
		cfg.SnapshotCount = 1000
	}
	if cfg.QuotaBackendBytes == 0 {
		cfg.QuotaBackendBytes = 2 << 30
	}
	curl, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client url: %w", err)
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: peer url: %w", err)
	}
	dir := filepath.Join(cfg.DataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = "skiff"
	ec.Dir = dir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.SnapshotCount = cfg.SnapshotCount
	ec.SnapshotCatchUpEntries = cfg.SnapshotCount / 2
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.MaxRequestBytes = 8 << 20
	// Watches get a progress notification at least this often, which the
	// API server turns into bookmarks.
	ec.WatchProgressNotifyInterval = 5 * time.Second
	// The API server compacts; etcd must not do it on its own.
	ec.AutoCompactionRetention = "0"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.LogLevel = "error"
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("embedded etcd: invalid config: %w", err)
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: start: %w", err)
	}
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: failed while starting: %w", err)
	case <-timer.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after %s", cfg.ReadyTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", ctx.Err())
	}
	em := &Embedded{etcd: e, log: log, stopped: make(chan struct{})}
	if len(e.Clients) > 0 {
		em.clientURL = "http://" + e.Clients[0].Addr().String()
	} else {
		em.clientURL = cfg.ClientURL
	}
	go func() {
		select {
		case err, ok := <-e.Err():
			if ok && err != nil {
				log.Error("embedded etcd failed", "err", err)
			}
		case <-em.stopped:
		}
	}()
	return em, nil
}

// ClientURL is the URL clients reach etcd at (the bound port when the
// configured one was 0).
func (e *Embedded) ClientURL() string { return e.clientURL }

// Client returns a client that calls this etcd's server in process:
// requests and watch events pass as Go values, with none of the gRPC
// encoding, HTTP/2 framing and loopback socket writes a networked client
// pays on both ends (about a third of the allocations per pod write in
// `skiff bench scheduler`). The embedded etcd is a single member, so the
// leader checks a networked client asks for have nothing to guard. Values
// it returns may be shared with etcd and with other watchers of the same
// keys: callers must not modify them. Close the client before the server.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Close stops etcd and waits for it to release its data directory.
func (e *Embedded) Close() {
	select {
	case <-e.stopped:
		return
	default:
	}
	close(e.stopped)
	e.etcd.Close()
}

// ClientConfig configures a connection to etcd.
type ClientConfig struct {
	Endpoints []string
	// CAFile, CertFile and KeyFile configure TLS; all empty means plain.
	CAFile   string
	CertFile string
	KeyFile  string
	// DialTimeout bounds the first connection (default 20s).
	DialTimeout time.Duration
}

// NewClient connects to etcd and checks it answers.
func NewClient(ctx context.Context, cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd client: no endpoints")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 20 * time.Second
	}
	var tlsConfig *tls.Config
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		info := transport.TLSInfo{TrustedCAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
		var err error
		if tlsConfig, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd client: tls: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          cfg.Endpoints,
		TLS:                tlsConfig,
		DialTimeout:        cfg.DialTimeout,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 8 << 20,
		MaxCallRecvMsgSize: 1 << 30,
		Context:            context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: connect %v: %w", cfg.Endpoints, err)
	}
	// clientv3.New does not wait for a connection (gRPC's NewClient ignores
	// WithBlock): the first request does, for up to DialTimeout. It is made
	// on the connection directly because clientv3's own calls turn a
	// timeout into a bare "context deadline exceeded", dropping gRPC's last
	// connection error (a TLS handshake failure, a refused connection),
	// which says why.
	sctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	probe := &etcdserverpb.RangeRequest{Key: []byte("/skiff-revision-probe"), CountOnly: true}
	if _, err := etcdserverpb.NewKVClient(c.ActiveConnection()).Range(sctx, probe, grpc.WaitForReady(true)); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd client: %v not answering within %s: %w", cfg.Endpoints, cfg.DialTimeout, err)
	}
	return c, nil
}
