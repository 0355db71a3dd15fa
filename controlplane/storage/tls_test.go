package storage

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-project/skiff/controlplane/storage/storagetest"
)

// TestNewClientTLS runs etcd as an external cluster is usually run:
// clients over HTTPS, client certificates required. NewClient with the CA,
// certificate and key connects and reads back what it wrote; with a piece
// missing or from another CA it fails within its dial timeout, and says
// why.
func TestNewClientTLS(t *testing.T) {
	dir := t.TempDir()
	certs := storagetest.WriteCerts(t, filepath.Join(dir, "pki"))
	other := storagetest.WriteCerts(t, filepath.Join(dir, "other-pki"))
	endpoint := storagetest.StartTLSEtcd(t, dir, certs)
	if !strings.HasPrefix(endpoint, "https://127.0.0.1:") {
		t.Fatalf("got endpoint %s, want https://127.0.0.1:PORT", endpoint)
	}

	t.Run("client certificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := NewClient(ctx, ClientConfig{
			Endpoints: []string{endpoint}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile,
			DialTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer c.Close()
		if _, err := c.Put(ctx, "/skiff-test/tls", "yes"); err != nil {
			t.Fatalf("put: %v", err)
		}
		resp, err := c.Get(ctx, "/skiff-test/tls")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
			t.Fatalf("get: got %v, want one key with value yes", resp.Kvs)
		}
	})

	// A port nothing listens on: etcd not up (yet).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()

	// When etcd refuses the client's certificate, TLS 1.3 tells the client
	// only after its side of the handshake is done: it reads etcd's alert,
	// or finds the connection closed when it writes.
	refused := func(alert string) []string { return []string{alert, "broken pipe", "connection reset by peer"} }
	const dialTimeout = 2 * time.Second
	fails := []struct {
		name     string
		endpoint string
		cfg      ClientConfig
		// The error message contains one of want.
		want []string
	}{
		{"no client certificate", endpoint, ClientConfig{CAFile: certs.CAFile}, refused("certificate required")},
		{"client certificate from another CA", endpoint, ClientConfig{CAFile: certs.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}, refused("unknown certificate authority")},
		{"server from another CA", endpoint, ClientConfig{CAFile: other.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}, []string{"certificate signed by unknown authority"}},
		{"no TLS files", endpoint, ClientConfig{}, []string{"certificate signed by unknown authority"}},
		{"nothing listening", closed, ClientConfig{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}, []string{"connection refused"}},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Endpoints = []string{tc.endpoint}
			cfg.DialTimeout = dialTimeout
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				c, err := NewClient(context.Background(), cfg)
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("NewClient still connecting after 30s with a dial timeout of %s", dialTimeout)
			}
			took := time.Since(start)
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("got a client, want an error")
			}
			if !slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(err.Error(), w) }) {
				t.Fatalf("got %q, want an error saying one of %q", err, tc.want)
			}
			// It retries until the dial timeout, as it must for an etcd
			// that is still starting, rather than give up at the first
			// failed attempt.
			if took < dialTimeout {
				t.Fatalf("failed after %s, want it to keep trying for the dial timeout of %s", took, dialTimeout)
			}
		})
	}
}
