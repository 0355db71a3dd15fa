package providertest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/dataplane/testbed"
)

// Requests per check where the answer set matters: with three endpoints
// picked at random, 30 requests miss one with probability 3*(2/3)^30,
// about 1e-5.
const spread = 30

func cases() []testCase {
	return []testCase{
		{"ClusterIP from a pod and from the node host, TCP and UDP, several ports", clusterIP},
		{"NodePort from the external client", nodePort},
		{"LoadBalancer IP and external IP from the external client", loadBalancer},
		{"new connections go to ready endpoints only", readyOnly},
		{"terminating endpoints keep connections and serve only as fallback", terminatingEndpoints},
		{"endpoint removal removes its conntrack state", endpointRemoval},
		{"applications see the Service address; unconnected UDP follows endpoint changes", serviceAddress},
		{"sessionAffinity ClientIP", sessionAffinity},
		{"externalTrafficPolicy Local and Cluster", externalTrafficPolicy},
		{"internalTrafficPolicy Local", internalTrafficPolicy},
		{"a Service without endpoints refuses at once", noEndpoints},
		{"hairpin: a pod reaches itself through its Service", hairpin},
		{"provider restart under an open connection", restart},
		{"SyncLoop applies recorded changes", syncLoop},
	}
}

func pods(e *env) (n0, n1 []*testbed.Pod) { return e.c.Nodes[0].Pods, e.c.Nodes[1].Pods }

func clusterIP(t *testing.T, e *env) {
	n0, n1 := pods(e)
	e.apply(e.service(1), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}, ep{n1[1], ready}))
	vip := e.clusterIP(1)
	backends := []*testbed.Pod{n0[1], n1[0], n1[1]}
	for _, from := range []struct {
		name string
		ns   *testbed.NetNS
	}{{"pod", n0[0].NS}, {"node host", e.c.Nodes[0].NS}, {"pod on the other node", n1[2].NS}} {
		e.expectOnly(from.name+" tcp web", e.servers(from.ns, "tcp", ap(vip, 80), spread), true, backends...)
		e.expectOnly(from.name+" udp dns", e.servers(from.ns, "udp", ap(vip, 53), spread), true, backends...)
		alt := e.request(from.ns, "tcp", ap(vip, 81))
		if !strings.HasSuffix(alt.Server, ":alt") {
			t.Errorf("%s tcp alt: got answer from %s, want a pod's alt port server", from.name, alt.Server)
		}
	}
	// A pod keeps its own address towards a ClusterIP.
	if r := e.request(n0[0].NS, "tcp", ap(vip, 80)); r.Source.Addr() != n0[0].IP {
		t.Errorf("pod client: server %s saw %s, want the pod's own IP %s", r.Server, r.Source.Addr(), n0[0].IP)
	}
	// A port the Service does not have is not load-balanced.
	e.expectNoAnswer(n0[0].NS, "tcp", ap(vip, 82))
}

func nodePort(t *testing.T, e *env) {
	n0, n1 := pods(e)
	e.apply(e.service(1, e.withNodePorts(1)), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}))
	for _, node := range e.c.Nodes {
		e.expectOnly("tcp via node "+node.Name, e.servers(e.c.Client, "tcp", ap(node.IP, e.nodePort(1)), spread), true, n0[1], n1[0])
		e.expectOnly("udp via node "+node.Name, e.servers(e.c.Client, "udp", ap(node.IP, e.nodePort(1)+2), spread), true, n0[1], n1[0])
	}
}

func loadBalancer(t *testing.T, e *env) {
	n0, n1 := pods(e)
	lb, ext := e.lbIP(), e.extIP()
	e.apply(e.service(1, e.withNodePorts(1), func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.ExternalIPs = []string{ext.String()}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: lb.String()}}
	}), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}))
	e.expectOnly("tcp via LoadBalancer IP", e.servers(e.c.Client, "tcp", ap(lb, 80), spread), true, n0[1], n1[0])
	e.expectOnly("udp via LoadBalancer IP", e.servers(e.c.Client, "udp", ap(lb, 53), spread), true, n0[1], n1[0])
	e.expectOnly("tcp via external IP", e.servers(e.c.Client, "tcp", ap(ext, 80), spread), true, n0[1], n1[0])
	e.expectOnly("udp via external IP", e.servers(e.c.Client, "udp", ap(ext, 53), spread), true, n0[1], n1[0])
	// From inside the cluster too (a pod on the node the client routes to).
	e.expectOnly("pod tcp via LoadBalancer IP", e.servers(n0[0].NS, "tcp", ap(lb, 80), 5), false, n0[1], n1[0])
}

