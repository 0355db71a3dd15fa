package ebpf

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/dataplane"
)

// BPF_PROG_TEST_RUN tests: the real programs on crafted packets, with the
// maps programmed by the reconciler through the real map layer.

const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
	xdpDrop    = 1
	xdpPass    = 2
	xdpTX      = 3
)

var (
	vip      = netip.MustParseAddr("10.96.0.10")
	nodeIP   = netip.MustParseAddr("192.168.50.2")
	client   = netip.MustParseAddr("10.244.1.5")
	extCli   = netip.MustParseAddr("192.168.50.100")
	beLocal  = netip.MustParseAddr("10.244.1.20")
	beLocal2 = netip.MustParseAddr("10.244.1.21")
	beRemote = netip.MustParseAddr("10.244.2.30")
	podMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x05}
	hostMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

type lbEnv struct {
	objs  *objects
	maps  *Bpf
	rec   *reconciler
	names map[dataplane.ServicePortName]bool
}

func newLBEnv(t *testing.T) *lbEnv {
	t.Helper()
	return newLBEnvWith(t, loadOptions{NodeIP: nodeIP, MaglevSize: 251})
}

func newLBEnvWith(t *testing.T, o loadOptions) *lbEnv {
	t.Helper()
	objs, m := loadTestObjects(t, o)
	node := dataplane.NodeConfig{Name: "n1", NodeIPs: []netip.Addr{nodeIP}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &lbEnv{objs: objs, maps: m, rec: newReconciler(m, node, MapSizes{Services: 1024, Sets: 1024, Slots: 4096,
		Backends: 4096, Conntrack: 4096, Affinity: 1024, Sockets: 1024, NetNS: 64}, 251, log),
		names: map[dataplane.ServicePortName]bool{}}
}

func spName(name string, proto v1.Protocol) dataplane.ServicePortName {
	return dataplane.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "default", Name: name}, Protocol: proto}
}

func ep(ip netip.Addr, port uint16, local bool) dataplane.Endpoint {
	return dataplane.Endpoint{IP: ip, Port: port, Ready: true, Serving: true, Local: local, NodeName: map[bool]string{true: "n1", false: "n2"}[local]}
}

