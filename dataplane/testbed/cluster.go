// Package testbed builds a small cluster out of network namespaces for
// dataplane tests and benchmarks: nodes on a shared L2 segment, pods
// behind each node, and an external client, with helpers to serve and
// dial TCP and UDP echo traffic between them.
//
// Layout (addresses are the same in every test bed; namespaces are
// isolated, so parallel test beds do not clash, only their names must
// differ):
//
//	fabric netns: bridge br0, one port per node (n<i>) and one for the client (cl)
//	client netns: eth0 172.30.0.2/24 (FabricCIDR); routes added by tests
//	node i netns: eth0 172.30.0.(10+i)/24 (the uplink, Node.Uplink)
//	              default route via the client; 10.244.k.0/24 via node k
//	              for the other nodes; lxc<j> to each local pod (/32 route,
//	              source the node IP)
//	              ip_forward=1, rp_filter=0
//	pod j netns:  eth0 10.244.i.(10+j)/32, default via 169.254.1.1, which is
//	              the (scope link) address of the host side, lxc<j>
//
// Pods are routed, not bridged (like Calico): a pod's traffic always
// enters its node through the host-side veth (Pod.HostVeth, where a TC
// program attaches), and traffic from the fabric enters through
// Node.Uplink (where an XDP program attaches).
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/skiff-project/skiff/dataplane"
)

// Address plan.
var (
	// FabricCIDR is the L2 segment of the nodes' uplinks and the client.
	FabricCIDR = netip.MustParsePrefix("172.30.0.0/24")
	// ClientIP is the external client's address.
	ClientIP = netip.MustParseAddr("172.30.0.2")
	// ClusterCIDR holds every pod address; node i has 10.244.i.0/24.
	ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	// PodGateway is the pods' next hop, the address of every host-side
	// pod veth (scope link, so it is never picked as a source address).
	PodGateway = netip.MustParseAddr("169.254.1.1")
)

const (
	// UplinkName is each node's (and the client's) link to the fabric.
	UplinkName = "eth0"
	bridgeName = "br0"
	maxNodes   = 200
	maxPods    = 240
)

// NodeIP returns node i's address.
func NodeIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{172, 30, 0, byte(10 + i)}) }

// PodCIDR returns node i's pod range.
func PodCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24)
}

// PodIP returns the address of pod j on node i.
func PodIP(i, j int) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, byte(i), byte(10 + j)}) }

// Config sizes a test bed.
type Config struct {
	// Prefix starts every namespace name ("<prefix>-n0", "<prefix>-n0p1",
	// "<prefix>-cl", "<prefix>-fab"). Default: "sktb" and 6 random hex
	// digits. When set, leftovers with this prefix are removed first.
	Prefix string
	// Nodes is the number of nodes (default 2, at most 200).
	Nodes int
	// PodsPerNode is the number of pods on each node (default 2, at most 240).
	PodsPerNode int
	// Logger receives progress at debug level. Default: discard.
	Logger *slog.Logger
}

// Cluster is a built test bed.
type Cluster struct {
	Prefix string
	Fabric *NetNS
	Client *NetNS
	Nodes  []*Node

	log *slog.Logger

	mu     sync.Mutex
	open   map[io.Closer]struct{} // servers and connections, closed before the namespaces
	all    []*NetNS               // every namespace, in creation order
	closed bool
}

// Node is one node: a namespace with an uplink on the fabric and a veth
// per pod.
type Node struct {
	Index int
	// Name is the Kubernetes node name ("node-<i>"), the NodeName of the
	// node's endpoints.
	Name string
	NS   *NetNS
	IP   netip.Addr
	// Uplink is the link to the fabric inside NS ("eth0").
	Uplink string
	// UplinkIndex is Uplink's ifindex inside NS.
	UplinkIndex int
	// FabricPeer is the other end of Uplink, in the fabric namespace
	// (an XDP program there makes XDP_TX from Uplink's peer possible).
	FabricPeer string
	PodCIDR    netip.Prefix
	Pods       []*Pod
	cluster    *Cluster
}

