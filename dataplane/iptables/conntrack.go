package iptables

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Flow is the part of a conntrack entry the stale-entry cleanup looks at.
type Flow struct {
	Protocol uint8 // unix.IPPROTO_UDP, ...
	// OrigSrc and OrigDst are the original direction: client to frontend.
	OrigSrc, OrigDst netip.AddrPort
	// ReplySrc is where replies come from: the endpoint after DNAT.
	ReplySrc netip.AddrPort
}

// Conntrack lists and deletes IPv4 conntrack entries of the node.
type Conntrack interface {
	// ListUDP returns the UDP entries.
	ListUDP() ([]Flow, error)
	// Delete deletes the entries with the same protocol and original
	// tuple as the given flows and returns how many were deleted.
	Delete(flows []Flow) (int, error)
}

// NewConntrack returns a Conntrack that uses netlink in the network
// namespace at netnsPath (empty: the current one).
func NewConntrack(netnsPath string) Conntrack { return &netlinkConntrack{path: netnsPath} }

type netlinkConntrack struct{ path string }

func (c *netlinkConntrack) handle() (*netlink.Handle, error) {
	if c.path == "" {
		return netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	ns, err := netns.GetFromPath(c.path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", c.path, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
}

// maxEINTR is how often a dump interrupted by concurrent changes is
// retried, as kube-proxy does.
const maxEINTR = 5

func (c *netlinkConntrack) ListUDP() ([]Flow, error) {
	h, err := c.handle()
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink handle: %w", err)
	}
	defer h.Close()
	var entries []*netlink.ConntrackFlow
	for range maxEINTR {
		entries, err = h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil && !errors.Is(err, unix.EINTR) {
		return nil, fmt.Errorf("list conntrack entries: %w", err)
	}
	var flows []Flow
	for _, e := range entries {
		if e.Forward.Protocol != unix.IPPROTO_UDP {
			continue
		}
		flows = append(flows, flowOf(e))
	}
	return flows, nil
}

func addrPort(ip []byte, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}

func flowOf(e *netlink.ConntrackFlow) Flow {
	return Flow{
		Protocol: e.Forward.Protocol,
		OrigSrc:  addrPort(e.Forward.SrcIP, e.Forward.SrcPort),
		OrigDst:  addrPort(e.Forward.DstIP, e.Forward.DstPort),
		ReplySrc: addrPort(e.Reverse.SrcIP, e.Reverse.SrcPort),
	}
}

type flowKey struct {
	proto            uint8
	origSrc, origDst netip.AddrPort
}

// flowFilter matches conntrack entries by protocol and original tuple.
type flowFilter map[flowKey]struct{}

func (f flowFilter) MatchConntrackFlow(e *netlink.ConntrackFlow) bool {
	fl := flowOf(e)
	_, ok := f[flowKey{fl.Protocol, fl.OrigSrc, fl.OrigDst}]
	return ok
}

func (c *netlinkConntrack) Delete(flows []Flow) (int, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	filter := make(flowFilter, len(flows))
	for _, fl := range flows {
		filter[flowKey{fl.Protocol, fl.OrigSrc, fl.OrigDst}] = struct{}{}
	}
	h, err := c.handle()
	if err != nil {
		return 0, fmt.Errorf("conntrack netlink handle: %w", err)
	}
	defer h.Close()
	var total uint
	for range maxEINTR {
		var n uint
		n, err = h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filter)
		total += n
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return int(total), fmt.Errorf("delete conntrack entries: %w", err)
	}
	return int(total), nil
}
