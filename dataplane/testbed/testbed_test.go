package testbed

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	c := NewForTest(t, Config{Nodes: 2, PodsPerNode: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if got := len(c.Pods()); got != 4 {
		t.Fatalf("got %d pods, want 4", got)
	}
	for _, p := range c.Pods() {
		for _, network := range []string{"tcp", "udp"} {
			if _, err := p.Serve(network, 8080); err != nil {
				t.Fatalf("serve: %v", err)
			}
		}
	}
	if _, err := c.Serve(c.Nodes[1].NS, "node-1-host", "tcp", 9000); err != nil {
		t.Fatalf("serve on node: %v", err)
	}
	p00, p01, p10 := c.Nodes[0].Pods[0], c.Nodes[0].Pods[1], c.Nodes[1].Pods[0]

	tests := []struct {
		name       string
		from       *NetNS
		network    string
		dst        netip.AddrPort
		wantServer string
		wantSource netip.Addr
	}{
		{"pod to pod on the same node, tcp", p00.NS, "tcp", netip.AddrPortFrom(p01.IP, 8080), p01.Name, p00.IP},
		{"pod to pod on another node, tcp", p00.NS, "tcp", netip.AddrPortFrom(p10.IP, 8080), p10.Name, p00.IP},
		{"pod to pod on another node, udp", p10.NS, "udp", netip.AddrPortFrom(p01.IP, 8080), p01.Name, p10.IP},
		{"node host to local pod", c.Nodes[0].NS, "tcp", netip.AddrPortFrom(p00.IP, 8080), p00.Name, c.Nodes[0].IP},
		{"node host to remote pod", c.Nodes[0].NS, "udp", netip.AddrPortFrom(p10.IP, 8080), p10.Name, c.Nodes[0].IP},
		{"client to node", c.Client, "tcp", netip.AddrPortFrom(c.Nodes[1].IP, 9000), "node-1-host", ClientIP},
		{"pod to its own IP", p00.NS, "tcp", netip.AddrPortFrom(p00.IP, 8080), p00.Name, p00.IP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Request(ctx, tt.from, tt.network, tt.dst)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if r.Server != tt.wantServer || r.Source.Addr() != tt.wantSource {
				t.Errorf("got reply from %s seeing %s, want %s seeing %s", r.Server, r.Source, tt.wantServer, tt.wantSource)
			}
		})
	}

	t.Run("long-lived connection keeps its source port", func(t *testing.T) {
		cn, err := c.Dial(ctx, p00.NS, "tcp", netip.AddrPortFrom(p10.IP, 8080))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer cn.Close()
		for i := range 3 {
			r, err := cn.Request(ctx)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if r.Source != cn.LocalAddr() {
				t.Errorf("request %d: server saw %s, want %s", i, r.Source, cn.LocalAddr())
			}
		}
	})

	t.Run("closed port refuses tcp and udp", func(t *testing.T) {
		for _, network := range []string{"tcp", "udp"} {
			_, err := c.Request(ctx, p00.NS, network, netip.AddrPortFrom(p10.IP, 9999))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%s: got %v, want ECONNREFUSED", network, err)
			}
		}
	})

	t.Run("commands run in the namespace", func(t *testing.T) {
		out, err := c.Nodes[1].NS.Run(ctx, "ip", "-o", "-4", "addr", "show", "dev", c.Nodes[1].Uplink)
		if err != nil {
			t.Fatalf("ip addr: %v", err)
		}
		if !strings.Contains(string(out), c.Nodes[1].IP.String()+"/24") {
			t.Errorf("got %q, want the node IP %s/24", out, c.Nodes[1].IP)
		}
	})
}

func TestCloseRemovesEverything(t *testing.T) {
	RequireRoot(t)
	prefix := "sktbclose" + strings.ReplaceAll(t.Name(), "/", "")[:4]
	c, err := New(Config{Prefix: prefix, Nodes: 1, PodsPerNode: 1, Logger: TestLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { CleanupPrefix(prefix + "-") })
	if _, err := c.Nodes[0].Pods[0].Serve("tcp", 80); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := c.Dial(context.Background(), c.Nodes[0].NS, "tcp", netip.AddrPortFrom(c.Nodes[0].Pods[0].IP, 80)); err != nil {
		t.Fatalf("dial: %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(NetNSDir, prefix+"-*"))
	if len(names) != 4 {
		t.Fatalf("got namespaces %v, want 4 (fabric, client, node, pod)", names)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	names, _ = filepath.Glob(filepath.Join(NetNSDir, prefix+"-*"))
	if len(names) != 0 {
		t.Fatalf("after Close: got namespaces %v, want none", names)
	}
	// A leftover with the prefix is removed by the next New with it.
	if _, err := createNetNS(prefix + "-leftover"); err != nil {
		t.Fatalf("create leftover: %v", err)
	}
	c2, err := New(Config{Prefix: prefix, Nodes: 1, PodsPerNode: 0, Logger: TestLogger(t)})
	if err != nil {
		t.Fatalf("New over leftovers: %v", err)
	}
	defer c2.Close()
	if _, err := os.Stat(filepath.Join(NetNSDir, prefix+"-leftover")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover: got %v, want it removed", err)
	}
}