// Pod is one pod: a namespace with eth0, routed through its node.
type Pod struct {
	Index int
	// Name is "node-<i>-pod-<j>"; echo servers in the pod answer with it.
	Name string
	Node *Node
	NS   *NetNS
	IP   netip.Addr
	// HostVeth is the pod's veth inside the node namespace ("lxc<j>").
	HostVeth string
	// HostVethIndex is HostVeth's ifindex inside the node namespace.
	HostVethIndex int
}

// Config returns the node's facts for a dataplane provider: its name, its
// IP as the NodePort address and the test bed's cluster CIDR.
func (n *Node) Config() dataplane.NodeConfig {
	return dataplane.NodeConfig{
		Name:         n.Name,
		NodeIPs:      []netip.Addr{n.IP},
		ClusterCIDRs: []netip.Prefix{ClusterCIDR},
	}
}

// New builds a test bed. On error everything created so far is removed.
func New(cfg Config) (*Cluster, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	if cfg.PodsPerNode == 0 {
		cfg.PodsPerNode = 2
	}
	if cfg.Nodes < 1 || cfg.Nodes > maxNodes || cfg.PodsPerNode < 0 || cfg.PodsPerNode > maxPods {
		return nil, fmt.Errorf("testbed: %d nodes with %d pods each is out of range", cfg.Nodes, cfg.PodsPerNode)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Prefix == "" {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("testbed: random prefix: %w", err)
		}
		cfg.Prefix = "sktb" + hex.EncodeToString(b)
	} else if err := CleanupPrefix(cfg.Prefix + "-"); err != nil {
		return nil, fmt.Errorf("testbed: remove leftovers: %w", err)
	}
	c := &Cluster{Prefix: cfg.Prefix, log: cfg.Logger.With("testbed", cfg.Prefix), open: make(map[io.Closer]struct{})}
	if err := c.build(cfg); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func (c *Cluster) newNS(suffix string) (*NetNS, error) {
	ns, err := createNetNS(c.Prefix + "-" + suffix)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	c.all = append(c.all, ns)
	return ns, nil
}

func (c *Cluster) build(cfg Config) error {
	var err error
	if c.Fabric, err = c.newNS("fab"); err != nil {
		return err
	}
	fab, err := c.Fabric.Netlink()
	if err != nil {
		return err
	}
	defer fab.Close()
	if err := setUp(fab, "lo"); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := fab.LinkAdd(br); err != nil {
		return fmt.Errorf("testbed: add bridge: %w", err)
	}
	if err := setUp(fab, bridgeName); err != nil {
		return err
	}

	if c.Client, err = c.newNS("cl"); err != nil {
		return err
	}
	if _, err := c.attachToFabric(fab, c.Client, "cl", ClientIP); err != nil {
		return err
	}

	for i := range cfg.Nodes {
		n := &Node{
			Index: i, Name: fmt.Sprintf("node-%d", i), IP: NodeIP(i),
			Uplink: UplinkName, FabricPeer: fmt.Sprintf("n%d", i),
			PodCIDR: PodCIDR(i), cluster: c,
		}
		if n.NS, err = c.newNS(fmt.Sprintf("n%d", i)); err != nil {
			return err
		}
		if n.UplinkIndex, err = c.attachToFabric(fab, n.NS, n.FabricPeer, n.IP); err != nil {
			return err
		}
		if err := c.buildNode(n, cfg.Nodes, cfg.PodsPerNode); err != nil {
			return err
		}
		c.Nodes = append(c.Nodes, n)
		c.log.Debug("node ready", "node", n.Name, "netns", n.NS.Name(), "ip", n.IP)
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("testbed: find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("testbed: set %s up: %w", name, err)
	}
	return nil
}

func addAddr(h *netlink.Handle, link string, p netip.Prefix, scope netlink.Scope) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("testbed: find link %s: %w", link, err)
	}
	a := &netlink.Addr{IPNet: prefixNet(p), Scope: int(scope)}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("testbed: add %s to %s: %w", p, link, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// attachToFabric creates ns's eth0 with its peer (named peer) on the
// fabric bridge and gives eth0 ip/24. It returns eth0's ifindex.
func (c *Cluster) attachToFabric(fab *netlink.Handle, ns *NetNS, peer string, ip netip.Addr) (int, error) {
	h, err := ns.Netlink()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	fabFd, err := netns.GetFromPath(c.Fabric.Path())
	if err != nil {
		return 0, fmt.Errorf("testbed: open fabric netns: %w", err)
	}
	defer fabFd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: UplinkName},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(int(fabFd)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("testbed: add veth %s/%s: %w", ns.Name(), UplinkName, err)
	}
	pl, err := fab.LinkByName(peer)
	if err != nil {
		return 0, fmt.Errorf("testbed: find fabric port %s: %w", peer, err)
	}
	br, err := fab.LinkByName(bridgeName)
	if err != nil {
		return 0, fmt.Errorf("testbed: find bridge: %w", err)
	}
	if err := fab.LinkSetMaster(pl, br); err != nil {
		return 0, fmt.Errorf("testbed: attach %s to bridge: %w", peer, err)
	}
	if err := fab.LinkSetUp(pl); err != nil {
		return 0, fmt.Errorf("testbed: set %s up: %w", peer, err)
	}
	for _, l := range []string{"lo", UplinkName} {
		if err := setUp(h, l); err != nil {
			return 0, err
		}
	}
	if err := addAddr(h, UplinkName, netip.PrefixFrom(ip, FabricCIDR.Bits()), netlink.SCOPE_UNIVERSE); err != nil {
		return 0, err
	}
	l, err := h.LinkByName(UplinkName)
	if err != nil {
		return 0, fmt.Errorf("testbed: find %s: %w", UplinkName, err)
	}
	return l.Attrs().Index, nil
}

func (c *Cluster) buildNode(n *Node, nodes, pods int) error {
	for _, kv := range [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv4/conf/" + UplinkName + "/rp_filter", "0"},
	} {
		if err := n.NS.Sysctl(kv[0], kv[1]); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	h, err := n.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	uplink, err := h.LinkByName(UplinkName)
	if err != nil {
		return fmt.Errorf("testbed: find %s on %s: %w", UplinkName, n.Name, err)
	}
	// Other nodes' pods via their node; everything else via the client.
	for k := range nodes {
		if k == n.Index {
			continue
		}
		r := &netlink.Route{LinkIndex: uplink.Attrs().Index, Dst: prefixNet(PodCIDR(k)), Gw: NodeIP(k).AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("testbed: route %s via %s on %s: %w", PodCIDR(k), NodeIP(k), n.Name, err)
		}
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: uplink.Attrs().Index, Gw: ClientIP.AsSlice()}); err != nil {
		return fmt.Errorf("testbed: default route on %s: %w", n.Name, err)
	}
	for j := range pods {
		p := &Pod{
			Index: j, Name: fmt.Sprintf("%s-pod-%d", n.Name, j), Node: n,
			IP: PodIP(n.Index, j), HostVeth: fmt.Sprintf("lxc%d", j),
		}
		if p.NS, err = c.newNS(fmt.Sprintf("n%dp%d", n.Index, j)); err != nil {
			return err
		}
		if err := c.buildPod(h, p); err != nil {
			return err
		}
		n.Pods = append(n.Pods, p)
	}
	return nil
}

func (c *Cluster) buildPod(node *netlink.Handle, p *Pod) error {
	podFd, err := netns.GetFromPath(p.NS.Path())
	if err != nil {
		return fmt.Errorf("testbed: open netns %s: %w", p.NS.Name(), err)
	}
	defer podFd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostVeth},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(podFd)),
	}
	if err := node.LinkAdd(veth); err != nil {
		return fmt.Errorf("testbed: add veth %s for %s: %w", p.HostVeth, p.Name, err)
	}
	host, err := node.LinkByName(p.HostVeth)
	if err != nil {
		return fmt.Errorf("testbed: find %s: %w", p.HostVeth, err)
	}
	p.HostVethIndex = host.Attrs().Index
	if err := p.Node.NS.Sysctl("net/ipv4/conf/"+p.HostVeth+"/rp_filter", "0"); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := addAddr(node, p.HostVeth, netip.PrefixFrom(PodGateway, 32), netlink.SCOPE_LINK); err != nil {
		return err
	}
	if err := node.LinkSetUp(host); err != nil {
		return fmt.Errorf("testbed: set %s up: %w", p.HostVeth, err)
	}
	// src: the node host talks to its pods from the node IP, not from the
	// link-scoped gateway address.
	r := &netlink.Route{
		LinkIndex: host.Attrs().Index, Dst: prefixNet(netip.PrefixFrom(p.IP, 32)),
		Scope: netlink.SCOPE_LINK, Src: p.Node.IP.AsSlice(),
	}
	if err := node.RouteAdd(r); err != nil {
		return fmt.Errorf("testbed: route to %s: %w", p.Name, err)
	}

	h, err := p.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	for _, l := range []string{"lo", "eth0"} {
		if err := setUp(h, l); err != nil {
			return err
		}
	}
	if err := addAddr(h, "eth0", netip.PrefixFrom(p.IP, 32), netlink.SCOPE_UNIVERSE); err != nil {
		return err
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("testbed: find eth0 in %s: %w", p.Name, err)
	}
	gw := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: prefixNet(netip.PrefixFrom(PodGateway, 32)), Scope: netlink.SCOPE_LINK}
	if err := h.RouteAdd(gw); err != nil {
		return fmt.Errorf("testbed: gateway route in %s: %w", p.Name, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: PodGateway.AsSlice()}); err != nil {
		return fmt.Errorf("testbed: default route in %s: %w", p.Name, err)
	}
	return nil
}