func readyOnly(t *testing.T, e *env) {
	n0, n1 := pods(e)
	e.apply(e.service(1), e.slice(1, ep{n0[1], ready}, ep{n1[0], notReady}, ep{n1[1], ready}, ep{n1[2], dying}))
	vip := e.clusterIP(1)
	e.expectOnly("tcp", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread), true, n0[1], n1[1])
	e.expectOnly("udp", e.servers(n0[0].NS, "udp", ap(vip, 53), spread), true, n0[1], n1[1])
}

func terminatingEndpoints(t *testing.T, e *env) {
	n0, n1 := pods(e)
	vip := e.clusterIP(1)
	ctx := context.Background()
	e.apply(e.service(1), e.slice(1, ep{n1[0], ready}))
	conn, err := e.c.Dial(ctx, n0[0].NS, "tcp", ap(vip, 80))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if r, err := conn.Request(ctx); err != nil || r.Server != n1[0].Name {
		t.Fatalf("open connection: got %+v, %v, want an answer from %s", r, err, n1[0].Name)
	}

	// The backend starts terminating while another one is ready.
	e.apply(e.slice(1, ep{n1[0], terminating}, ep{n1[1], ready}))
	if r, err := conn.Request(ctx); err != nil || r.Server != n1[0].Name {
		t.Errorf("established connection to the terminating endpoint: got %+v, %v, want it to keep working with %s", r, err, n1[0].Name)
	}
	e.expectOnly("new connections with a ready endpoint left", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread/2), true, n1[1])

	// No ready endpoint left: the serving terminating ones take new connections.
	e.apply(e.slice(1, ep{n1[0], terminating}, ep{n1[1], dying}))
	e.expectOnly("new connections with terminating endpoints only", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread/2), true, n1[0])
	if r, err := conn.Request(ctx); err != nil || r.Server != n1[0].Name {
		t.Errorf("established connection after fallback: got %+v, %v, want it to keep working with %s", r, err, n1[0].Name)
	}
}

