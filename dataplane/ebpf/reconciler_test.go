package ebpf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/dataplane"
)

// Reconciler tests against the in-memory fake: no privileges needed.

type fakeEnv struct {
	fake *Fake
	rec  *reconciler
	svcs map[dataplane.ServicePortName]*dataplane.ServicePort
	eps  map[dataplane.ServicePortName][]dataplane.Endpoint
}

var testNode = dataplane.NodeConfig{Name: "n1", NodeIPs: []netip.Addr{netip.MustParseAddr("192.168.50.2")}}

func newFakeEnv(t *testing.T, sizes MapSizes) *fakeEnv {
	t.Helper()
	f := NewFake(sizes)
	return &fakeEnv{fake: f, rec: newReconciler(f, testNode, sizes, 251, slog.New(slog.NewTextHandler(io.Discard, nil))),
		svcs: map[dataplane.ServicePortName]*dataplane.ServicePort{}, eps: map[dataplane.ServicePortName][]dataplane.Endpoint{}}
}

// svcN is the n-th test Service: ClusterIP 10.96.x.y:80, with NodePort
// 30000+n when nodePort.
func svcN(n int, nodePort bool) *dataplane.ServicePort {
	sp := &dataplane.ServicePort{Name: spName(fmt.Sprintf("svc-%d", n), v1.ProtocolTCP), Protocol: v1.ProtocolTCP, Port: 80,
		ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(n >> 8), byte(n)})}}
	if nodePort {
		sp.NodePort = uint16(30000 + n)
	}
	return sp
}

func epsN(n, count int) []dataplane.Endpoint {
	var out []dataplane.Endpoint
	for i := 0; i < count; i++ {
		out = append(out, ep(netip.AddrFrom4([4]byte{10, 244, byte(n >> 8), byte(n)}).Next().Next().Next().Next(), uint16(8080+i), i%2 == 0))
	}
	return out
}

// apply syncs the changes to the given names (nil sp deletes).
func (e *fakeEnv) apply(t *testing.T, changes map[dataplane.ServicePortName]*dataplane.ServicePort, eps map[dataplane.ServicePortName][]dataplane.Endpoint) (int, error) {
	t.Helper()
	u := dataplane.Update{Services: e.svcs, Endpoints: e.eps, Changed: map[dataplane.ServicePortName]struct{}{}}
	for n, sp := range changes {
		if sp == nil {
			delete(e.svcs, n)
			delete(e.eps, n)
		} else {
			e.svcs[n] = sp
			e.eps[n] = eps[n]
		}
		u.Changed[n] = struct{}{}
	}
	e.fake.ResetOps()
	return e.rec.sync(u, false)
}

func (e *fakeEnv) mustApply(t *testing.T, changes map[dataplane.ServicePortName]*dataplane.ServicePort, eps map[dataplane.ServicePortName][]dataplane.Endpoint) {
	t.Helper()
	if _, err := e.apply(t, changes, eps); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func populate(t *testing.T, e *fakeEnv, n int) {
	t.Helper()
	ch := map[dataplane.ServicePortName]*dataplane.ServicePort{}
	eps := map[dataplane.ServicePortName][]dataplane.Endpoint{}
	for i := 1; i <= n; i++ {
		sp := svcN(i, i%10 == 0)
		ch[sp.Name] = sp
		eps[sp.Name] = epsN(i, 3)
	}
	e.mustApply(t, ch, eps)
}

func TestReconcilerProportionalDiffs(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	populate(t, e, 100)
	// 100 ClusterIPs + 10 NodePorts × 2 scopes; 300 slots; 300 backends.
	if got, want := len(e.fake.Services), 100+10*2; got != want {
		t.Fatalf("frontends: got %d, want %d", got, want)
	}
	if got := len(e.fake.Slots); got != 300 {
		t.Fatalf("slots: got %d, want 300", got)
	}
	if got := len(e.fake.Maglev); got != 10 {
		t.Fatalf("maglev tables: got %d, want 10 (one per NodePort service)", got)
	}
	ids := map[dataplane.ServicePortName]uint32{}
	for n, ps := range e.rec.ports {
		ids[n] = ps.cluster
	}
	cases := []struct {
		name    string
		change  func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint)
		wantOps map[string]int
	}{
		{
			name: "nothing",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				sp := svcN(5, false)
				return map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(5, 3)}
			},
			wantOps: map[string]int{},
		},
		{
			name: "add endpoint",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				sp := svcN(5, false)
				return map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(5, 4)}
			},
			wantOps: map[string]int{MapBackends: 1, MapSlots: 1, MapServices: 1},
		},
		{
			name: "remove endpoint",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				sp := svcN(5, false)
				return map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(5, 3)}
			},
			wantOps: map[string]int{MapBackends: 1, MapSlots: 1, MapServices: 1},
		},
		{
			name: "endpoint of a NodePort service",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				sp := svcN(10, true)
				return map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(10, 4)}
			},
			// ClusterIP + 2 NodePort frontends update their count;
			// one Maglev table rebuilt.
			wantOps: map[string]int{MapBackends: 1, MapSlots: 1, MapServices: 3, MapMaglev: 1},
		},
		{
			name: "add service",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				sp := svcN(101, false)
				return map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(101, 2)}
			},
			wantOps: map[string]int{MapBackends: 2, MapSlots: 2, MapServices: 1},
		},
		{
			name: "delete service",
			change: func() (map[dataplane.ServicePortName]*dataplane.ServicePort, map[dataplane.ServicePortName][]dataplane.Endpoint) {
				return map[dataplane.ServicePortName]*dataplane.ServicePort{svcN(101, false).Name: nil}, nil
			},
			wantOps: map[string]int{MapBackends: 2, MapSlots: 2, MapServices: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, eps := tc.change()
			if _, err := e.apply(t, ch, eps); err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{MapServices, MapSlots, MapBackends, MapMaglev} {
				if got := e.fake.Ops[m]; got != tc.wantOps[m] {
					t.Errorf("%s: got %d operations, want %d", m, got, tc.wantOps[m])
				}
			}
			for n, id := range ids {
				if ps := e.rec.ports[n]; ps == nil || ps.cluster != id {
					t.Errorf("%s: set id changed from %d", n, id)
				}
			}
		})
	}
}

