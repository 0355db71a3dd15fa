package ebpf

import (
	"errors"
	"net/netip"
	"testing"

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