func endpointRemoval(t *testing.T, e *env) {
	n0, n1 := pods(e)
	vip := e.clusterIP(1)
	ctx := context.Background()
	e.apply(e.service(1), e.slice(1, ep{n1[0], ready}))

	// A UDP client that keeps sending from one socket.
	udp, err := e.c.Dial(ctx, n0[0].NS, "udp", ap(vip, 53))
	if err != nil {
		t.Fatalf("dial udp: %v", err)
	}
	defer udp.Close()
	for i := range 3 {
		if r, err := udp.Request(ctx); err != nil || r.Server != n1[0].Name {
			t.Fatalf("udp request %d: got %+v, %v, want an answer from %s", i, r, err, n1[0].Name)
		}
	}

	// The endpoint is replaced; the old pod still runs and would answer.
	e.apply(e.slice(1, ep{n1[1], ready}))
	answered := false
	for attempt := 0; attempt < 3 && !answered; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := udp.Request(rctx)
		cancel()
		switch {
		case err != nil:
			t.Logf("udp request after removal, attempt %d: %v", attempt, err)
		case r.Server == n1[0].Name:
			t.Fatalf("udp request after removal: got an answer from the removed endpoint %s, want %s (stale conntrack entry)", r.Server, n1[1].Name)
		case r.Server != n1[1].Name:
			t.Fatalf("udp request after removal: got an answer from %s, want %s", r.Server, n1[1].Name)
		default:
			answered = true
		}
	}
	if !answered {
		t.Fatalf("udp client got no answer from the new endpoint %s after the old one was removed", n1[1].Name)
	}
	e.expectOnly("new tcp connections after removal", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread/3), true, n1[1])

	// The same from the node host, whose connected UDP sockets the socket
	// LB translates once, at connect(): such a socket must not keep the
	// removed endpoint. It may be destroyed (the application sees
	// ECONNABORTED and connects again, as with Cilium) or be corrected per
	// packet (iptables, TC); it never gets the old endpoint's answer.
	e.apply(e.slice(1, ep{n1[0], ready}))
	host, err := e.c.Dial(ctx, e.c.Nodes[0].NS, "udp", ap(vip, 53))
	if err != nil {
		t.Fatalf("dial udp from the node host: %v", err)
	}
	defer host.Close()
	if r, err := host.Request(ctx); err != nil || r.Server != n1[0].Name {
		t.Fatalf("node host udp request: got %+v, %v, want an answer from %s", r, err, n1[0].Name)
	}
	e.apply(e.slice(1, ep{n1[1], ready}))
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	r, err := host.Request(rctx)
	cancel()
	switch {
	case err != nil:
		t.Logf("node host udp socket after the removal: %v (destroyed; connecting again)", err)
		if r := e.request(e.c.Nodes[0].NS, "udp", ap(vip, 53)); r.Server != n1[1].Name {
			t.Errorf("node host udp, new socket: answered by %s, want %s", r.Server, n1[1].Name)
		}
	case r.Server != n1[1].Name:
		t.Errorf("node host udp socket after the removal: answered by %s, want %s (the removed endpoint kept)", r.Server, n1[1].Name)
	}

	// Removing the whole slice: refused at once.
	e.deleteSlice("svc1-1")
	e.expectRefused(n0[0].NS, "tcp", ap(vip, 80))
}

// serviceAddress: getpeername() and recvfrom() show the Service address,
// never the backend's (the socket LB's getpeername4 and recvmsg4 hooks;
// per-packet reverse NAT elsewhere), and an unconnected UDP socket, which
// sends each datagram on its own, stops reaching an endpoint once it
// leaves the Service, even while it still backs another Service.
func serviceAddress(t *testing.T, e *env) {
	n0, n1 := pods(e)
	vip := e.clusterIP(1)
	ctx := context.Background()
	e.apply(e.service(1), e.slice(1, ep{n1[0], ready}), e.service(2), e.slice(2, ep{n1[0], ready}))

	for _, network := range []string{"tcp", "udp"} {
		port := uint16(80)
		if network == "udp" {
			port = 53
		}
		conn, err := e.c.Dial(ctx, n0[0].NS, network, ap(vip, port))
		if err != nil {
			t.Fatalf("dial %s: %v", network, err)
		}
		if got := conn.RemoteAddr(); got != ap(vip, port) {
			t.Errorf("%s getpeername: %s, want the Service address %s", network, got, ap(vip, port))
		}
		if r, err := conn.Request(ctx); err != nil || r.Server != n1[0].Name {
			t.Errorf("%s request: got %+v, %v, want an answer from %s", network, r, err, n1[0].Name)
		}
		conn.Close()
	}

	pc, err := e.c.ListenUDP(n0[0].NS)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	request := func(what string) testbed.Reply {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		r, from, err := pc.Request(rctx, ap(vip, 53))
		if err != nil {
			t.Fatalf("unconnected udp %s: %v", what, err)
		}
		if from != ap(vip, 53) {
			t.Errorf("unconnected udp %s: recvfrom says %s, want the Service address %s", what, from, ap(vip, 53))
		}
		return r
	}
	for i := range 3 {
		if r := request(fmt.Sprintf("request %d", i)); r.Server != n1[0].Name {
			t.Fatalf("unconnected udp request %d: answered by %s, want %s", i, r.Server, n1[0].Name)
		}
	}
	// n1[0] leaves Service 1 but still backs Service 2 (and still runs).
	e.apply(e.slice(1, ep{n1[1], ready}))
	for i := range 3 {
		if r := request(fmt.Sprintf("request %d after the endpoint change", i)); r.Server != n1[1].Name {
			t.Fatalf("unconnected udp request %d after the endpoint change: answered by %s, want %s (a stale per-socket or conntrack choice)", i, r.Server, n1[1].Name)
		}
	}
}