// program replaces the whole programmed state with svcs/eps.
func (e *lbEnv) program(t *testing.T, svcs []*dataplane.ServicePort, eps map[dataplane.ServicePortName][]dataplane.Endpoint) {
	t.Helper()
	u := dataplane.Update{Services: map[dataplane.ServicePortName]*dataplane.ServicePort{}, Endpoints: eps,
		Changed: map[dataplane.ServicePortName]struct{}{}}
	for n := range e.names {
		u.Changed[n] = struct{}{}
	}
	for _, sp := range svcs {
		u.Services[sp.Name] = sp
		u.Changed[sp.Name] = struct{}{}
		e.names[sp.Name] = true
	}
	if _, err := e.rec.sync(u, false); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func (e *lbEnv) run(t *testing.T, prog string, pkt []byte) (uint32, []byte) {
	t.Helper()
	p := e.objs.progs[prog]
	out := make([]byte, len(pkt)+256)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	ret, err := p.Run(opts)
	if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	return ret, opts.DataOut
}

func (e *lbEnv) ctEntries(t *testing.T) map[CTKey]CTVal {
	t.Helper()
	out := map[CTKey]CTVal{}
	if err := forEach(e.maps.ct, func(k CTKey, v CTVal) { out[k] = v }); err != nil {
		t.Fatal(err)
	}
	return out
}

func clusterSvc(name string, proto v1.Protocol, port uint16) *dataplane.ServicePort {
	return &dataplane.ServicePort{Name: spName(name, proto), Protocol: proto, Port: port, ClusterIPs: []netip.Addr{vip}}
}

func TestTCServiceNAT(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proto     v1.Protocol
		noUDPCsum bool
	}{
		{"tcp", v1.ProtocolTCP, false},
		{"udp", v1.ProtocolUDP, false},
		{"udp-no-checksum", v1.ProtocolUDP, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLBEnv(t)
			sp := clusterSvc("web", tc.proto, 80)
			e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
				sp.Name: {ep(beLocal, 8080, true)},
			})
			proto, _ := protoNum(tc.proto)
			in := buildPacket(pktSpec{srcMAC: podMAC, dstMAC: hostMAC, src: client, dst: vip, sport: 40000, dport: 80,
				proto: proto, payload: []byte("ping"), noUDPCsum: tc.noUDPCsum})
			ret, out := e.run(t, progFromPod, in)
			if ret != tcOK {
				t.Fatalf("from_pod: got verdict %d, want %d", ret, tcOK)
			}
			p := parsePacket(t, out)
			if p.src != client || p.sport != 40000 || p.dst != beLocal || p.dport != 8080 {
				t.Errorf("DNAT: got %s:%d -> %s:%d, want %s:40000 -> %s:8080", p.src, p.sport, p.dst, p.dport, client, beLocal)
			}
			if tc.noUDPCsum && p.udpCsum != 0 {
				t.Errorf("UDP checksum: got %#x, want 0 (absent stays absent)", p.udpCsum)
			}
			ct := e.ctEntries(t)
			if len(ct) != 2 {
				t.Fatalf("conntrack: got %d entries, want 2: %+v", len(ct), ct)
			}
			// The reply from the backend, towards the pod: reverse NAT.
			reply := buildPacket(pktSpec{srcMAC: hostMAC, dstMAC: podMAC, src: beLocal, dst: client, sport: 8080, dport: 40000,
				proto: proto, tcpFlags: 0x12, payload: []byte("pong"), noUDPCsum: tc.noUDPCsum})
			ret, out = e.run(t, progToPod, reply)
			if ret != tcOK {
				t.Fatalf("to_pod: got verdict %d, want %d", ret, tcOK)
			}
			p = parsePacket(t, out)
			if p.src != vip || p.sport != 80 || p.dst != client || p.dport != 40000 {
				t.Errorf("reverse NAT: got %s:%d -> %s:%d, want %s:80 -> %s:40000", p.src, p.sport, p.dst, p.dport, vip, client)
			}
			// Counters: one translated packet on the service.
			ids := e.rec.portSets()[sp.Name]
			cnt, err := e.maps.SetCounters(ids)
			if err != nil {
				t.Fatal(err)
			}
			if c := cnt[ids[0]]; c.Packets != 1 || c.Bytes != uint64(len(in)) {
				t.Errorf("service counter: got %d packets %d bytes, want 1 and %d", c.Packets, c.Bytes, len(in))
			}
			e.expectBackendCounter(t, beLocal, 8080, 1, uint64(len(in)))
		})
	}
}

func TestTCConntrackReuse(t *testing.T) {
	e := newLBEnv(t)
	sp := clusterSvc("web", v1.ProtocolTCP, 80)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beLocal, 8080, true)},
	})
	syn := buildPacket(pktSpec{src: client, dst: vip, sport: 40001, dport: 80, proto: protoTCP})
	_, out := e.run(t, progFromPod, syn)
	if p := parsePacket(t, out); p.dst != beLocal {
		t.Fatalf("first packet: got backend %s, want %s", p.dst, beLocal)
	}
	// The backend set changes (a second, ready backend first in line);
	// the established flow stays on its backend, a new flow may not.
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beLocal, 8080, true), ep(beLocal2, 8080, true)},
	})
	ack := buildPacket(pktSpec{src: client, dst: vip, sport: 40001, dport: 80, proto: protoTCP, tcpFlags: 0x10, payload: []byte("x")})
	for i := 0; i < 20; i++ {
		_, out = e.run(t, progFromPod, ack)
		if p := parsePacket(t, out); p.dst != beLocal {
			t.Fatalf("packet %d of the established flow: got backend %s, want %s", i, p.dst, beLocal)
		}
	}
	if n := len(e.ctEntries(t)); n != 2 {
		t.Errorf("conntrack: got %d entries after reuse, want 2", n)
	}
	// Removing the backend ends its flows: conntrack goes, and the next
	// packet of the flow is balanced afresh onto what is left.
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beLocal2, 8080, true)},
	})
	if n := len(e.ctEntries(t)); n != 0 {
		t.Errorf("conntrack: got %d entries after backend removal, want 0", n)
	}
	_, out = e.run(t, progFromPod, ack)
	if p := parsePacket(t, out); p.dst != beLocal2 {
		t.Errorf("after removal: got backend %s, want %s", p.dst, beLocal2)
	}
}

