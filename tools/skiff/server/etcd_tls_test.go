package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/controlplane/storage"
	"github.com/skiff-project/skiff/controlplane/storage/storagetest"
)

// TestServeOnExternalEtcdOverTLS runs `skiff server` with --etcd-endpoints
// and the --etcd-cafile, --etcd-certfile and --etcd-keyfile flags against
// an etcd that serves clients over HTTPS and requires client certificates.
// An object created through the API is in that etcd, and a second run of
// the server on the same etcd serves it with the same resourceVersion.
func TestServeOnExternalEtcdOverTLS(t *testing.T) {
	// Run lowers the GC percent when GOGC is unset; the test process keeps
	// its own.
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	t.Cleanup(func() { debug.SetGCPercent(gc) })

	etcdDir := t.TempDir()
	certs := storagetest.WriteCerts(t, filepath.Join(etcdDir, "pki"))
	endpoint := storagetest.StartTLSEtcd(t, etcdDir, certs)
	dataDir := t.TempDir()
	args := []string{
		"--data-dir", dataDir,
		"--etcd-endpoints", endpoint,
		"--etcd-cafile", certs.CAFile,
		"--etcd-certfile", certs.ClientCertFile,
		"--etcd-keyfile", certs.ClientKeyFile,
		"--bind-address", "127.0.0.1",
		"--secure-port", "0",
		"--disable-scheduler",
		"--disable-controller-manager",
		"--log-level", "warn",
	}
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	stop := runServer(t, args)
	c := waitReady(ctx, t, kubeconfig, stop)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "tls-check", Namespace: "default"},
		Data:       map[string]string{"etcd": "external"},
	}
	created, err := c.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	stop.stop(t)
	if _, err := os.Stat(filepath.Join(dataDir, "etcd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s/etcd: got %v, want no embedded etcd data", dataDir, err)
	}

	// The object is in the external etcd, at the revision the API server
	// gave as its resourceVersion.
	cli, err := storage.NewClient(ctx, storage.ClientConfig{
		Endpoints: []string{endpoint}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile,
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/registry/configmaps/default/tls-check")
	if err != nil {
		t.Fatalf("etcd get: %v", err)
	}
	if len(resp.Kvs) != 1 || strconv.FormatInt(resp.Kvs[0].ModRevision, 10) != created.ResourceVersion {
		t.Fatalf("etcd get: got %d keys %v, want one at revision %s", len(resp.Kvs), resp.Kvs, created.ResourceVersion)
	}

	// The second run writes a new kubeconfig (its port differs); remove the
	// old one so the wait reads the new one.
	if err := os.Remove(kubeconfig); err != nil {
		t.Fatal(err)
	}
	stop = runServer(t, args)
	c = waitReady(ctx, t, kubeconfig, stop)
	got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "tls-check", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if got.ResourceVersion != created.ResourceVersion || got.UID != created.UID || got.Data["etcd"] != "external" {
		t.Fatalf("get after restart: got resourceVersion %s uid %s data %v, want %s %s %v",
			got.ResourceVersion, got.UID, got.Data, created.ResourceVersion, created.UID, created.Data)
	}
	stop.stop(t)
}

// runningServer is a `skiff server` run in the test process.
type runningServer struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// runServer starts Run(args) and stops it when the test ends, if the test
// did not stop it before.
func runServer(t *testing.T, args []string) *runningServer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningServer{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- Run(ctx, args) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels the server's context, as SIGTERM does, and waits for it to
// return.
func (s *runningServer) stop(t *testing.T) {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("stop: got %v, want a clean stop", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	})
}

// waitReady waits for the kubeconfig the server writes and for /readyz to
// pass through it, and returns a clientset on it.
func waitReady(ctx context.Context, t *testing.T, kubeconfig string, s *runningServer) kubernetes.Interface {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for {
		c, err := readyClient(ctx, kubeconfig)
		if err == nil {
			return c
		}
		last = err
		select {
		case err := <-s.done:
			s.done <- err // for stop
			t.Fatalf("server exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after a minute: %v", last)
		}
	}
}

func readyClient(ctx context.Context, kubeconfig string) (kubernetes.Interface, error) {
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	if string(body) != "ok" {
		return nil, errors.New("/readyz: " + string(body))
	}
	return c, nil
}
