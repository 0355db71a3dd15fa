package ebpf

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/dataplane"
)

// xdpMD mirrors struct xdp_md (the test-run context).
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

func (e *lbEnv) runXDP(t *testing.T, pkt []byte, ifindex int) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(pkt)+512)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	if ifindex != 0 {
		opts.Context = xdpMD{DataEnd: uint32(len(pkt)), IngressIfindex: uint32(ifindex)}
	}
	ret, err := e.objs.progs[progXDP].Run(opts)
	if err != nil {
		t.Fatalf("run xdp: %v", err)
	}
	return ret, opts.DataOut
}

func nodePortSvc(name string, proto v1.Protocol, nodePort uint16) *dataplane.ServicePort {
	return &dataplane.ServicePort{Name: spName(name, proto), Protocol: proto, Port: 80, NodePort: nodePort,
		ClusterIPs: []netip.Addr{vip}}
}

func TestXDPLocalBackend(t *testing.T) {
	for _, local := range []bool{false, true} {
		name := map[bool]string{false: "policy-cluster", true: "policy-local"}[local]
		t.Run(name, func(t *testing.T) {
			e := newLBEnv(t)
			sp := nodePortSvc("np", v1.ProtocolTCP, 30080)
			sp.ExternalPolicyLocal = local
			e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
				sp.Name: {ep(beLocal, 8080, true)},
			})
			in := buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50000, dport: 30080, proto: protoTCP})
			ret, out := e.runXDP(t, in, 0)
			if ret != xdpPass {
				t.Fatalf("got verdict %d, want XDP_PASS (%d)", ret, xdpPass)
			}
			e.expectBackendCounter(t, beLocal, 8080, 1, uint64(len(in)))
			p := parsePacket(t, out)
			if p.src != extCli || p.dst != beLocal || p.dport != 8080 || p.sport != 50000 {
				t.Errorf("DNAT: got %s:%d -> %s:%d, want client kept, -> %s:8080", p.src, p.sport, p.dst, p.dport, beLocal)
			}
			// The backend's reply leaves through its veth: TC restores
			// the NodePort address.
			ret, out = e.run(t, progFromPod, buildPacket(pktSpec{src: beLocal, dst: extCli, sport: 8080, dport: 50000,
				proto: protoTCP, tcpFlags: 0x12}))
			if ret != tcOK {
				t.Fatalf("reply: got verdict %d, want %d", ret, tcOK)
			}
			p = parsePacket(t, out)
			if p.src != nodeIP || p.sport != 30080 || p.dst != extCli || p.dport != 50000 {
				t.Errorf("reply: got %s:%d -> %s:%d, want %s:30080 -> %s:50000", p.src, p.sport, p.dst, p.dport, nodeIP, extCli)
			}
		})
	}
}

func TestXDPPolicyLocalWithoutLocalBackend(t *testing.T) {
	e := newLBEnv(t)
	sp := nodePortSvc("np", v1.ProtocolTCP, 30080)
	sp.ExternalPolicyLocal = true
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beRemote, 8080, false)},
	})
	ret, _ := e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50000, dport: 30080, proto: protoTCP}), 0)
	if ret != xdpDrop {
		t.Errorf("got verdict %d, want XDP_DROP (%d) like kube-proxy", ret, xdpDrop)
	}
	if n := len(e.ctEntries(t)); n != 0 {
		t.Errorf("conntrack: got %d entries, want none", n)
	}
	e.expectDrops(t, map[string]uint64{"no_local_endpoint": 1})
}

// expectDrops checks the datapath's drop counters: want by reason, every
// other reason zero.
func (e *lbEnv) expectDrops(t *testing.T, want map[string]uint64) {
	t.Helper()
	got, err := e.maps.Drops()
	if err != nil {
		t.Fatal(err)
	}
	for i, reason := range DropReasons {
		if reason != "" && got[i] != want[reason] {
			t.Errorf("drops %s: got %d, want %d", reason, got[i], want[reason])
		}
	}
}

// Drops are counted, not silent: a remote NodePort flow with no SNAT port
// left, and one with no route to its backend.
func TestXDPCountsDrops(t *testing.T) {
	e := newLBEnvWith(t, loadOptions{NodeIP: nodeIP, MaglevSize: 251, SNATMin: 40000, SNATMax: 40000})
	sp := nodePortSvc("np", v1.ProtocolTCP, 30080)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beRemote, 8080, false)},
	})
	// The first flow takes the only SNAT port; this namespace has no route
	// to the backend, so the fib lookup fails.
	if ret, _ := e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50000, dport: 30080, proto: protoTCP}), 0); ret != xdpDrop {
		t.Errorf("first flow: got verdict %d, want XDP_DROP (%d): no route", ret, xdpDrop)
	}
	// A second flow finds no free SNAT port.
	if ret, _ := e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50001, dport: 30080, proto: protoTCP}), 0); ret != xdpDrop {
		t.Errorf("second flow: got verdict %d, want XDP_DROP (%d): no SNAT port", ret, xdpDrop)
	}
	e.expectDrops(t, map[string]uint64{"no_route": 1, "snat_ports": 1})
}

