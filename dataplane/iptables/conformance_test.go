package iptables

import (
	"testing"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/providertest"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

// TestConformance runs the shared provider suite against iptables in the
// test bed's node namespaces, with the installed (nf_tables) iptables and
// with the legacy one the large-scale benchmarks use.
func TestConformance(t *testing.T) {
	for _, b := range []struct {
		name    string
		backend Backend
	}{{"default", BackendDefault}, {"legacy", BackendLegacy}} {
		t.Run(b.name, func(t *testing.T) {
			testbed.RequireRoot(t)
			testbed.RequireCommands(t, b.backend.Programs()...)
			providertest.Run(t, func(t *testing.T, c *testbed.Cluster, n *testbed.Node) dataplane.Provider {
				p, err := New(Config{
					Node:    n.Config(),
					NetNS:   n.NS.Path(),
					Backend: b.backend,
					Logger:  testbed.TestLogger(t),
				})
				if err != nil {
					t.Fatalf("new iptables provider for %s: %v", n.Name, err)
				}
				return p
			})
		})
	}
}
