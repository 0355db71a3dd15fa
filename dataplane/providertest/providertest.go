// Package providertest is the conformance suite every dataplane.Provider
// runs: real TCP and UDP sockets through ClusterIPs, NodePorts,
// LoadBalancer and external IPs on a network-namespace test bed
// (dataplane/testbed), checking the Kubernetes Service behaviours the
// providers must share.
//
// A provider package runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, func(t *testing.T, c *testbed.Cluster, n *testbed.Node) dataplane.Provider {
//			p, err := mypkg.New(...n.Config()..., n.NS.Path() ...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return p
//		})
//	}
//
// The suite needs root (it skips without, or fails when
// SKIFF_PRIVILEGED_TESTS=1).
package providertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

// Factory builds a provider for node n of test bed c. It is called once
// per node at the start of every case, and again for a node whose
// provider was closed (the restart case), which must take over the state
// the previous one left. The suite calls Sync itself; SyncLoop only in the
// case that tests it. When the case ends, the suite calls Cleanup and then
// Close on every provider it got.
type Factory func(t *testing.T, c *testbed.Cluster, n *testbed.Node) dataplane.Provider

// Ports the test bed's pods serve.
const (
	// WebPort is the TCP echo port of every pod (target of named port "web").
	WebPort = 8080
	// AltPort is a second TCP echo port (named "alt"); its server id is
	// "<pod>:alt".
	AltPort = 9090
	// DNSPort is the UDP echo port (named "dns").
	DNSPort = 5353
)

// The ranges of the suite's LoadBalancer and external IPs, which the
// client routes to node 0.
func lbPrefix() netip.Prefix  { return netip.MustParsePrefix("198.51.100.0/24") }
func extPrefix() netip.Prefix { return netip.MustParsePrefix("192.0.2.0/24") }

// Run runs every case against providers from newProvider, on one test bed
// of 2 nodes with 3 pods each.
func Run(t *testing.T, newProvider Factory) {
	testbed.RequireRoot(t)
	c := testbed.NewForTest(t, testbed.Config{Nodes: 2, PodsPerNode: 3})
	for _, p := range c.Pods() {
		for _, s := range []struct {
			id, network string
			port        uint16
		}{{p.Name, "tcp", WebPort}, {p.Name + ":alt", "tcp", AltPort}, {p.Name, "udp", DNSPort}} {
			if _, err := c.Serve(p.NS, s.id, s.network, s.port); err != nil {
				t.Fatalf("serve: %v", err)
			}
		}
	}
	// The client sends LoadBalancer and external IPs to node 0.
	for _, pfx := range []netip.Prefix{lbPrefix(), extPrefix()} {
		if err := c.RouteFromClient(pfx, c.Nodes[0]); err != nil {
			t.Fatalf("client route: %v", err)
		}
	}
	s := &suite{c: c, factory: newProvider}
	for i, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			e := s.newEnv(t, i+1)
			tc.run(t, e)
		})
	}
}

type suite struct {
	c       *testbed.Cluster
	factory Factory
}

type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}

// env is one case's providers and objects.
type env struct {
	t     *testing.T
	c     *testbed.Cluster
	s     *suite
	index int // case number: picks the case's addresses

	mu        sync.Mutex
	providers []dataplane.Provider // per node
	services  map[string]*v1.Service
	slices    map[string]*discoveryv1.EndpointSlice
}

func (s *suite) newEnv(t *testing.T, index int) *env {
	e := &env{t: t, c: s.c, s: s, index: index,
		services: make(map[string]*v1.Service), slices: make(map[string]*discoveryv1.EndpointSlice)}
	e.providers = make([]dataplane.Provider, len(s.c.Nodes))
	for i, n := range s.c.Nodes {
		e.providers[i] = s.factory(t, s.c, n)
	}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, p := range e.providers {
			if err := p.Cleanup(); err != nil {
				t.Errorf("cleanup provider of node %d: %v", i, err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("close provider of node %d: %v", i, err)
			}
		}
	})
	return e
}

// Addresses of this case: ClusterIP 10.96.<case>.<n>, LB IP
// 198.51.100.<case>, external IP 192.0.2.<case>, NodePorts from
// 30000+100*case+10*n (one per Service port).
func (e *env) clusterIP(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 96, byte(e.index), byte(n)})
}
func (e *env) lbIP() netip.Addr  { return netip.AddrFrom4([4]byte{198, 51, 100, byte(e.index)}) }
func (e *env) extIP() netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(e.index)}) }
func (e *env) nodePort(n int) uint16 {
	return uint16(30000 + 100*e.index + 10*n)
}