func TestReconcilerTerminatingEndpoints(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	sp := svcN(1, false)
	ready := ep(netip.MustParseAddr("10.244.0.10"), 8080, true)
	term := dataplane.Endpoint{IP: netip.MustParseAddr("10.244.0.11"), Port: 8080, Serving: true, Terminating: true, Local: true}
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp},
		map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: {ready, term}})
	// The terminating endpoint is a backend (its flows go on) but gets no
	// slot while a ready one exists.
	if got := len(e.fake.Backends); got != 2 {
		t.Errorf("backends: got %d, want 2", got)
	}
	if got := len(e.fake.Slots); got != 1 {
		t.Errorf("slots: got %d, want 1 (ready only)", got)
	}
	// Without ready endpoints the terminating one takes new connections.
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp},
		map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: {term}})
	if got := len(e.fake.Slots); got != 1 {
		t.Errorf("slots: got %d, want 1 (terminating fallback)", got)
	}
	be := e.rec.backends[newBEKey(term.IP, 8080, protoTCP)]
	if be == nil || e.fake.Slots[SlotKey{Id: e.rec.ports[sp.Name].cluster, Slot: 0}] != be.id {
		t.Errorf("slot 0 does not hold the terminating backend")
	}
}

func TestReconcilerConntrackFlush(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	a, b := svcN(1, false), svcN(2, false)
	shared := ep(netip.MustParseAddr("10.244.0.10"), 8080, true)
	other := ep(netip.MustParseAddr("10.244.0.11"), 8080, true)
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{a.Name: a, b.Name: b},
		map[dataplane.ServicePortName][]dataplane.Endpoint{a.Name: {shared, other}, b.Name: {shared}})
	idA, idB := e.rec.ports[a.Name].cluster, e.rec.ports[b.Name].cluster
	beShared := e.rec.backends[newBEKey(shared.IP, 8080, protoTCP)].id
	beOther := e.rec.backends[newBEKey(other.IP, 8080, protoTCP)].id
	e.fake.Conntrack[CTKey{Saddr: 1}] = CTVal{SvcId: idA, BackendId: beShared}
	e.fake.Conntrack[CTKey{Saddr: 2}] = CTVal{SvcId: idB, BackendId: beShared}
	e.fake.Conntrack[CTKey{Saddr: 3}] = CTVal{SvcId: idA, BackendId: beOther}
	e.fake.Affinity[AffKey{Client: 1, Id: idA}] = AffVal{BackendId: beShared}
	// The shared backend leaves service a only: a's flows to it end, b's
	// stay, and the backend itself stays.
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{a.Name: a},
		map[dataplane.ServicePortName][]dataplane.Endpoint{a.Name: {other}})
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 1}]; ok {
		t.Errorf("flow of a to the removed backend survived")
	}
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 2}]; !ok {
		t.Errorf("flow of b to its backend was flushed")
	}
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 3}]; !ok {
		t.Errorf("flow of a to a kept backend was flushed")
	}
	if _, ok := e.fake.Affinity[AffKey{Client: 1, Id: idA}]; ok {
		t.Errorf("affinity to the removed backend survived")
	}
	if _, ok := e.fake.Backends[beShared]; !ok {
		t.Errorf("backend still used by b was deleted")
	}
	// Deleting b removes the backend and its flows.
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{b.Name: nil}, nil)
	if _, ok := e.fake.Backends[beShared]; ok {
		t.Errorf("unused backend not deleted")
	}
	if len(e.fake.Conntrack) != 1 {
		t.Errorf("conntrack: got %d entries, want 1", len(e.fake.Conntrack))
	}
}

