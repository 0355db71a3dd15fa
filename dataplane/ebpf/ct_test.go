package ebpf

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/dataplane"
)

// Conntrack state and lifetimes (bpf/lib/lb.h, ctgc.go) with
// BPF_PROG_TEST_RUN: what a flow's packets note in its pair, what a new SYN
// does to the pair of an ended flow, and what the GC deletes. Ages are set
// by rewriting last_ns, never waited for.

// TCP flags of the crafted segments.
const (
	flFIN = 0x01
	flSYN = 0x02
	flRST = 0x04
	flACK = 0x10
)

// tcFlow is a pod's TCP connection to the ClusterIP through TC, and the
// backend it is expected on.
type tcFlow struct {
	e     *lbEnv
	sport uint16
}

// fromClient runs a segment of the flow from the pod (tcx ingress) and
// returns the backend it went to.
func (f tcFlow) fromClient(t *testing.T, flags uint8) netip.Addr {
	t.Helper()
	_, out := f.e.run(t, progFromPod, buildPacket(pktSpec{src: client, dst: vip, sport: f.sport, dport: 80,
		proto: protoTCP, tcpFlags: flags}))
	return parsePacket(t, out).dst
}

// fromBackend runs a segment of be's reply towards the pod (tcx egress).
func (f tcFlow) fromBackend(t *testing.T, be netip.Addr, flags uint8) {
	t.Helper()
	_, out := f.e.run(t, progToPod, buildPacket(pktSpec{src: be, dst: client, sport: 8080, dport: f.sport,
		proto: protoTCP, tcpFlags: flags}))
	if p := parsePacket(t, out); p.src != vip || p.sport != 80 {
		t.Fatalf("reply from %s: got source %s:%d, want the service %s:80 (no reverse entry?)", be, p.src, p.sport, vip)
	}
}

// handshake opens the flow (SYN, SYN-ACK, ACK) and returns its backend.
func (f tcFlow) handshake(t *testing.T) netip.Addr {
	t.Helper()
	be := f.fromClient(t, flSYN)
	f.fromBackend(t, be, flSYN|flACK)
	f.fromClient(t, flACK)
	return be
}

func (f tcFlow) fwdKey() CTKey {
	return CTKey{Saddr: be32(client), Daddr: be32(vip), Sport: be16(f.sport), Dport: be16(80), Proto: protoTCP}
}

// entries returns the flow's forward entry and the reverse entry it names
// (ok false for one that is missing).
func (e *lbEnv) pair(t *testing.T, fk CTKey) (fv, rv CTVal, fok, rok bool) {
	t.Helper()
	lookup := func(k CTKey) (CTVal, bool) {
		var v CTVal
		err := e.maps.ct.Lookup(k, &v)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return v, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return v, true
	}
	fv, fok = lookup(fk)
	if fok {
		rv, rok = lookup(ctPartner(fk, fv))
	}
	return fv, rv, fok, rok
}

// age moves the last packet of the flow's entries back to d1 (forward)
// and d2 (reverse) before now on the conntrack clock.
func (e *lbEnv) age(t *testing.T, fk CTKey, d1, d2 time.Duration) {
	t.Helper()
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	fv, rv, fok, rok := e.pair(t, fk)
	if fok {
		fv.LastNs = now - uint64(d1)
		if err := e.maps.ct.Put(fk, fv); err != nil {
			t.Fatal(err)
		}
	}
	if rok {
		rv.LastNs = now - uint64(d2)
		if err := e.maps.ct.Put(ctPartner(fk, fv), rv); err != nil {
			t.Fatal(err)
		}
	}
}

// backendID is the id the reconciler gave addr:port.
func (e *lbEnv) backendID(t *testing.T, addr netip.Addr, port uint16) uint32 {
	t.Helper()
	var id uint32
	if err := forEach(e.maps.be, func(i uint32, b Backend) {
		if b.Addr == be32(addr) && b.Port == be16(port) {
			id = i
		}
	}); err != nil {
		t.Fatal(err)
	}
	if id == 0 {
		t.Fatalf("backend %s:%d has no id", addr, port)
	}
	return id
}

