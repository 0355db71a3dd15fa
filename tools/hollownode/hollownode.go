// Package hollownode runs hollow nodes for tests and benchmarks: Node
// objects with capacity, labels, addresses and a Ready condition, their
// Leases in kube-node-lease renewed like a kubelet's heartbeat, and a fake
// node agent that "runs" the pods bound to them: it marks them Running and
// Ready (with a pod IP from the node's podCIDR, container statuses and a
// start time) after an optional delay, and completes graceful deletion as a
// kubelet does, by deleting a pod with deletionTimestamp with a zero grace
// period once it has "stopped".
//
// One Cluster serves many nodes with one shared pod informer and a few
// lease-renewal goroutines, so thousands of nodes are cheap. StopNode
// simulates a dead node: its lease is no longer renewed and its pods are
// no longer looked after.
//
// Node i gets the i-th /24 of Config.PodCIDRs and the i-th address of
// Config.NodeIPs that no other node in the cluster holds, so several
// Clusters (several `skiff hollow-nodes` processes with different name
// prefixes) can join one cluster; Clusters started at the same moment may
// still collide. A node that already exists keeps its podCIDR and the agent
// hands out pod IPs from it, as a kubelet uses the podCIDR the node IPAM
// controller gave its node.
package hollownode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// LeaseNamespace holds node leases.
const LeaseNamespace = corev1.NamespaceNodeLease

// Config configures a Cluster of hollow nodes.
type Config struct {
	Client kubernetes.Interface
	// Count nodes named Prefix + index ("hollow-node-0").
	Count  int
	Prefix string
	// Zones are assigned round robin (topology.kubernetes.io/zone).
	Zones []string
	// Capacity of every node; zero values mean 4 CPUs, 16Gi, 110 pods.
	CPU, Memory resource.Quantity
	Pods        int64
	// PodCIDRs are carved into one /24 per node from this prefix
	// (default 10.64.0.0/10: 16384 nodes). NodeIPs likewise give each node
	// one address (default 100.64.0.0/10).
	PodCIDRs netip.Prefix
	NodeIPs  netip.Prefix
	// LeaseDuration is the leases' leaseDurationSeconds (default 40s);
	// RenewInterval how often they are renewed (default 10s, as kubelet:
	// a quarter of the duration).
	LeaseDuration time.Duration
	RenewInterval time.Duration
	// LeaseWorkers renew leases (default 4); PodWorkers update pods
	// (default 16).
	LeaseWorkers int
	PodWorkers   int
	// StartupDelay is how long a bound pod stays Pending before it runs;
	// StopDelay how long a deleted pod takes to stop.
	StartupDelay time.Duration
	StopDelay    time.Duration
	Logger       *slog.Logger
}