func TestReconcilerRestartAdoptsState(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	populate(t, e, 50)
	e.fake.Conntrack[CTKey{Saddr: 9}] = CTVal{SvcId: 1, BackendId: 1}
	before, err := e.fake.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A new reconciler (restarted agent) over the same maps, with the
	// same desired state plus one Service deleted while it was down.
	r2 := newReconciler(e.fake, testNode, MapSizes{}, 251, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gone := svcN(7, false).Name
	delete(e.svcs, gone)
	delete(e.eps, gone)
	e.fake.ResetOps()
	if _, err := r2.sync(dataplane.Update{Services: e.svcs, Endpoints: e.eps}, false); err != nil {
		t.Fatal(err)
	}
	// Only the deleted Service's entries changed (plus the Maglev tables,
	// whose input is not stored and which are rebuilt identically).
	want := map[string]int{MapServices: 1, MapSlots: 3, MapBackends: 3, MapMaglev: 5}
	for m, n := range want {
		if got := e.fake.Ops[m]; got != n {
			t.Errorf("%s: got %d operations, want %d", m, got, n)
		}
	}
	for k, v := range before.Services {
		if got, ok := e.fake.Services[k]; ok && got != v {
			t.Errorf("frontend %+v changed from %+v to %+v", k, v, got)
		}
	}
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 9}]; !ok {
		t.Errorf("restart flushed conntrack of a live backend")
	}
	// And it goes on diffing incrementally.
	e.fake.ResetOps()
	sp := svcN(8, false)
	e.svcs[sp.Name] = sp
	e.eps[sp.Name] = epsN(8, 4)
	if _, err := r2.sync(dataplane.Update{Services: e.svcs, Endpoints: e.eps, Changed: map[dataplane.ServicePortName]struct{}{sp.Name: {}}}, false); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.OpsTotal(); got != 3 {
		t.Errorf("incremental sync after restart: got %d operations, want 3", got)
	}
}

func TestReconcilerFullMaps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes MapSizes
	}{
		{"frontends", MapSizes{Services: 10}},
		{"slots", MapSizes{Slots: 10}},
		{"backends", MapSizes{Backends: 10}},
		{"sets", MapSizes{Sets: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, tc.sizes)
			ch := map[dataplane.ServicePortName]*dataplane.ServicePort{}
			eps := map[dataplane.ServicePortName][]dataplane.Endpoint{}
			for i := 1; i <= 20; i++ {
				sp := svcN(i, false)
				ch[sp.Name] = sp
				eps[sp.Name] = epsN(i, 1)
			}
			_, err := e.apply(t, ch, eps)
			if !errors.Is(err, ErrMapFull) {
				t.Fatalf("got %v, want ErrMapFull", err)
			}
			// Shrinking the desired state recovers on the next sync.
			for i := 6; i <= 20; i++ {
				ch[svcN(i, false).Name] = nil
			}
			for i := 1; i <= 5; i++ {
				delete(ch, svcN(i, false).Name)
			}
			if _, err := e.apply(t, ch, eps); err != nil {
				t.Fatalf("sync after shrinking: %v", err)
			}
			if got := len(e.fake.Services); got != 5 {
				t.Errorf("frontends: got %d, want 5", got)
			}
		})
	}
}

func TestReconcilerIDReuse(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	populate(t, e, 3)
	id2 := e.rec.ports[svcN(2, false).Name].cluster
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{svcN(2, false).Name: nil}, nil)
	sp := svcN(9, false)
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: epsN(9, 1)})
	if got := e.rec.ports[sp.Name].cluster; got != id2 {
		t.Errorf("new service got set id %d, want the released %d", got, id2)
	}
}