func TestXDPNoEndpoints(t *testing.T) {
	e := newLBEnv(t)
	tcp := nodePortSvc("empty", v1.ProtocolTCP, 30080)
	udp := nodePortSvc("empty", v1.ProtocolUDP, 30053)
	e.program(t, []*dataplane.ServicePort{tcp, udp}, nil)
	ret, out := e.runXDP(t, buildPacket(pktSpec{srcMAC: podMAC, dstMAC: hostMAC, src: extCli, dst: nodeIP,
		sport: 50000, dport: 30080, proto: protoTCP, seq: 77}), 0)
	if ret != xdpTX {
		t.Fatalf("tcp: got verdict %d, want XDP_TX (%d)", ret, xdpTX)
	}
	p := parsePacket(t, out)
	if p.tcpFlags != 0x14 || p.src != nodeIP || p.dst != extCli || p.ack != 78 || p.sport != 30080 || p.dstMAC != podMAC {
		t.Errorf("tcp: got %+v, want RST|ACK from %s:30080 acking 78", p, nodeIP)
	}
	ret, out = e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50000, dport: 30053, proto: protoUDP,
		payload: []byte("x")}), 0)
	if ret != xdpTX {
		t.Fatalf("udp: got verdict %d, want XDP_TX (%d)", ret, xdpTX)
	}
	if p := parsePacket(t, out); p.proto != 1 || p.icmpType != 3 || p.icmpCode != 3 || p.dst != extCli {
		t.Errorf("udp: got %+v, want ICMP port unreachable to %s", p, extCli)
	}
}

func TestXDPMaglev(t *testing.T) {
	e := newLBEnv(t)
	sp := nodePortSvc("np", v1.ProtocolTCP, 30080)
	var eps []dataplane.Endpoint
	for i := 0; i < 9; i++ {
		eps = append(eps, ep(netip.AddrFrom4([4]byte{10, 244, 1, byte(40 + i)}), 8080, true))
	}
	// The table is installed (509 entries for 5 backends), updated in
	// place when a backend goes, replaced by a larger one (1,021) for 9
	// backends and by the configured 251 for 2: XDP follows Maglev's
	// table each time.
	for _, n := range []int{5, 4, 9, 2} {
		e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: eps[:n]})
		ext := e.rec.ports[sp.Name].cluster
		table, err := e.rec.maglevTable(e.rec.sets.get(ext).slots)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{5: 509, 4: 509, 9: 1021, 2: 251}[n]; len(table) != want {
			t.Fatalf("%d backends: table of %d entries, want %d", n, len(table), want)
		}
		for port := uint16(50000); port < 50050; port++ {
			_, out := e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: port + uint16(100*n), dport: 30080, proto: protoTCP}), 0)
			got := parsePacket(t, out).dst
			h := hashFlow(be32(extCli), be32(nodeIP), be16(port+uint16(100*n)), be16(30080), protoTCP)
			want := e.rec.byID.get(table[h%uint32(len(table))]).key.addr()
			if got != want {
				t.Errorf("%d backends, port %d: got backend %s, want Maglev's %s", n, port, got, want)
			}
		}
	}
}

func TestXDPRemoteBackendSNAT(t *testing.T) {
	e := newLBEnv(t)
	sp := nodePortSvc("np", v1.ProtocolUDP, 30053)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beRemote, 5353, false)},
	})
	const peerMAC, cliMAC = "02:00:00:00:02:02", "02:00:00:00:01:64"
	inFreshNetNS(t, func() {
		up := setupUplink(t, nodeIP.String()+"/24",
			map[string]string{"192.168.50.3": peerMAC, extCli.String(): cliMAC},
			map[string]string{"10.244.2.0/24": "192.168.50.3"})
		ret, out := e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: 50000, dport: 30053,
			proto: protoUDP, payload: []byte("query")}), up.ifindex)
		if ret != xdpTX {
			t.Fatalf("got verdict %d, want XDP_TX (%d)", ret, xdpTX)
		}
		p := parsePacket(t, out)
		if p.src != nodeIP || p.dst != beRemote || p.dport != 5353 || p.sport < 40000 || p.sport > 60999 {
			t.Errorf("SNAT+DNAT: got %s:%d -> %s:%d, want %s:[40000-60999] -> %s:5353", p.src, p.sport, p.dst, p.dport, nodeIP, beRemote)
		}
		if net.HardwareAddr(p.dstMAC[:]).String() != peerMAC || net.HardwareAddr(p.srcMAC[:]).String() != up.mac.String() {
			t.Errorf("MACs: got %x -> %x, want %s -> %s", p.srcMAC, p.dstMAC, up.mac, peerMAC)
		}
		if p.ttl != 63 {
			t.Errorf("ttl: got %d, want 63", p.ttl)
		}
		// The reply from the remote backend comes back to the uplink
		// and is translated back to the client.
		ret, out = e.runXDP(t, buildPacket(pktSpec{src: beRemote, dst: nodeIP, sport: 5353, dport: p.sport,
			proto: protoUDP, payload: []byte("answer")}), up.ifindex)
		if ret != xdpTX {
			t.Fatalf("reply: got verdict %d, want XDP_TX (%d)", ret, xdpTX)
		}
		r := parsePacket(t, out)
		if r.src != nodeIP || r.sport != 30053 || r.dst != extCli || r.dport != 50000 {
			t.Errorf("reply: got %s:%d -> %s:%d, want %s:30053 -> %s:50000", r.src, r.sport, r.dst, r.dport, nodeIP, extCli)
		}
		if net.HardwareAddr(r.dstMAC[:]).String() != cliMAC {
			t.Errorf("reply dst MAC: got %x, want %s", r.dstMAC, cliMAC)
		}
	})
	// Removing the backend removes the SNAT state too (UDP included).
	e.program(t, []*dataplane.ServicePort{sp}, nil)
	if n := len(e.ctEntries(t)); n != 0 {
		t.Errorf("conntrack after backend removal: got %d entries, want 0", n)
	}
}