// Pods returns every pod, node by node.
func (c *Cluster) Pods() []*Pod {
	var out []*Pod
	for _, n := range c.Nodes {
		out = append(out, n.Pods...)
	}
	return out
}

// RouteFromClient routes dst from the external client to node n, e.g. a
// LoadBalancer ingress IP or an external IP: the client then sends such
// traffic to the node, as an upstream router or load balancer would.
func (c *Cluster) RouteFromClient(dst netip.Prefix, n *Node) error {
	h, err := c.Client.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(UplinkName)
	if err != nil {
		return fmt.Errorf("testbed: find client %s: %w", UplinkName, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(dst), Gw: n.IP.AsSlice()}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("testbed: client route %s via %s: %w", dst, n.IP, err)
	}
	return nil
}

// track registers something to close before the namespaces go.
func (c *Cluster) track(cl io.Closer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("testbed: closed")
	}
	c.open[cl] = struct{}{}
	return nil
}

// untrack forgets something closed by its owner.
func (c *Cluster) untrack(cl io.Closer) {
	c.mu.Lock()
	delete(c.open, cl)
	c.mu.Unlock()
}

// Close stops every server and connection the test bed made and deletes
// its namespaces (their links go with them). It is idempotent.
func (c *Cluster) Close() error {
	c.mu.Lock()
	open := c.open
	c.open = make(map[io.Closer]struct{})
	c.closed = true
	all := c.all
	c.all = nil
	c.mu.Unlock()
	var errs []error
	for cl := range open {
		if err := cl.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		all[i].closeWorkers()
		errs = append(errs, deleteNetNS(all[i].Name()))
	}
	return errors.Join(errs...)
}