// BenchmarkReconcileFull is the Go side of a full sync of 30,000 Services
// (three endpoints each) against the fake maps.
func BenchmarkReconcileFull(b *testing.B) {
	svcs := map[dataplane.ServicePortName]*dataplane.ServicePort{}
	eps := map[dataplane.ServicePortName][]dataplane.Endpoint{}
	for i := 1; i <= 30000; i++ {
		sp := svcN(i, false)
		svcs[sp.Name] = sp
		eps[sp.Name] = epsN(i, 3)
	}
	for b.Loop() {
		f := NewFake(MapSizes{})
		r := newReconciler(f, testNode, MapSizes{}, 251, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if _, err := r.sync(dataplane.Update{Services: svcs, Endpoints: eps}, true); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReconcilerDeferredFlush(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	e.rec.deferGC = true
	a, b := svcN(1, false), svcN(2, false)
	gone := ep(netip.MustParseAddr("10.244.0.10"), 8080, true)
	shared := ep(netip.MustParseAddr("10.244.0.11"), 8080, true)
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{a.Name: a, b.Name: b},
		map[dataplane.ServicePortName][]dataplane.Endpoint{a.Name: {gone, shared}, b.Name: {shared}})
	idA := e.rec.ports[a.Name].cluster
	beGone := e.rec.backends[newBEKey(gone.IP, 8080, protoTCP)].id
	beShared := e.rec.backends[newBEKey(shared.IP, 8080, protoTCP)].id
	e.fake.Conntrack[CTKey{Saddr: 1}] = CTVal{SvcId: idA, BackendId: beGone}
	e.fake.Conntrack[CTKey{Saddr: 2}] = CTVal{SvcId: idA, BackendId: beShared}
	// A deleted backend: zeroed at once, its flows collected afterwards,
	// its id held until then.
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{a.Name: a},
		map[dataplane.ServicePortName][]dataplane.Endpoint{a.Name: {shared}})
	if _, ok := e.fake.Backends[beGone]; ok {
		t.Fatalf("deleted backend not zeroed by the sync")
	}
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 1}]; !ok {
		t.Fatalf("flush was not deferred")
	}
	if !e.rec.beIDs.isUsed(beGone) {
		t.Errorf("id of a backend with pending flows was released")
	}
	if len(e.fake.Destroyed) != 0 {
		t.Errorf("sockets destroyed within the sync: %v, want it left to collect", e.fake.Destroyed)
	}
	if pending, err := e.rec.collect(); err != nil || !pending {
		t.Fatalf("collect: %v, %v", pending, err)
	}
	if want := [][2]uint32{{0, beGone}}; !slices.Equal(e.fake.Destroyed, want) {
		t.Errorf("collect destroyed the sockets of %v, want %v (the deleted backend)", e.fake.Destroyed, want)
	}
	e.fake.Destroyed = nil
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 1}]; ok {
		t.Errorf("collect left the deleted backend's flow")
	}
	if e.rec.beIDs.isUsed(beGone) {
		t.Errorf("collect did not release the id")
	}
	// A backend that stays elsewhere is flushed within the sync.
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{a.Name: a},
		map[dataplane.ServicePortName][]dataplane.Endpoint{a.Name: nil})
	if _, ok := e.fake.Conntrack[CTKey{Saddr: 2}]; ok {
		t.Errorf("flow of a backend that left the Service but stays in another survived the sync")
	}
	if want := [][2]uint32{{idA, beShared}}; !slices.Equal(e.fake.Destroyed, want) {
		t.Errorf("sync destroyed the sockets of %v, want %v (the pair that ended)", e.fake.Destroyed, want)
	}
}

