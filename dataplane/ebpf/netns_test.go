package ebpf

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inFreshNetNS runs fn on the calling goroutine inside a new, unnamed
// network namespace (it disappears with its last reference when fn
// returns). Only the network namespace changes; bpffs stays visible.
func inFreshNetNS(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("new netns: %v", err)
	}
	defer func() {
		ns.Close()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			t.Errorf("restore netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// uplinkFixture is a veth pair in the current namespace: "up0" carries
// addr/24 and static neighbours, as a node uplink would.
type uplinkFixture struct {
	ifindex int
	mac     net.HardwareAddr
}

func setupUplink(t *testing.T, addr string, neighbours map[string]string, routes map[string]string) uplinkFixture {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up0peer"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	up, err := netlink.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.LinkByName("up0peer")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{up, peer} {
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("link up: %v", err)
		}
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(up, a); err != nil {
		t.Fatalf("addr add: %v", err)
	}
	for ip, mac := range neighbours {
		hw, _ := net.ParseMAC(mac)
		if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: up.Attrs().Index, IP: net.ParseIP(ip), HardwareAddr: hw,
			State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4}); err != nil {
			t.Fatalf("neigh add %s: %v", ip, err)
		}
	}
	for dst, gw := range routes {
		_, n, _ := net.ParseCIDR(dst)
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: n, Gw: net.ParseIP(gw)}); err != nil {
			t.Fatalf("route add %s: %v", dst, err)
		}
	}
	// bpf_fib_lookup answers only when the ingress device forwards.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}
	up, _ = netlink.LinkByName("up0")
	return uplinkFixture{ifindex: up.Attrs().Index, mac: up.Attrs().HardwareAddr}
}

func TestLocalAddrs(t *testing.T) {
	requirePrivileged(t)
	inFreshNetNS(t, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
		// (A veth: this kernel may have no dummy links.)
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "aaa0"}, PeerName: "aaa1"}); err != nil {
			t.Fatalf("add veth: %v", err)
		}
		other, err := netlink.LinkByName("aaa0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"10.9.0.1/24", "169.254.7.7/16"} {
			addr, _ := netlink.ParseAddr(a)
			if a == "169.254.7.7/16" {
				addr.Scope = int(netlink.SCOPE_LINK)
			}
			if err := netlink.AddrAdd(other, addr); err != nil {
				t.Fatalf("addr add %s: %v", a, err)
			}
		}
		setupUplink(t, "172.31.0.5/24", nil, nil)
		// Another namespace's thread sees nothing of this one: read it
		// through its /proc path.
		path := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		got, err := localAddrs(path, []string{"up0"})
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Addr{netip.MustParseAddr("172.31.0.5"), netip.MustParseAddr("10.9.0.1")}
		if !slices.Equal(got, want) {
			t.Errorf("localAddrs = %v, want %v (uplink first; no loopback, no link-local)", got, want)
		}
	})
}
