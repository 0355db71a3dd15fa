package ebpf

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/providertest"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

// TestConformance runs the providers' shared suite (the same one the
// iptables provider runs) against the eBPF provider, with socket-level LB
// and with per-packet TC only.
func TestConformance(t *testing.T) {
	for _, socketLB := range []bool{true, false} {
		mode := map[bool]string{true: "socket-lb", false: "tc"}[socketLB]
		t.Run(mode, func(t *testing.T) {
			requirePrivileged(t)
			base := filepath.Join(BPFFSRoot, "skiff-test-"+randSuffix(t))
			t.Cleanup(func() {
				if err := removeAllPins(base); err != nil {
					t.Errorf("remove pins: %v", err)
				}
			})
			var once sync.Map // per test bed: fabric prepared
			providertest.Run(t, func(ct *testing.T, c *testbed.Cluster, n *testbed.Node) dataplane.Provider {
				if _, done := once.LoadOrStore(c, true); !done {
					prepareFabric(t, c)
				}
				p, err := New(Config{
					Node:       n.Config(),
					NetNS:      n.NS.Path(),
					PinPath:    filepath.Join(base, n.Name),
					Uplinks:    []string{n.Uplink},
					SocketLB:   socketLB,
					MapSizes:   MapSizes{Services: 4096, Sets: 4096, Slots: 16384, Backends: 16384, Conntrack: 16384, Affinity: 4096, Sockets: 16384, NetNS: 256},
					MaglevSize: 1021,
					Logger:     testbed.TestLogger(ct),
				})
				if err != nil {
					ct.Fatalf("new ebpf provider for %s: %v", n.Name, err)
				}
				for _, pod := range n.Pods {
					if err := p.AddPod(Pod{HostVeth: pod.HostVeth, NetNS: pod.NS.Path()}); err != nil {
						ct.Fatalf("add pod %s: %v", pod.Name, err)
					}
				}
				return p
			})
		})
	}
}