func TestCanonical(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("10.244.0.2"), netip.MustParseAddr("10.244.0.3")
	v6 := netip.MustParseAddr("fd00::1")
	tests := []struct {
		name string
		in   []dataplane.Endpoint
		want []string
		same bool // the input itself comes back (no copy)
	}{
		{"empty", nil, nil, true},
		{"sorted", []dataplane.Endpoint{ep(a, 80, false), ep(a, 81, false), ep(b, 80, false)}, []string{"10.244.0.1:80", "10.244.0.1:81", "10.244.0.2:80"}, true},
		{"unsorted", []dataplane.Endpoint{ep(c, 80, false), ep(a, 80, false)}, []string{"10.244.0.1:80", "10.244.0.3:80"}, false},
		{"duplicates", []dataplane.Endpoint{ep(a, 80, false), ep(b, 80, false), ep(a, 80, true)}, []string{"10.244.0.1:80", "10.244.0.2:80"}, false},
		{"not IPv4", []dataplane.Endpoint{ep(a, 80, false), ep(v6, 80, false)}, []string{"10.244.0.1:80"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := canonical(tt.in)
			var s []string
			for _, e := range got {
				s = append(s, e.String())
			}
			if fmt.Sprint(s) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", s, tt.want)
			}
			if same := len(got) > 0 && &got[0] == &tt.in[0]; len(tt.in) > 0 && same != tt.same {
				t.Errorf("got input returned %t, want %t", same, tt.same)
			}
		})
	}
}

// TestReconcilerDuplicateEndpoints feeds a list that breaks the Update's
// promise (unsorted, an endpoint twice): the backend is created and
// counted once, and goes when the endpoint goes.
func TestReconcilerDuplicateEndpoints(t *testing.T) {
	e := newFakeEnv(t, MapSizes{})
	sp := svcN(1, false)
	a, b := netip.MustParseAddr("10.244.0.2"), netip.MustParseAddr("10.244.0.1")
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp},
		map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: {ep(a, 80, false), ep(b, 80, false), ep(a, 80, false)}})
	if got := len(e.fake.Backends); got != 2 {
		t.Fatalf("backends: got %d, want 2", got)
	}
	if got := len(e.rec.sets.get(e.rec.ports[sp.Name].cluster).slots); got != 2 {
		t.Fatalf("slots: got %d, want 2", got)
	}
	e.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp},
		map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: {ep(b, 80, false)}})
	if got := len(e.fake.Backends); got != 1 {
		t.Errorf("after removing the duplicated endpoint: got %d backends, want 1", got)
	}
}

// Maglev tables must be the same on every node for the same Service and
// endpoints, so that a flow keeps its backend whichever node the network
// sends it to, although each node numbers its backends in its own order
// and sees different endpoints as local.
func TestReconcilerMaglevSameOnEveryNode(t *testing.T) {
	sizes := MapSizes{Services: 1024, Sets: 1024, Slots: 4096, Backends: 4096, Conntrack: 1024, Affinity: 64, Sockets: 64, NetNS: 8}
	n1, n2 := newFakeEnv(t, sizes), newFakeEnv(t, sizes)
	populate(t, n2, 5) // other Services first: n2's backend ids differ from n1's
	sp := svcN(100, true)
	eps1 := epsN(100, 7)
	eps2 := make([]dataplane.Endpoint, len(eps1))
	for i, e := range eps1 {
		e.Local = !e.Local
		eps2[len(eps1)-1-i] = e // and listed in another order
	}
	n1.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: eps1})
	n2.mustApply(t, map[dataplane.ServicePortName]*dataplane.ServicePort{sp.Name: sp}, map[dataplane.ServicePortName][]dataplane.Endpoint{sp.Name: eps2})

	table := func(f *Fake) (ids []uint32, addrs []string) {
		t.Helper()
		if len(f.Maglev) != 1 {
			t.Fatalf("got %d Maglev tables, want 1", len(f.Maglev))
		}
		for _, tab := range f.Maglev {
			for _, id := range tab {
				b := f.Backends[id]
				ids = append(ids, id)
				addrs = append(addrs, fmt.Sprintf("%08x:%d", b.Addr, b.Port))
			}
		}
		return ids, addrs
	}
	ids1, addrs1 := table(n1.fake)
	ids2, addrs2 := table(n2.fake)
	// 7 backends: more than 100 slots each, so larger than the configured
	// 251; the external frontends carry the size.
	if len(addrs1) != 1021 {
		t.Fatalf("table size %d, want 1021 (the smallest listed prime above 700)", len(addrs1))
	}
	for k, v := range n1.fake.Services {
		if k.Scope == ScopeExternal && v.MaglevSize != uint32(len(addrs1)) {
			t.Errorf("external frontend %+v: maglev size %d, want %d", k, v.MaglevSize, len(addrs1))
		}
	}
	if slices.Equal(ids1, ids2) {
		t.Fatal("both nodes numbered the backends alike; the test needs them to differ")
	}
	for i := range addrs1 {
		if addrs1[i] != addrs2[i] {
			t.Fatalf("entry %d: node 1 sends to %s, node 2 to %s; want the same backend on every node", i, addrs1[i], addrs2[i])
		}
	}
}