func TestTCAffinity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeout  uint32
		wantSame bool
	}{
		{"client-ip", 10800, true},
		{"none", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLBEnv(t)
			sp := clusterSvc("web", v1.ProtocolTCP, 80)
			sp.AffinityTimeoutSeconds = tc.timeout
			e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: eightLocal()})
			seen := map[netip.Addr]bool{}
			for port := uint16(41000); port < 41040; port++ {
				_, out := e.run(t, progFromPod, buildPacket(pktSpec{src: client, dst: vip, sport: port, dport: 80, proto: protoTCP}))
				seen[parsePacket(t, out).dst] = true
			}
			if same := len(seen) == 1; same != tc.wantSame {
				t.Errorf("40 connections used %d backends; want all on one: %v", len(seen), tc.wantSame)
			}
		})
	}
}

// expectBackendCounter checks the per-backend counter of addr:port.
func (e *lbEnv) expectBackendCounter(t *testing.T, addr netip.Addr, port uint16, packets, bytes uint64) {
	t.Helper()
	var ids []uint32
	if err := forEach(e.maps.be, func(id uint32, b Backend) {
		if b.Addr == be32(addr) && b.Port == be16(port) {
			ids = append(ids, id)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("backend %s:%d: %d ids, want 1", addr, port, len(ids))
	}
	cnt, err := e.maps.BackendCounters(ids)
	if err != nil {
		t.Fatal(err)
	}
	if c := cnt[ids[0]]; c.Packets != packets || c.Bytes != bytes {
		t.Errorf("backend %s:%d counter: got %d packets %d bytes, want %d and %d", addr, port, c.Packets, c.Bytes, packets, bytes)
	}
}

// eightLocal is eight node-local endpoints, 10.244.1.40-47:8080.
func eightLocal() []dataplane.Endpoint {
	var eps []dataplane.Endpoint
	for i := 0; i < 8; i++ {
		eps = append(eps, ep(netip.AddrFrom4([4]byte{10, 244, 1, byte(40 + i)}), 8080, true))
	}
	return eps
}

// An affinity record older than timeoutSeconds no longer holds the client:
// with every record aged past the timeout before each connection, the 40
// connections spread over the backends again.
func TestTCAffinityExpires(t *testing.T) {
	e := newLBEnv(t)
	sp := clusterSvc("web", v1.ProtocolTCP, 80)
	sp.AffinityTimeoutSeconds = 60
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: eightLocal()})
	seen := map[netip.Addr]bool{}
	for port := uint16(41000); port < 41040; port++ {
		e.ageAffinity(t, 61*time.Second)
		_, out := e.run(t, progFromPod, buildPacket(pktSpec{src: client, dst: vip, sport: port, dport: 80, proto: protoTCP}))
		seen[parsePacket(t, out).dst] = true
	}
	if len(seen) < 2 {
		t.Errorf("40 connections, each after the client's affinity expired, all went to %v; want them spread", seen)
	}
}