// service builds a Service "svc<n>" with ports web (TCP 80 -> "web"), alt
// (TCP 81 -> "alt") and dns (UDP 53 -> "dns").
func (e *env) service(n int, mods ...func(*v1.Service)) *v1.Service {
	ip := e.clusterIP(n).String()
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "conformance", Name: fmt.Sprintf("svc%d", n), ResourceVersion: "1"},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  ip,
			ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{
				{Name: "web", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("web")},
				{Name: "alt", Protocol: v1.ProtocolTCP, Port: 81, TargetPort: intstr.FromString("alt")},
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromString("dns")},
			},
		},
	}
	for _, m := range mods {
		m(svc)
	}
	return svc
}

// withNodePorts makes the Service type NodePort with NodePorts for all
// ports.
func (e *env) withNodePorts(n int) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Spec.Type == v1.ServiceTypeClusterIP {
			s.Spec.Type = v1.ServiceTypeNodePort
		}
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = int32(e.nodePort(n)) + int32(i)
		}
	}
}

// Endpoint conditions.
type cond int

const (
	ready       cond = iota // ready, serving
	notReady                // neither ready nor serving (starting, failing probes)
	terminating             // serving and terminating
	dying                   // terminating, no longer serving
)

type ep struct {
	pod  *testbed.Pod
	cond cond
}

// slice builds the EndpointSlice "svc<n>-1" for the Service's three
// ports. Its port numbers are the pods' (the named target ports
// resolved, as the EndpointSlice controller does).
func (e *env) slice(n int, eps ...ep) *discoveryv1.EndpointSlice {
	proto := func(p v1.Protocol) *v1.Protocol { return &p }
	port := func(n int32) *int32 { return &n }
	name := func(s string) *string { return &s }
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "conformance", Name: fmt.Sprintf("svc%d-1", n),
			Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc%d", n)},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: name("web"), Protocol: proto(v1.ProtocolTCP), Port: port(WebPort)},
			{Name: name("alt"), Protocol: proto(v1.ProtocolTCP), Port: port(AltPort)},
			{Name: name("dns"), Protocol: proto(v1.ProtocolUDP), Port: port(DNSPort)},
		},
	}
	for _, x := range eps {
		b := func(v bool) *bool { return &v }
		var c discoveryv1.EndpointConditions
		switch x.cond {
		case ready:
			c = discoveryv1.EndpointConditions{Ready: b(true), Serving: b(true), Terminating: b(false)}
		case notReady:
			c = discoveryv1.EndpointConditions{Ready: b(false), Serving: b(false), Terminating: b(false)}
		case terminating:
			c = discoveryv1.EndpointConditions{Ready: b(false), Serving: b(true), Terminating: b(true)}
		case dying:
			c = discoveryv1.EndpointConditions{Ready: b(false), Serving: b(false), Terminating: b(true)}
		}
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{x.pod.IP.String()},
			NodeName:   name(x.pod.Node.Name),
			Conditions: c,
		})
	}
	return sl
}

// apply hands objects to every provider (add, or update of the previous
// version with the same name) and syncs them all.
func (e *env) apply(objs ...any) {
	e.t.Helper()
	e.mu.Lock()
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.Service:
			old := e.services[o.Name]
			for _, p := range e.providers {
				if old == nil {
					p.OnServiceAdd(o)
				} else {
					p.OnServiceUpdate(old, o)
				}
			}
			e.services[o.Name] = o
		case *discoveryv1.EndpointSlice:
			old := e.slices[o.Name]
			for _, p := range e.providers {
				if old == nil {
					p.OnEndpointSliceAdd(o)
				} else {
					p.OnEndpointSliceUpdate(old, o)
				}
			}
			e.slices[o.Name] = o
		default:
			e.t.Fatalf("apply: unexpected %T", o)
		}
	}
	e.mu.Unlock()
	e.sync()
}

// deleteSlice removes a slice from every provider and syncs.
func (e *env) deleteSlice(name string) {
	e.t.Helper()
	e.mu.Lock()
	old := e.slices[name]
	delete(e.slices, name)
	for _, p := range e.providers {
		p.OnEndpointSliceDelete(old)
	}
	e.mu.Unlock()
	e.sync()
}

