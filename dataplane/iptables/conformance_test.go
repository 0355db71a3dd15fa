package iptables

import (
	"testing"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/providertest"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

// TestConformance runs the shared provider suite against iptables in the
// test bed's node namespaces.
func TestConformance(t *testing.T) {
	testbed.RequireRoot(t)
	testbed.RequireCommands(t, "iptables", "iptables-save", "iptables-restore")
	providertest.Run(t, func(t *testing.T, c *testbed.Cluster, n *testbed.Node) dataplane.Provider {
		p, err := New(Config{
			Node:   n.Config(),
			NetNS:  n.NS.Path(),
			Logger: testbed.TestLogger(t),
		})
		if err != nil {
			t.Fatalf("new iptables provider for %s: %v", n.Name, err)
		}
		return p
	})
}
