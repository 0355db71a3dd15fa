package ebpf

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-project/skiff/dataplane"
)

// The provider's conntrack GC on fake maps (no privileges): it deletes
// what expired, judging pairs on both entries, and counts what it deleted
// in skiff_ebpf_conntrack_gc_deleted_total.
func TestProviderConntrackGC(t *testing.T) {
	fake := NewFake(MapSizes{})
	reg := prometheus.NewRegistry()
	p, err := New(Config{Node: dataplane.NodeConfig{Name: "n1", NodeIPs: []netip.Addr{nodeIP}},
		Maps: fake, Registry: reg, ConntrackGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	ago := func(d time.Duration) uint64 { return now - uint64(d) }
	// pair adds a TCP pair client:sport -> vip:80 -> beLocal:8080.
	pair := func(sport uint16, fseen, rseen uint8, flast, rlast uint64) CTKey {
		fk := CTKey{Saddr: be32(client), Daddr: be32(vip), Sport: be16(sport), Dport: be16(80), Proto: protoTCP}
		fv := CTVal{NatSaddr: be32(client), NatDaddr: be32(beLocal), NatSport: be16(sport), NatDport: be16(8080),
			Kind: CTForward, Seen: fseen, LastNs: flast}
		rk := ctPartner(fk, fv)
		rv := CTVal{NatSaddr: be32(vip), NatDaddr: be32(client), NatSport: be16(80), NatDport: be16(sport),
			Kind: CTReverse, Seen: rseen, LastNs: rlast}
		if ctPartner(rk, rv) != fk {
			t.Fatalf("test pair is not a pair")
		}
		fake.Conntrack[fk], fake.Conntrack[rk] = fv, rv
		return fk
	}
	est := uint8(CTSeenSYN | CTSeenEst)
	fin := est | CTSeenFIN
	closed := pair(1, fin, fin, ago(20*time.Second), ago(20*time.Second))
	reset := pair(2, est, CTSeenSYN|CTSeenRST, ago(11*time.Second), ago(30*time.Second))
	halfClosed := pair(3, fin, est, ago(20*time.Second), ago(20*time.Second))
	active := pair(4, est, CTSeenSYN, ago(7*time.Hour), ago(2*time.Second))
	if n, err := p.ExpireConntrack(); err != nil || n != 4 {
		t.Fatalf("GC: got %d deleted (%v), want 4 (the closed and the reset pair)", n, err)
	}
	for name, k := range map[string]CTKey{"closed": closed, "reset": reset} {
		if _, ok := fake.Conntrack[k]; ok {
			t.Errorf("%s pair: still there, want it deleted", name)
		}
	}
	for name, k := range map[string]CTKey{"half-closed": halfClosed, "active one way": active} {
		if _, ok := fake.Conntrack[k]; !ok {
			t.Errorf("%s pair: deleted, want it kept", name)
		}
	}
	if len(fake.Conntrack) != 4 {
		t.Errorf("conntrack: got %d entries left, want 4", len(fake.Conntrack))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter() != nil {
			got[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if got["skiff_ebpf_conntrack_gc_deleted_total"] != 4 || got["skiff_ebpf_conntrack_gc_runs_total"] != 1 {
		t.Errorf("GC metrics: got deleted %v runs %v, want 4 and 1", got["skiff_ebpf_conntrack_gc_deleted_total"],
			got["skiff_ebpf_conntrack_gc_runs_total"])
	}
}
