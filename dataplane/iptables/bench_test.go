package iptables

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/skiff-project/skiff/dataplane/testbed"
)

// benchObjects returns n ClusterIP Services with one TCP port and an
// EndpointSlice of two endpoints each (a node-local and a remote one).
func benchObjects(n int, node string) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	svcs := make([]*v1.Service, n)
	slices := make([]*discoveryv1.EndpointSlice, n)
	for i := range n {
		name := fmt.Sprintf("svc%d", i)
		svcs[i] = makeService("bench", name, func(s *v1.Service) {
			s.Spec.ClusterIP = netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}).String()
			s.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}
		})
		slices[i] = benchSlice(i, 0, node)
	}
	return svcs, slices
}

func benchSlice(i, gen int, node string) *discoveryv1.EndpointSlice {
	return makeSlice("bench", fmt.Sprintf("svc%d", i), 1, func(s *discoveryv1.EndpointSlice) {
		for k, n := range []string{node, "elsewhere"} {
			ip := netip.AddrFrom4([4]byte{10, 128 + byte(i>>16) + byte(64*k), byte(i >> 8), byte(i) + byte(gen)})
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip.String()}, NodeName: ptr(n)})
		}
		s.Ports = slicePort("http", v1.ProtocolTCP, 8080)
	})
}

// BenchmarkProgramming measures the provider against real iptables in a
// network namespace: a full sync of N Services (new provider, empty
// tables) and a partial sync after one endpoint change at N Services.
// Needs root. kube-proxy takes seconds at 30,000 Services too, with legacy
// iptables; the nf_tables iptables-restore of iptables 1.8.9 grows much
// faster than linearly, so it runs up to 2,000 Services only.
func BenchmarkProgramming(b *testing.B) {
	testbed.RequireRoot(b)
	c := testbed.NewForTest(b, testbed.Config{Nodes: 1, PodsPerNode: 0})
	node := c.Nodes[0]
	for _, bc := range []struct {
		backend Backend
		sizes   []int
	}{
		{BackendNFT, []int{1, 1000, 2000}},
		{BackendLegacy, []int{1, 1000, 10000, 30000}},
	} {
		b.Run("backend="+string(bc.backend), func(b *testing.B) {
			testbed.RequireCommands(b, bc.backend.Programs()...)
			benchProgramming(b, node, bc.backend, bc.sizes)
		})
	}
}

func benchProgramming(b *testing.B, node *testbed.Node, backend Backend, sizes []int) {
	for _, n := range sizes {
		svcs, slices := benchObjects(n, node.Name)
		newProvider := func() *Provider {
			p, err := New(Config{Node: node.Config(), NetNS: node.NS.Path(), Backend: backend})
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			for i := range svcs {
				p.OnServiceAdd(svcs[i])
				p.OnEndpointSliceAdd(slices[i])
			}
			return p
		}
		b.Run(fmt.Sprintf("services=%d/full", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				p := newProvider()
				b.StartTimer()
				if err := p.Sync(); err != nil {
					b.Fatalf("Sync: %v", err)
				}
				b.StopTimer()
				if err := p.Cleanup(); err != nil {
					b.Fatalf("Cleanup: %v", err)
				}
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("services=%d/endpoint-change", n), func(b *testing.B) {
			p := newProvider()
			if err := p.Sync(); err != nil {
				b.Fatalf("Sync: %v", err)
			}
			b.Cleanup(func() { p.Cleanup() })
			gen := 0
			for b.Loop() {
				gen++
				old := slices[n/2]
				p.OnEndpointSliceUpdate(old, benchSlice(n/2, gen%2, node.Name))
				if err := p.Sync(); err != nil {
					b.Fatalf("Sync: %v", err)
				}
			}
		})
	}
}
