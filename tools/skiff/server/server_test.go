package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in         string
		base, size int
		ok         bool
	}{
		{"30000-32767", 30000, 2768, true},
		{"1-1", 1, 1, true},
		{"32767-30000", 0, 0, false},
		{"30000", 0, 0, false},
		{"0-10", 0, 0, false},
		{"a-b", 0, 0, false},
	}
	for _, tc := range tests {
		base, size, err := parsePortRange(tc.in)
		if (err == nil) != tc.ok || base != tc.base || size != tc.size {
			t.Errorf("parsePortRange(%q): got %d %d %v, want %d %d ok=%v", tc.in, base, size, err, tc.base, tc.size, tc.ok)
		}
	}
}

// TestServeStartsAndStopsOnCancel runs the whole server (embedded etcd,
// API server) on free ports, uses the kubeconfig it writes, and stops it
// by cancelling the context, as SIGTERM does.
func TestServeStartsAndStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	_, cidr, _ := net.ParseCIDR("10.96.0.0/12")
	opts := Options{
		DataDir: dir, EtcdClientURL: "http://127.0.0.1:0", EtcdPeerURL: "http://127.0.0.1:0",
		BindAddress: "127.0.0.1", SecurePort: 0, ServiceCIDR: cidr, NodePortBase: 30000, NodePortSize: 2768,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, opts, slog.New(slog.NewTextHandler(testWriter{t}, nil))) }()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	var c kubernetes.Interface
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			if c, err = kubernetes.NewForConfig(cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err == nil {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("server not serving after a minute")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: got %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s")
	}
}
