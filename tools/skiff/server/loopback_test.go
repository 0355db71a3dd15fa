package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestLoopbackClientsHaveOwnConnections checks that clients built from the
// loopback config each open a connection of their own, where client-go
// would otherwise put every client with the same TLS settings on one.
func TestLoopbackClientsHaveOwnConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"major":"1","minor":"32","gitVersion":"v1.32.0"}`))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	base := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}

	versions := func(cfgs ...*rest.Config) int32 {
		t.Helper()
		conns.Store(0)
		for _, cfg := range cfgs {
			c, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Discovery().RESTClient().Get().AbsPath("/version").DoRaw(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return conns.Load()
	}
	// The premise: client-go shares one connection between equal configs.
	if n := versions(rest.CopyConfig(base), rest.CopyConfig(base)); n != 1 {
		t.Fatalf("two clients of equal configs opened %d connections, want the 1 client-go shares", n)
	}
	lb := &Loopback{}
	lb.set(base)
	if n := versions(lb.Config(), lb.Config(), lb.Config()); n != 3 {
		t.Errorf("three loopback clients opened %d connections, want 3", n)
	}
}
