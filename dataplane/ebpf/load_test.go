package ebpf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
)

func TestLoadAndReopenPinned(t *testing.T) {
	objs, m := loadTestObjects(t, loadOptions{NodeIP: netip.MustParseAddr("10.0.0.1")})
	for _, p := range []string{progFromPod, progToPod, progXDP, progUplink, progConnect4, progSendmsg4, progRecvmsg4, progGetpeername} {
		if objs.progs[p] == nil {
			t.Errorf("program %s not loaded", p)
		}
	}
	if err := m.UpdateServices([]SvcKey{{Addr: 1, Port: 2, Proto: 6}}, []SvcVal{{Id: 7, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	// A second load with the same pin path sees the same maps.
	o2, m2 := loadTestObjects(t, loadOptions{PinPath: objs.pinDir})
	_ = o2
	var v SvcVal
	if err := m2.svc.Lookup(SvcKey{Addr: 1, Port: 2, Proto: 6}, &v); err != nil {
		t.Fatalf("lookup in re-opened map: %v", err)
	}
	if v.Id != 7 {
		t.Errorf("got id %d, want 7", v.Id)
	}
	// A different size is refused, not silently replaced.
	_, err := loadObjects(loadOptions{PinPath: objs.pinDir, Sizes: MapSizes{Services: 2048, Sets: 1024, Slots: 4096,
		Backends: 4096, Conntrack: 4096, Affinity: 1024, Sockets: 1024, NetNS: 64}, MaglevSize: 251})
	if !errors.Is(err, ebpf.ErrMapIncompatible) {
		t.Errorf("got %v, want ErrMapIncompatible", err)
	}
}

// An agent of the previous version left its v1 conntrack map pinned: the
// load carries its entries over into the v2 map (as established flows seen
// now) and removes the v1 pin.
func TestLoadMigratesConntrackV1(t *testing.T) {
	requirePrivileged(t)
	dir := testPinDir(t)
	v1 := &ebpf.MapSpec{Name: mapConntrackV1, Type: ebpf.LRUHash, KeySize: uint32(unsafe.Sizeof(CTKey{})),
		ValueSize: uint32(unsafe.Sizeof(CTVal{})), MaxEntries: 4096}
	old, err := ebpf.NewMap(v1)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(filepath.Join(dir, mapConntrackV1)); err != nil {
		t.Fatal(err)
	}
	k := CTKey{Saddr: be32(client), Daddr: be32(vip), Sport: be16(40000), Dport: be16(80), Proto: protoTCP}
	// v1 layout: created_ns where v2 has last_ns, padding where it has seen.
	v := CTVal{NatSaddr: be32(client), NatDaddr: be32(beLocal), NatSport: be16(40000), NatDport: be16(8080),
		BackendId: 3, SvcId: 2, Kind: CTForward, LastNs: 12345}
	if err := old.Put(k, v); err != nil {
		t.Fatal(err)
	}
	_, m := loadTestObjects(t, loadOptions{PinPath: dir})
	var got CTVal
	if err := m.ct.Lookup(k, &got); err != nil {
		t.Fatalf("v1 entry in %s: %v", MapConntrack, err)
	}
	if got.NatDaddr != v.NatDaddr || got.BackendId != 3 || got.SvcId != 2 || got.Kind != CTForward ||
		got.Seen != CTSeenSYN|CTSeenEst || got.LastNs <= 12345 {
		t.Errorf("migrated entry: got %+v, want %+v as established, seen now", got, v)
	}
	if _, err := os.Stat(filepath.Join(dir, mapConntrackV1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("v1 pin: got %v, want it removed", err)
	}
}