// A new SYN on the tuple of an ended flow is balanced afresh: the test
// points the Service's only slot at another backend behind the
// reconciler's back (the old backend stays valid, so the old pair would
// still apply) and checks where the SYN goes. A flow that has not ended
// keeps its backend, as a retransmitted SYN must.
func TestTCSynAfterCloseBalancesAfresh(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(t *testing.T, f tcFlow)
		afresh bool
	}{
		{"fin-both-ways", func(t *testing.T, f tcFlow) {
			f.fromClient(t, flFIN|flACK)
			f.fromBackend(t, beLocal, flFIN|flACK)
			f.fromClient(t, flACK)
		}, true},
		{"rst-from-client", func(t *testing.T, f tcFlow) { f.fromClient(t, flRST) }, true},
		{"rst-from-backend", func(t *testing.T, f tcFlow) { f.fromBackend(t, beLocal, flRST|flACK) }, true},
		{"reverse-entry-lost", func(t *testing.T, f tcFlow) {
			fv, _, _, _ := f.e.pair(t, f.fwdKey())
			if err := f.e.maps.ct.Delete(ctPartner(f.fwdKey(), fv)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"idle-beyond-lifetime", func(t *testing.T, f tcFlow) {
			f.e.age(t, f.fwdKey(), CTEstTimeout+time.Minute, CTEstTimeout+time.Minute)
		}, true},
		{"half-closed", func(t *testing.T, f tcFlow) { f.fromClient(t, flFIN|flACK) }, false},
		{"established", func(t *testing.T, f tcFlow) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLBEnv(t)
			sp := clusterSvc("web", v1.ProtocolTCP, 80)
			other := clusterSvc("other", v1.ProtocolTCP, 81)
			e.program(t, []*dataplane.ServicePort{sp, other}, map[dataplane.ServicePortName][]dataplane.Endpoint{
				sp.Name: {ep(beLocal, 8080, true)}, other.Name: {ep(beLocal2, 8080, true)},
			})
			f := tcFlow{e: e, sport: 41000}
			if be := f.handshake(t); be != beLocal {
				t.Fatalf("first connection: got backend %s, want %s", be, beLocal)
			}
			tc.end(t, f)
			slot := SlotKey{Id: e.rec.ports[sp.Name].cluster, Slot: 0}
			if err := e.maps.slot.Put(slot, e.backendID(t, beLocal2, 8080)); err != nil {
				t.Fatal(err)
			}
			want := beLocal
			if tc.afresh {
				want = beLocal2
			}
			if got := f.fromClient(t, flSYN); got != want {
				t.Fatalf("SYN on the same tuple: got backend %s, want %s", got, want)
			}
			fv, rv, fok, rok := e.pair(t, f.fwdKey())
			if !fok || !rok {
				t.Fatalf("after the SYN: forward entry %v, reverse entry %v; want both", fok, rok)
			}
			if tc.afresh && (fv.Seen != CTSeenSYN || rv.Seen != 0) {
				t.Errorf("fresh pair: got seen %#x / %#x, want %#x / 0", fv.Seen, rv.Seen, CTSeenSYN)
			}
			if n := len(e.ctEntries(t)); n != 2 {
				t.Errorf("conntrack: got %d entries, want the flow's pair only", n)
			}
			// The reply of whichever backend took it finds its way back.
			f.fromBackend(t, want, flSYN|flACK)
		})
	}
}