func (c *Config) defaults() error {
	if c.Client == nil {
		return errors.New("hollownode: client is required")
	}
	if c.Count <= 0 {
		return errors.New("hollownode: count must be positive")
	}
	if c.Prefix == "" {
		c.Prefix = "hollow-node-"
	}
	if len(c.Zones) == 0 {
		c.Zones = []string{"zone-a", "zone-b", "zone-c"}
	}
	if c.CPU.IsZero() {
		c.CPU = resource.MustParse("4")
	}
	if c.Memory.IsZero() {
		c.Memory = resource.MustParse("16Gi")
	}
	if c.Pods == 0 {
		c.Pods = 110
	}
	if !c.PodCIDRs.IsValid() {
		c.PodCIDRs = netip.MustParsePrefix("10.64.0.0/10")
	}
	if !c.NodeIPs.IsValid() {
		c.NodeIPs = netip.MustParsePrefix("100.64.0.0/10")
	}
	if !c.PodCIDRs.Addr().Is4() || c.PodCIDRs.Bits() > 24 {
		return fmt.Errorf("hollownode: pod CIDRs %s must be IPv4 and /24 or larger", c.PodCIDRs)
	}
	if !c.NodeIPs.Addr().Is4() {
		return fmt.Errorf("hollownode: node IPs %s must be IPv4", c.NodeIPs)
	}
	c.PodCIDRs, c.NodeIPs = c.PodCIDRs.Masked(), c.NodeIPs.Masked()
	if max := 1 << (24 - c.PodCIDRs.Bits()); c.Count > max {
		return fmt.Errorf("hollownode: %d nodes do not fit in %s (%d /24s)", c.Count, c.PodCIDRs, max)
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.RenewInterval <= 0 {
		c.RenewInterval = c.LeaseDuration / 4
	}
	if c.LeaseWorkers <= 0 {
		c.LeaseWorkers = 4
	}
	if c.PodWorkers <= 0 {
		c.PodWorkers = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// hollow is one node's state.
type hollow struct {
	name    string
	podCIDR netip.Prefix
	nodeIP  netip.Addr

	mu      sync.Mutex
	stopped bool
	lease   *coordinationv1.Lease
	ips     map[types.UID]netip.Addr
	used    map[netip.Addr]bool
}

func (h *hollow) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// allocate returns pod uid's address in the node's /24 (.2 to .254).
func (h *hollow) allocate(uid types.UID, existing string) (netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ip, ok := h.ips[uid]; ok {
		return ip, nil
	}
	if a, err := netip.ParseAddr(existing); err == nil && h.podCIDR.Contains(a) {
		h.ips[uid], h.used[a] = a, true
		return a, nil
	}
	a := h.podCIDR.Addr().Next().Next()
	for ; h.podCIDR.Contains(a); a = a.Next() {
		if b := a.As4(); b[3] == 255 {
			break
		}
		if !h.used[a] {
			h.ips[uid], h.used[a] = a, true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s: pod CIDR %s is full", h.name, h.podCIDR)
}

func (h *hollow) release(uid types.UID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ip, ok := h.ips[uid]; ok {
		delete(h.used, ip)
		delete(h.ips, uid)
	}
}

// held are the pod CIDRs and node addresses the cluster's nodes hold, by
// node name.
type held struct {
	cidrs map[netip.Prefix]string
	ips   map[netip.Addr]string
}

// free reports whether node name may take cidr and ip: no other node holds
// (or overlaps) them.
func (h held) free(name string, cidr netip.Prefix, ip netip.Addr) bool {
	for p, owner := range h.cidrs {
		if owner != name && p.Overlaps(cidr) {
			return false
		}
	}
	if owner, ok := h.ips[ip]; ok && owner != name {
		return false
	}
	return true
}

func heldAddresses(ctx context.Context, client kubernetes.Interface) (held, error) {
	h := held{cidrs: map[netip.Prefix]string{}, ips: map[netip.Addr]string{}}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return h, fmt.Errorf("hollownode: list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		for _, s := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
			if p, err := netip.ParsePrefix(s); err == nil {
				h.cidrs[p.Masked()] = n.Name
			}
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
				h.ips[ip] = n.Name
			}
		}
	}
	return h, nil
}

// Cluster is a set of running hollow nodes.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	nodes  []*hollow
	byName map[string]*hollow

	podLister corelisters.PodLister
	queue     workqueue.TypedRateLimitingInterface[string]
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	// seen records when a pod was first seen bound, for StartupDelay.
	seenMu sync.Mutex
	seen   map[types.UID]time.Time
}

// Start registers the nodes and their leases and starts heartbeats and the
// pod agent. It returns once every node is registered and the pod cache
// is synced. Stop ends everything (the API objects stay; Delete removes
// them).
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger.With("component", "hollownode"),
		byName: map[string]*hollow{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "hollownode"}),
		seen: map[types.UID]time.Time{},
	}
	held, err := heldAddresses(ctx, cfg.Client)
	if err != nil {
		return nil, err
	}
	base4 := cfg.PodCIDRs.Addr().As4()
	baseN := uint32(base4[0])<<24 | uint32(base4[1])<<16 | uint32(base4[2])<<8
	ip4 := cfg.NodeIPs.Addr().As4()
	ipN := uint32(ip4[0])<<24 | uint32(ip4[1])<<16 | uint32(ip4[2])<<8 | uint32(ip4[3])
	slots := 1 << (24 - cfg.PodCIDRs.Bits())
	// Slots are taken in order, skipping those whose /24 or address
	// another node holds: the same nodes get the same slots on a restart.
	slot := 0
	for i := range cfg.Count {
		name := fmt.Sprintf("%s%d", cfg.Prefix, i)
		var cidr netip.Prefix
		var ip netip.Addr
		for ; ; slot++ {
			if slot >= slots {
				return nil, fmt.Errorf("hollownode: no free /24 in %s for node %s", cfg.PodCIDRs, name)
			}
			n := baseN + uint32(slot)<<8
			cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), 0}), 24)
			m := ipN + uint32(slot) + 1
			ip = netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
			if !cfg.NodeIPs.Contains(ip) {
				return nil, fmt.Errorf("hollownode: no free address in %s for node %s", cfg.NodeIPs, name)
			}
			if held.free(name, cidr, ip) {
				break
			}
		}
		slot++
		h := &hollow{
			name:    name,
			podCIDR: cidr,
			nodeIP:  ip,
			ips:     map[types.UID]netip.Addr{},
			used:    map[netip.Addr]bool{},
		}
		c.nodes = append(c.nodes, h)
		c.byName[h.name] = h
	}
	if err := c.register(ctx); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	podInf := factory.Core().V1().Pods()
	c.podLister = podInf.Lister()
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePod,
		UpdateFunc: func(_, cur any) { c.enqueuePod(cur) },
		DeleteFunc: c.podGone,
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("hollownode: add pod handler: %w", err)
	}
	factory.Start(runCtx.Done())
	c.wg.Go(func() {
		<-runCtx.Done()
		factory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced) {
		c.Stop()
		return nil, errors.New("hollownode: pod cache did not sync")
	}
	for range cfg.PodWorkers {
		c.wg.Go(func() {
			for c.processNext(runCtx) {
			}
		})
	}
	for w := range cfg.LeaseWorkers {
		c.wg.Go(func() { c.renewLoop(runCtx, w) })
	}
	return c, nil
}

// Nodes returns the node names.
func (c *Cluster) Nodes() []string {
	out := make([]string, len(c.nodes))
	for i, h := range c.nodes {
		out[i] = h.name
	}
	return out
}

// PodCIDR returns the podCIDR of node name.
func (c *Cluster) PodCIDR(name string) (netip.Prefix, bool) {
	h, ok := c.byName[name]
	if !ok {
		return netip.Prefix{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.podCIDR, true
}

// StopNode makes node name dead: its lease is no longer renewed and its
// pods are no longer updated or finished.
func (c *Cluster) StopNode(name string) error {
	h, ok := c.byName[name]
	if !ok {
		return fmt.Errorf("hollownode: no node %q", name)
	}
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	return nil
}

// Stop ends heartbeats and the pod agent and waits for them.
func (c *Cluster) Stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.queue.ShutDown()
	c.wg.Wait()
}

// Delete removes the Node and Lease objects (for test cleanup).
func (c *Cluster) Delete(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, h := range c.nodes {
		g.Go(func() error {
			err := c.cfg.Client.CoordinationV1().Leases(LeaseNamespace).Delete(gctx, h.name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete lease %s: %w", h.name, err)
			}
			err = c.cfg.Client.CoreV1().Nodes().Delete(gctx, h.name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete node %s: %w", h.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}
