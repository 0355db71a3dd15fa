package ebpf

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetNS runs fn on a locked OS thread inside the network namespace at
// path (the caller's own when path is ""). Only the network namespace
// changes, so bpffs and cgroup mounts stay visible. If the thread cannot
// be switched back it stays locked and dies with its goroutine.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// netnsCookie returns the cookie of the network namespace at path ("" for
// the caller's), the value bpf_get_netns_cookie returns for its sockets.
func netnsCookie(path string) (uint64, error) {
	var cookie uint64
	err := inNetNS(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		if err != nil {
			return fmt.Errorf("getsockopt SO_NETNS_COOKIE: %w", err)
		}
		return nil
	})
	return cookie, err
}

// localAddrs returns the IPv4 addresses of the namespace at path that
// NodePorts answer on when the node configuration names none (the
// NodeConfig contract: every local address but loopback): global-scope
// addresses, those of the uplinks first so that the first one, which
// remote NodePort backends see as the SNAT source, is routable from the
// other nodes.
func localAddrs(path string, uplinks []string) ([]netip.Addr, error) {
	var first, rest []netip.Addr
	err := inNetNS(path, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
			}
			for _, a := range addrs {
				ip, ok := netip.AddrFromSlice(a.IP.To4())
				if !ok || a.Scope != int(netlink.SCOPE_UNIVERSE) || ip.IsLoopback() {
					continue
				}
				if slices.Contains(uplinks, l.Attrs().Name) {
					first = append(first, ip)
				} else {
					rest = append(rest, ip)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local addresses: %w", err)
	}
	return append(first, rest...), nil
}