func sessionAffinity(t *testing.T, e *env) {
	n0, n1 := pods(e)
	vip := e.clusterIP(1)
	e.apply(e.service(1, func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		timeout := int32(600)
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &timeout}}
	}), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}, ep{n1[1], ready}))
	for _, client := range []*testbed.Pod{n0[0], n1[2]} {
		for _, network := range []string{"tcp", "udp"} {
			port := uint16(80)
			if network == "udp" {
				port = 53
			}
			got := e.servers(client.NS, network, ap(vip, port), spread/2)
			if len(got) != 1 {
				t.Errorf("%s from %s: got answers from %v, want all from one endpoint", network, client.Name, names(got))
			}
			e.expectOnly(network+" from "+client.Name, got, false, n0[1], n1[0], n1[1])
		}
	}
}

func externalTrafficPolicy(t *testing.T, e *env) {
	n0, n1 := pods(e)
	node0, node1 := e.c.Nodes[0], e.c.Nodes[1]
	local := func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }
	// svc1: Local, endpoints on both nodes. svc2: Local, endpoint on node 1
	// only. svc3: Cluster, endpoint on node 1 only.
	e.apply(
		e.service(1, e.withNodePorts(1), local), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}),
		e.service(2, e.withNodePorts(2), local), e.slice(2, ep{n1[1], ready}),
		e.service(3, e.withNodePorts(3)), e.slice(3, ep{n1[1], ready}),
	)
	for _, c := range []struct {
		node    *testbed.Node
		backend *testbed.Pod
	}{{node0, n0[1]}, {node1, n1[0]}} {
		for _, network := range []string{"tcp", "udp"} {
			port := e.nodePort(1)
			if network == "udp" {
				port += 2
			}
			for range 5 {
				r := e.request(e.c.Client, network, ap(c.node.IP, port))
				if r.Server != c.backend.Name {
					t.Errorf("Local, %s via %s: got answer from %s, want the node-local %s", network, c.node.Name, r.Server, c.backend.Name)
				}
				if r.Source.Addr() != testbed.ClientIP {
					t.Errorf("Local, %s via %s: server saw %s, want the client's IP %s", network, c.node.Name, r.Source.Addr(), testbed.ClientIP)
				}
			}
		}
	}
	// No local endpoint: not sent to another node.
	e.expectNoAnswer(e.c.Client, "tcp", ap(node0.IP, e.nodePort(2)))
	if r := e.request(e.c.Client, "tcp", ap(node1.IP, e.nodePort(2))); r.Server != n1[1].Name {
		t.Errorf("Local via the endpoint's node: got %s, want %s", r.Server, n1[1].Name)
	}
	// Cluster: the remote endpoint is reached from either node.
	for _, node := range e.c.Nodes {
		for _, network := range []string{"tcp", "udp"} {
			port := e.nodePort(3)
			if network == "udp" {
				port += 2
			}
			if r := e.request(e.c.Client, network, ap(node.IP, port)); r.Server != n1[1].Name {
				t.Errorf("Cluster, %s via %s: got %s, want %s", network, node.Name, r.Server, n1[1].Name)
			}
		}
	}
}

func internalTrafficPolicy(t *testing.T, e *env) {
	n0, n1 := pods(e)
	local := v1.ServiceInternalTrafficPolicyLocal
	itp := func(s *v1.Service) { s.Spec.InternalTrafficPolicy = &local }
	e.apply(e.service(1, itp), e.slice(1, ep{n0[1], ready}, ep{n1[0], ready}))
	vip := e.clusterIP(1)
	e.expectOnly("from node 0", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread/2), true, n0[1])
	e.expectOnly("from node 0, udp", e.servers(n0[2].NS, "udp", ap(vip, 53), spread/2), true, n0[1])
	e.expectOnly("from node 1", e.servers(n1[2].NS, "tcp", ap(vip, 80), spread/2), true, n1[0])
	e.expectOnly("from node 1 host", e.servers(e.c.Nodes[1].NS, "tcp", ap(vip, 80), spread/2), true, n1[0])
}