// ageAffinity moves every affinity record's last use back by d on the
// clock the programs read (CLOCK_MONOTONIC, bpf_ktime_get_ns).
func (e *lbEnv) ageAffinity(t *testing.T, d time.Duration) {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	recs := map[AffKey]AffVal{}
	if err := forEach(e.maps.aff, func(k AffKey, v AffVal) { recs[k] = v }); err != nil {
		t.Fatal(err)
	}
	for k, v := range recs {
		v.LastNs = uint64(ts.Nano()) - uint64(d)
		if err := e.maps.aff.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTCNoEndpoints(t *testing.T) {
	e := newLBEnv(t)
	tcp := clusterSvc("empty", v1.ProtocolTCP, 80)
	udp := clusterSvc("empty", v1.ProtocolUDP, 53)
	local := clusterSvc("local-only", v1.ProtocolTCP, 81)
	local.InternalPolicyLocal = true
	e.program(t, []*dataplane.ServicePort{tcp, udp, local}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		local.Name: {ep(beRemote, 8080, false)},
	})
	// TCP: a RST from the service address, acking the SYN.
	ret, out := e.run(t, progFromPod, buildPacket(pktSpec{srcMAC: podMAC, dstMAC: hostMAC, src: client, dst: vip,
		sport: 40000, dport: 80, proto: protoTCP, seq: 1000}))
	if ret != tcRedirect {
		t.Fatalf("tcp: got verdict %d, want redirect (%d)", ret, tcRedirect)
	}
	p := parsePacket(t, out)
	if p.proto != protoTCP || p.tcpFlags != 0x14 || p.src != vip || p.dst != client || p.sport != 80 || p.dport != 40000 || p.ack != 1001 {
		t.Errorf("tcp: got %+v, want RST|ACK %s:80 -> %s:40000 ack 1001", p, vip, client)
	}
	if p.dstMAC != podMAC || p.srcMAC != hostMAC {
		t.Errorf("tcp: MACs not swapped: %x -> %x", p.srcMAC, p.dstMAC)
	}
	// UDP: ICMP port unreachable quoting the datagram.
	in := buildPacket(pktSpec{src: client, dst: vip, sport: 40000, dport: 53, proto: protoUDP, payload: []byte("q")})
	ret, out = e.run(t, progFromPod, in)
	if ret != tcRedirect {
		t.Fatalf("udp: got verdict %d, want redirect (%d)", ret, tcRedirect)
	}
	p = parsePacket(t, out)
	if p.proto != 1 || p.icmpType != 3 || p.icmpCode != 3 || p.src != vip || p.dst != client {
		t.Errorf("udp: got %+v, want ICMP port unreachable %s -> %s", p, vip, client)
	}
	if string(p.quoted) != string(in[14:14+28]) {
		t.Errorf("udp: ICMP quotes %x, want %x", p.quoted, in[14:14+28])
	}
	// internalTrafficPolicy Local without a local endpoint: dropped.
	ret, _ = e.run(t, progFromPod, buildPacket(pktSpec{src: client, dst: vip, sport: 40000, dport: 81, proto: protoTCP}))
	if ret != tcShot {
		t.Errorf("local policy without local endpoints: got verdict %d, want drop (%d)", ret, tcShot)
	}
}

func TestTCHairpin(t *testing.T) {
	e := newLBEnv(t)
	sp := clusterSvc("self", v1.ProtocolTCP, 80)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(client, 8080, true)},
	})
	ret, out := e.run(t, progFromPod, buildPacket(pktSpec{srcMAC: podMAC, dstMAC: hostMAC, src: client, dst: vip,
		sport: 40000, dport: 80, proto: protoTCP}))
	if ret != tcRedirect {
		t.Fatalf("got verdict %d, want redirect back into the pod (%d)", ret, tcRedirect)
	}
	p := parsePacket(t, out)
	if p.src != vip || p.dst != client || p.dport != 8080 || p.dstMAC != podMAC {
		t.Errorf("hairpin: got %s:%d -> %s:%d (dst mac %x), want %s -> %s:8080 to the pod's MAC", p.src, p.sport, p.dst, p.dport, p.dstMAC, vip, client)
	}
	// The pod answers the service address; that comes back as the service.
	ret, out = e.run(t, progFromPod, buildPacket(pktSpec{srcMAC: podMAC, dstMAC: hostMAC, src: client, dst: vip,
		sport: 8080, dport: 40000, proto: protoTCP, tcpFlags: 0x12}))
	if ret != tcRedirect {
		t.Fatalf("reply: got verdict %d, want redirect (%d)", ret, tcRedirect)
	}
	p = parsePacket(t, out)
	if p.src != vip || p.sport != 80 || p.dst != client || p.dport != 40000 {
		t.Errorf("hairpin reply: got %s:%d -> %s:%d, want %s:80 -> %s:40000", p.src, p.sport, p.dst, p.dport, vip, client)
	}
}
