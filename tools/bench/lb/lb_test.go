package lb

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-project/skiff/dataplane/ebpf"
	"github.com/skiff-project/skiff/dataplane/iptables"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string
		services   []int
		ipt        []int
		legacyFrom int
	}{
		{name: "defaults: iptables at every size, legacy from 10,000", services: []int{1, 1000, 10000, 30000},
			ipt: []int{1, 1000, 10000, 30000}, legacyFrom: 10000},
		{name: "iptables at some sizes", args: []string{"--services", "1,5000", "--iptables-services", "1"},
			services: []int{1, 5000}, ipt: []int{1}, legacyFrom: 10000},
		{name: "never legacy", args: []string{"--iptables-legacy-from", "0"}, services: []int{1, 1000, 10000, 30000},
			ipt: []int{1, 1000, 10000, 30000}},
		{name: "bad size", args: []string{"--services", "1,x"}, wantErr: `bad --services entry "x"`},
		{name: "size out of range", args: []string{"--iptables-services", "70000"}, wantErr: "bad --iptables-services entry"},
		{name: "unknown mode", args: []string{"--modes", "ipvs"}, wantErr: `unknown mode "ipvs"`},
		{name: "too few connections", args: []string{"--conns", "10"}, wantErr: "--conns must be at least 100"},
		{name: "nice out of range", args: []string{"--nice", "-21"}, wantErr: "--nice within -20..19"},
		{name: "stray argument", args: []string{"30000"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !slices.Equal(o.services, tt.services) || !slices.Equal(o.ipt, tt.ipt) || o.legacyFrom != tt.legacyFrom {
				t.Errorf("got services %v, iptables %v, legacy from %d; want %v, %v, %d", o.services, o.ipt, o.legacyFrom,
					tt.services, tt.ipt, tt.legacyFrom)
			}
		})
	}
}

func TestIPTablesBackend(t *testing.T) {
	tests := []struct {
		legacyFrom, n int
		want          iptables.Backend
		wantName      string
	}{
		{10000, 1, iptables.BackendDefault, "default (nf_tables)"},
		{10000, 9999, iptables.BackendDefault, "default (nf_tables)"},
		{10000, 10000, iptables.BackendLegacy, "legacy"},
		{10000, 30000, iptables.BackendLegacy, "legacy"},
		{0, 30000, iptables.BackendDefault, "default (nf_tables)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("from=%d/n=%d", tt.legacyFrom, tt.n), func(t *testing.T) {
			b := &bench{o: options{legacyFrom: tt.legacyFrom}, iptablesDefault: "nf_tables"}
			got, name := b.iptablesBackend(tt.n)
			if got != tt.want || name != tt.wantName {
				t.Errorf("got %q %q, want %q %q", got, name, tt.want, tt.wantName)
			}
		})
	}
}

// requirePrivileged skips without root, or fails when
// SKIFF_PRIVILEGED_TESTS=1 says the test must run.
func requirePrivileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SKIFF_PRIVILEGED_TESTS") == "1" {
		t.Fatal("privileged test cannot run (SKIFF_PRIVILEGED_TESTS=1): not root")
	}
	t.Skip("skipping privileged test: not root (set SKIFF_PRIVILEGED_TESTS=1 to require it)")
}

// TestProbe runs the latency probe against the echo server between two
// namespaces of a test bed: a pod answers; a port without a server is
// refused on every connection, and the error says so.
func TestProbe(t *testing.T) {
	requirePrivileged(t)
	c := testbed.NewForTest(t, testbed.Config{Nodes: 1, PodsPerNode: 1})
	pod := c.Nodes[0].Pods[0]
	s, err := startEcho(pod.NS.Path(), pod.Name, 8080, -5)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.close(); err != nil {
			t.Errorf("close echo server: %v", err)
		}
	}()
	ctx := context.Background()
	from := c.Nodes[0].NS.Path()
	l, err := probe(ctx, from, netip.AddrPortFrom(pod.IP, 8080), 5, 200, -5)
	if err != nil {
		t.Fatal(err)
	}
	if l.Conns != 200 || l.Errors != 0 {
		t.Fatalf("got %d connections and %d errors (%s), want 200 and 0", l.Conns, l.Errors, l.FirstError)
	}
	if l.P50US <= 0 || l.P99US < l.P50US || l.ConnsPerSec <= 0 {
		t.Errorf("got p50 %.0f µs, p99 %.0f µs, %.0f conn/s, want 0 < p50 <= p99 and a rate", l.P50US, l.P99US, l.ConnsPerSec)
	}
	// The client closes first: TIME_WAIT is the client's, none is left
	// on the server for a later point's connections to run into.
	if n := timeWait(t, pod.NS.Path()); n != 0 {
		t.Errorf("server: got %d sockets in TIME_WAIT, want 0", n)
	}
	if n := timeWait(t, from); n < 200 {
		t.Errorf("client: got %d sockets in TIME_WAIT, want at least 200", n)
	}
	l, err = probe(ctx, from, netip.AddrPortFrom(pod.IP, 8081), 0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Conns != 0 || l.Errors != 100 || !strings.Contains(l.FirstError, "connection refused") {
		t.Errorf("no server: got %d connections, %d errors, first %q; want 0, 100, connection refused", l.Conns, l.Errors, l.FirstError)
	}
}

// TestLeftovers checks that a run refuses to start beside another and
// removes the pin directories an interrupted run left.
func TestLeftovers(t *testing.T) {
	requirePrivileged(t)
	unlock, err := lockRun()
	if err != nil {
		t.Fatalf("lock: %v (is a benchmark running?)", err)
	}
	defer unlock()
	if _, err := lockRun(); err == nil || !strings.Contains(err.Error(), "another skiff bench lb is running") {
		t.Errorf("second lock: got %v, want another-run error", err)
	}
	if err := ebpf.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	old := []string{pinBase(), filepath.Join(ebpf.BPFFSRoot, "skiff-bench-0123abcd")}
	for _, d := range old {
		if err := os.MkdirAll(filepath.Join(d, "node-0"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(ebpf.BPFFSRoot, "skiff-test-leftovers-"+strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(keep, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(keep)
	if err := cleanupLeftovers(testbed.TestLogger(t)); err != nil {
		t.Fatal(err)
	}
	for _, d := range old {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s: got %v, want it removed", d, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("%s is not the benchmark's: got %v, want it kept", keep, err)
	}
}

// timeWait counts the TCP sockets in TIME_WAIT in a network namespace.
func timeWait(t *testing.T, nsPath string) int {
	t.Helper()
	var n int
	err := testbed.Do(nsPath, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/tcp")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 && f[3] == "06" {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestListenDefersAccept: the echo servers' listeners complete a
// connection only when its first data arrives (TCP_DEFER_ACCEPT), which
// keeps the backend kernel's ACK/data race out of the measurement.
func TestListenDefersAccept(t *testing.T) {
	fd, err := listenTCP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
	if err != nil {
		t.Fatal(err)
	}
	if v <= 0 {
		t.Errorf("TCP_DEFER_ACCEPT is %d, want it set", v)
	}
}