func noEndpoints(t *testing.T, e *env) {
	n0, _ := pods(e)
	vip := e.clusterIP(1)
	e.apply(e.service(1, e.withNodePorts(1)))
	for _, from := range []*testbed.NetNS{n0[0].NS, e.c.Nodes[0].NS} {
		e.expectRefused(from, "tcp", ap(vip, 80))
		e.expectRefused(from, "udp", ap(vip, 53))
	}
	e.expectRefused(e.c.Client, "tcp", ap(e.c.Nodes[1].IP, e.nodePort(1)))
	e.expectRefused(e.c.Client, "udp", ap(e.c.Nodes[1].IP, e.nodePort(1)+2))
	// Endpoints that are not ready do not count.
	e.apply(e.slice(1, ep{n0[1], notReady}))
	e.expectRefused(n0[0].NS, "tcp", ap(vip, 80))
}

func hairpin(t *testing.T, e *env) {
	n0, n1 := pods(e)
	e.apply(e.service(1), e.slice(1, ep{n0[1], ready}),
		e.service(2), e.slice(2, ep{n1[0], ready}))
	for _, c := range []struct {
		pod *testbed.Pod
		svc int
	}{{n0[1], 1}, {n1[0], 2}} {
		for _, network := range []string{"tcp", "udp"} {
			port := uint16(80)
			if network == "udp" {
				port = 53
			}
			if r := e.request(c.pod.NS, network, ap(e.clusterIP(c.svc), port)); r.Server != c.pod.Name {
				t.Errorf("%s hairpin from %s: got answer from %s, want itself", network, c.pod.Name, r.Server)
			}
		}
	}
}

func restart(t *testing.T, e *env) {
	n0, n1 := pods(e)
	vip := e.clusterIP(1)
	ctx := context.Background()
	e.apply(e.service(1, e.withNodePorts(1)), e.slice(1, ep{n1[0], ready}, ep{n1[1], ready}))
	fromPod, err := e.c.Dial(ctx, n0[0].NS, "tcp", ap(vip, 80))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer fromPod.Close()
	fromClient, err := e.c.Dial(ctx, e.c.Client, "tcp", ap(e.c.Nodes[0].IP, e.nodePort(1)))
	if err != nil {
		t.Fatalf("dial node port: %v", err)
	}
	defer fromClient.Close()
	first := map[*testbed.Conn]string{}
	for _, c := range []*testbed.Conn{fromPod, fromClient} {
		r, err := c.Request(ctx)
		if err != nil {
			t.Fatalf("request before restart: %v", err)
		}
		first[c] = r.Server
	}
	e.restart()
	for name, c := range map[string]*testbed.Conn{"pod via ClusterIP": fromPod, "client via NodePort": fromClient} {
		for i := range 3 {
			r, err := c.Request(ctx)
			if err != nil {
				t.Fatalf("%s: request %d after restart: %v (want the connection kept, not reset)", name, i, err)
			}
			if r.Server != first[c] {
				t.Errorf("%s: after restart got answers from %s, want the same endpoint %s", name, r.Server, first[c])
			}
		}
	}
	e.expectOnly("new connections after restart", e.servers(n0[0].NS, "tcp", ap(vip, 80), spread/2), false, n1[0], n1[1])
}

func syncLoop(t *testing.T, e *env) {
	n0, n1 := pods(e)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range e.providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.SyncLoop(ctx)
		}()
	}
	// Registered after the env's cleanup, so it runs before it: the loops
	// are gone before the providers are cleaned up.
	t.Cleanup(func() { cancel(); wg.Wait() })
	vip := e.clusterIP(1)
	e.mu.Lock()
	svc, sl := e.service(1), e.slice(1, ep{n1[0], ready})
	for _, p := range e.providers {
		p.OnServiceAdd(svc)
		p.OnEndpointSliceAdd(sl)
	}
	e.services[svc.Name], e.slices[sl.Name] = svc, sl
	e.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		r, err := e.c.Request(rctx, n0[0].NS, "tcp", ap(vip, 80))
		rcancel()
		if err == nil && r.Server == n1[0].Name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SyncLoop did not program the recorded Service within 30s: last %+v, %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