func (e *env) sync() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, p := range e.providers {
		if err := p.Sync(); err != nil {
			e.t.Fatalf("sync provider of node %d: %v", i, err)
		}
		// A provider that finishes part of a sync in the background
		// (the eBPF provider's clean-up of deleted backends) is waited
		// for: the cases check the state a sync leads to.
		if s, ok := p.(settler); ok {
			if err := s.FlushConntrack(); err != nil {
				e.t.Fatalf("settle provider of node %d: %v", i, err)
			}
		}
	}
}

// settler is a provider with background clean-up after a sync.
type settler interface{ FlushConntrack() error }

// restart closes every provider and replaces it with a new one that is
// given all current objects and synced, as an agent restart does.
func (e *env) restart() {
	e.t.Helper()
	e.mu.Lock()
	for i, p := range e.providers {
		if err := p.Close(); err != nil {
			e.t.Fatalf("close provider of node %d: %v", i, err)
		}
		np := e.s.factory(e.t, e.c, e.c.Nodes[i])
		for _, svc := range e.services {
			np.OnServiceAdd(svc)
		}
		for _, sl := range e.slices {
			np.OnEndpointSliceAdd(sl)
		}
		e.providers[i] = np
	}
	e.mu.Unlock()
	e.sync()
}

// requestTimeout bounds each request that should succeed.
const requestTimeout = 5 * time.Second

// refusedTimeout bounds a request that should fail at once: a refusal
// arrives in well under a millisecond, so a timeout means a black hole.
const refusedTimeout = 3 * time.Second

func (e *env) request(from *testbed.NetNS, network string, dst netip.AddrPort) testbed.Reply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := e.c.Request(ctx, from, network, dst)
	if err != nil {
		e.t.Fatalf("%s request from %s to %s: %v", network, from.Name(), dst, err)
	}
	return r
}

// servers makes n requests, each on a new connection, and returns the
// set of servers that answered.
func (e *env) servers(from *testbed.NetNS, network string, dst netip.AddrPort, n int) map[string]int {
	e.t.Helper()
	got := make(map[string]int)
	for range n {
		got[e.request(from, network, dst).Server]++
	}
	return got
}

func names(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func podNames(pods ...*testbed.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// expectOnly fails unless every answer came from one of want; with
// all, every one of want must have answered too.
func (e *env) expectOnly(what string, got map[string]int, all bool, want ...*testbed.Pod) {
	e.t.Helper()
	w := podNames(want...)
	for _, n := range names(got) {
		if !slices.Contains(w, strings.TrimSuffix(n, ":alt")) {
			e.t.Errorf("%s: got answers from %v, want only from %v", what, names(got), w)
			return
		}
	}
	if all && len(got) != len(w) {
		e.t.Errorf("%s: got answers from %v, want from each of %v", what, names(got), w)
	}
}

// expectRefused fails unless the request is refused at once rather than
// timing out: a TCP RST or ICMP unreachable, seen as ECONNREFUSED, or, for
// a client on the node itself, the kernel refusing the send with EPERM
// (what a reject rule in the OUTPUT path does to a UDP sender).
func (e *env) expectRefused(from *testbed.NetNS, network string, dst netip.AddrPort) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), refusedTimeout)
	defer cancel()
	r, err := e.c.Request(ctx, from, network, dst)
	switch {
	case err == nil:
		e.t.Errorf("%s from %s to %s: got an answer from %s, want the connection refused", network, from.Name(), dst, r.Server)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPERM):
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		e.t.Errorf("%s from %s to %s: timed out (black hole), want the connection refused at once", network, from.Name(), dst)
	default:
		e.t.Errorf("%s from %s to %s: got %v, want ECONNREFUSED", network, from.Name(), dst, err)
	}
}

// expectNoAnswer fails if a request gets an answer (it may time out or be
// refused: traffic that must not be served).
func (e *env) expectNoAnswer(from *testbed.NetNS, network string, dst netip.AddrPort) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if r, err := e.c.Request(ctx, from, network, dst); err == nil {
		e.t.Errorf("%s from %s to %s: got an answer from %s, want none", network, from.Name(), dst, r.Server)
	}
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