// A flow's packets note its TCP state in both entries, an RST makes the
// pair closing (short lifetime), and packets of an established flow
// refresh last_ns at most once per CTRefresh instead of writing the entry
// each time.
func TestConntrackTCPState(t *testing.T) {
	e := newLBEnv(t)
	sp := clusterSvc("web", v1.ProtocolTCP, 80)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beLocal, 8080, true)},
	})
	f := tcFlow{e: e, sport: 41001}
	f.handshake(t)
	fv, rv, _, _ := e.pair(t, f.fwdKey())
	if fv.Seen != CTSeenSYN|CTSeenEst || rv.Seen != CTSeenSYN {
		t.Errorf("after the handshake: got seen %#x / %#x, want %#x / %#x", fv.Seen, rv.Seen, CTSeenSYN|CTSeenEst, CTSeenSYN)
	}
	if got := ctLifetime(protoTCP, fv.Seen, rv.Seen); got != CTEstTimeout {
		t.Errorf("established lifetime: got %v, want %v", got, CTEstTimeout)
	}

	// Within the refresh interval a data segment writes nothing.
	e.age(t, f.fwdKey(), 100*time.Millisecond, 100*time.Millisecond)
	before, _, _, _ := e.pair(t, f.fwdKey())
	f.fromClient(t, flACK)
	if after, _, _, _ := e.pair(t, f.fwdKey()); after != before {
		t.Errorf("a segment 100 ms after the last: entry rewritten (%+v -> %+v), want untouched", before, after)
	}
	// Past it, the segment refreshes last_ns.
	e.age(t, f.fwdKey(), 2*time.Second, 2*time.Second)
	before, _, _, _ = e.pair(t, f.fwdKey())
	f.fromClient(t, flACK)
	if after, _, _, _ := e.pair(t, f.fwdKey()); after.LastNs <= before.LastNs {
		t.Errorf("a segment 2 s after the last: last_ns %d, want later than %d", after.LastNs, before.LastNs)
	}

	// The backend resets the connection: closing.
	f.fromBackend(t, beLocal, flRST|flACK)
	fv, rv, _, _ = e.pair(t, f.fwdKey())
	if rv.Seen&CTSeenRST == 0 {
		t.Errorf("after a RST: reverse entry saw %#x, want RST noted", rv.Seen)
	}
	if got := ctLifetime(protoTCP, fv.Seen, rv.Seen); got != CTCloseTimeout {
		t.Errorf("lifetime after a RST: got %v, want %v", got, CTCloseTimeout)
	}
}

// The GC deletes pairs whose lifetime ended, judged on both entries, and
// entries whose other half is gone; everything else stays.
func TestConntrackGC(t *testing.T) {
	e := newLBEnv(t)
	tcp := clusterSvc("web", v1.ProtocolTCP, 80)
	udp := clusterSvc("dns", v1.ProtocolUDP, 53)
	e.program(t, []*dataplane.ServicePort{tcp, udp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		tcp.Name: {ep(beLocal, 8080, true)}, udp.Name: {ep(beLocal, 5353, true)},
	})
	closed := func(f tcFlow) {
		f.handshake(t)
		f.fromClient(t, flFIN|flACK)
		f.fromBackend(t, beLocal, flFIN|flACK)
		f.fromClient(t, flACK)
	}
	udpFlow := func(sport uint16) CTKey {
		e.run(t, progFromPod, buildPacket(pktSpec{src: client, dst: vip, sport: sport, dport: 53, proto: protoUDP, payload: []byte("q")}))
		return CTKey{Saddr: be32(client), Daddr: be32(vip), Sport: be16(sport), Dport: be16(53), Proto: protoUDP}
	}
	type flow struct {
		name     string
		key      CTKey
		fwd, rev time.Duration // ages
		gone     bool
	}
	var flows []flow
	add := func(name string, f tcFlow, open func(tcFlow), fwd, rev time.Duration, gone bool) {
		open(f)
		flows = append(flows, flow{name, f.fwdKey(), fwd, rev, gone})
	}
	est := func(f tcFlow) { f.handshake(t) }
	syn := func(f tcFlow) { f.fromClient(t, flSYN) }
	add("closed, 11 s", tcFlow{e, 42001}, closed, 11*time.Second, 11*time.Second, true)
	add("closed, 5 s", tcFlow{e, 42002}, closed, 5*time.Second, 5*time.Second, false)
	add("established, 11 s", tcFlow{e, 42003}, est, 11*time.Second, 11*time.Second, false)
	add("established, idle 6 h", tcFlow{e, 42004}, est, CTEstTimeout+time.Minute, CTEstTimeout+time.Minute, true)
	add("established, one way active", tcFlow{e, 42005}, est, CTEstTimeout+time.Minute, time.Second, false)
	add("attempt, 61 s", tcFlow{e, 42006}, syn, 61*time.Second, 61*time.Second, true)
	add("attempt, 30 s", tcFlow{e, 42007}, syn, 30*time.Second, 30*time.Second, false)
	flows = append(flows, flow{"udp, 61 s", udpFlow(42008), 61 * time.Second, 61 * time.Second, true})
	flows = append(flows, flow{"udp, 30 s", udpFlow(42009), 30 * time.Second, 30 * time.Second, false})
	for _, f := range flows {
		e.age(t, f.key, f.fwd, f.rev)
	}
	// Half a pair (its reverse entry evicted) goes once it is older than
	// the shortest lifetime.
	lone := tcFlow{e, 42010}
	est(lone)
	fv, _, _, _ := e.pair(t, lone.fwdKey())
	if err := e.maps.ct.Delete(ctPartner(lone.fwdKey(), fv)); err != nil {
		t.Fatal(err)
	}
	e.age(t, lone.fwdKey(), 11*time.Second, 0)

	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.maps.ExpireConntrack(now)
	if err != nil {
		t.Fatal(err)
	}
	want := 1 // the lone half
	for _, f := range flows {
		fok, rok := false, false
		_, _, fok, rok = e.pair(t, f.key)
		if f.gone {
			want += 2
			if fok || rok {
				t.Errorf("%s: forward entry %v, reverse %v after GC; want both gone", f.name, fok, rok)
			}
		} else if !fok || !rok {
			t.Errorf("%s: forward entry %v, reverse %v after GC; want both kept", f.name, fok, rok)
		}
	}
	if _, _, fok, _ := e.pair(t, lone.fwdKey()); fok {
		t.Error("half a pair: still there after GC, want it gone")
	}
	if n != want {
		t.Errorf("GC: got %d entries deleted, want %d", n, want)
	}
}

// The GC frees the SNAT port of a closed NodePort flow: with a range of
// one port, a second flow gets it once the first one's pair is collected
// (before, its entries kept the port until LRU eviction).
func TestXDPConntrackGCFreesSNATPort(t *testing.T) {
	e := newLBEnvWith(t, loadOptions{NodeIP: nodeIP, MaglevSize: 251, SNATMin: 40000, SNATMax: 40000})
	sp := nodePortSvc("np", v1.ProtocolTCP, 30080)
	e.program(t, []*dataplane.ServicePort{sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{
		sp.Name: {ep(beRemote, 8080, false)},
	})
	// This namespace has no route to the backend: XDP translates, then
	// drops (no_route); the conntrack entries are what this test is about.
	fromClient := func(sport uint16, flags uint8) {
		e.runXDP(t, buildPacket(pktSpec{src: extCli, dst: nodeIP, sport: sport, dport: 30080, proto: protoTCP, tcpFlags: flags}), 0)
	}
	fromBackend := func(flags uint8) {
		e.runXDP(t, buildPacket(pktSpec{src: beRemote, dst: nodeIP, sport: 8080, dport: 40000, proto: protoTCP, tcpFlags: flags}), 0)
	}
	first := CTKey{Saddr: be32(extCli), Daddr: be32(nodeIP), Sport: be16(50000), Dport: be16(30080), Proto: protoTCP}
	fromClient(50000, flSYN)
	fromBackend(flSYN | flACK)
	fromClient(50000, flACK)
	fv, _, fok, rok := e.pair(t, first)
	if !fok || !rok || fv.NatSport != be16(40000) {
		t.Fatalf("first flow: entries %v/%v, SNAT port %d; want a pair on port 40000", fok, rok, portFromBE16(fv.NatSport))
	}
	// The only port is taken while the first flow lives.
	fromClient(50001, flSYN)
	e.expectDrops(t, map[string]uint64{"no_route": 3, "snat_ports": 1})

	fromClient(50000, flFIN|flACK)
	fromBackend(flFIN | flACK)
	fromClient(50000, flACK)
	e.age(t, first, CTCloseTimeout+time.Second, CTCloseTimeout+time.Second)
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.maps.ExpireConntrack(now); err != nil || n != 2 {
		t.Fatalf("GC: got %d entries deleted (%v), want the closed flow's 2", n, err)
	}
	fromClient(50002, flSYN)
	e.expectDrops(t, map[string]uint64{"no_route": 7, "snat_ports": 1})
	second := CTKey{Saddr: be32(extCli), Daddr: be32(nodeIP), Sport: be16(50002), Dport: be16(30080), Proto: protoTCP}
	if fv, _, fok, rok := e.pair(t, second); !fok || !rok || fv.NatSport != be16(40000) {
		t.Errorf("flow after GC: entries %v/%v, SNAT port %d; want a pair on the freed port 40000", fok, rok, portFromBE16(fv.NatSport))
	}
}
