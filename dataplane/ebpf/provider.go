package ebpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/skiff-project/skiff/dataplane"
)

// Defaults of Config.
const (
	DefaultMinSyncInterval  = time.Second
	DefaultSyncInterval     = 10 * time.Second // retry after a failed sync
	DefaultFullSyncInterval = time.Hour
	DefaultBurst            = 2
	DefaultCgroupPath       = "/sys/fs/cgroup/unified"
	// DefaultConntrackGCInterval is how often expired conntrack pairs
	// are deleted: a closed flow's SNAT port is free again 10-20 s after
	// its last packet.
	DefaultConntrackGCInterval = 10 * time.Second
)

// Config configures a Provider for one node.
type Config struct {
	Node dataplane.NodeConfig
	// NetNS is the path of the node's network namespace (e.g.
	// /run/netns/node-1); empty: the provider's own. Uplinks and pod
	// veths are interfaces of this namespace, and its sockets count as
	// the node's own.
	NetNS string
	// PinPath is the node's bpffs directory; default
	// /sys/fs/bpf/skiff/<node name>.
	PinPath string
	// Uplinks get the XDP program (NodePort, LoadBalancer and external
	// IPs from outside the node).
	Uplinks []string
	// SocketLB translates pods' connections at the socket level (TCP
	// connect, unconnected UDP sends; connected UDP sockets of pods stay
	// with TC so endpoint removal reaches them). Off, all pod traffic to
	// Services is translated per packet by TC. The socket programs sit on
	// CgroupPath (a cgroup2 directory; default /sys/fs/cgroup/unified)
	// in both modes, for the node's own sockets.
	SocketLB   bool
	CgroupPath string
	// MapSizes are the maps' capacities (zero fields: defaults).
	MapSizes MapSizes
	// MaglevSize is the smallest Maglev table size M, a prime (default
	// DefaultMaglevSize); sets with more than M/100 backends get a
	// larger prime, above 100 times their backend count.
	MaglevSize uint32
	// SNATPortMin..SNATPortMax are the source ports of NodePort traffic
	// SNATed to a remote backend (default 40000-60999).
	SNATPortMin, SNATPortMax uint16
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registry receives the metrics; nil: none.
	Registry prometheus.Registerer

	MinSyncInterval  time.Duration // default DefaultMinSyncInterval
	SyncInterval     time.Duration // default DefaultSyncInterval
	FullSyncInterval time.Duration // default DefaultFullSyncInterval
	Burst            int           // default DefaultBurst
	// ConntrackGCInterval is the period of the conntrack GC (default
	// DefaultConntrackGCInterval; negative: no periodic GC, as in
	// tests that call ExpireConntrack themselves).
	ConntrackGCInterval time.Duration

	// Maps replaces the BPF maps (e.g. with NewFake): nothing is loaded
	// or attached, for tests without privileges.
	Maps Maps
}

// Pod is a pod's network attachment on this node.
type Pod struct {
	// HostVeth is the pod's veth in the node's namespace.
	HostVeth string
	// NetNS is the pod's network namespace path; its sockets are
	// translated by this node's socket hooks.
	NetNS string
}

// Provider is the eBPF dataplane.Provider of one node. The On* handlers
// come from the embedded ChangeTracker and request a sync from SyncLoop.
type Provider struct {
	*dataplane.ChangeTracker

	cfg     Config
	log     *slog.Logger
	pinPath string
	runner  *dataplane.Runner
	metrics *dataplane.SyncMetrics
	prom    *collector

	objs *objects // nil with Config.Maps
	maps Maps

	mu       sync.Mutex // one sync at a time; guards below
	closed   bool
	rec      *reconciler
	lastFull time.Time

	gcKick chan struct{}
	done   chan struct{}

	// ctMu serialises conntrack GC passes with Close (the GC runs off
	// mu so that a pass over a large map never holds up a sync);
	// ctClosed is set under it.
	ctMu        sync.Mutex
	ctClosed    bool
	ctGCDeleted atomic.Uint64
	ctGCRuns    atomic.Uint64

	lastTimings SyncTimings
}

// SyncTimings splits the last sync's duration: Apply is the change
// tracker folding recorded events into an Update; Reconcile is the diff
// and the map writes.
type SyncTimings struct {
	Apply, Reconcile time.Duration
	// Ops is the number of map entries written or deleted.
	Ops int
}

// LastSyncTimings returns the timings of the last successful sync.
func (p *Provider) LastSyncTimings() SyncTimings {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastTimings
}

var _ dataplane.Provider = (*Provider)(nil)

// New loads (or re-opens) the node's BPF objects, attaches the programs
// (updating pinned links of a previous run in place), registers the node's
// network namespace and returns the provider. Its first Sync is a full
// diff against what the maps already hold.
func New(cfg Config) (*Provider, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Node.Name == "" {
		return nil, errors.New("ebpf provider: node name required")
	}
	if cfg.MinSyncInterval == 0 {
		cfg.MinSyncInterval = DefaultMinSyncInterval
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.FullSyncInterval == 0 {
		cfg.FullSyncInterval = DefaultFullSyncInterval
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.ConntrackGCInterval == 0 {
		cfg.ConntrackGCInterval = DefaultConntrackGCInterval
	}
	if cfg.MaglevSize == 0 {
		cfg.MaglevSize = DefaultMaglevSize
	}
	if cfg.CgroupPath == "" {
		cfg.CgroupPath = DefaultCgroupPath
	}
	if cfg.PinPath == "" {
		cfg.PinPath = pinDirFor(cfg.Node.Name)
	}
	log := cfg.Logger.With("component", "ebpf-provider", "node", cfg.Node.Name)
	if len(cfg.Node.NodeIPs) == 0 && cfg.Maps == nil {
		// Unlike iptables' "addrtype LOCAL" this is read once: an agent
		// that wants later addresses names them.
		addrs, err := localAddrs(cfg.NetNS, cfg.Uplinks)
		if err != nil {
			return nil, fmt.Errorf("ebpf provider: %w", err)
		}
		if len(addrs) == 0 {
			return nil, errors.New("ebpf provider: no NodeIPs given and the node has no IPv4 address")
		}
		cfg.Node.NodeIPs = addrs
		log.Info("NodePorts on the node's addresses", "addresses", addrs)
	}
	p := &Provider{cfg: cfg, log: log, pinPath: cfg.PinPath, maps: cfg.Maps}
	if p.maps == nil {
		if err := p.load(); err != nil {
			return nil, fmt.Errorf("ebpf provider: %w", err)
		}
	}
	p.rec = newReconciler(p.maps, cfg.Node, cfg.MapSizes, uint64(cfg.MaglevSize), log)
	p.rec.deferGC = true
	p.gcKick = make(chan struct{}, 1)
	p.done = make(chan struct{})
	if cfg.Registry != nil {
		m, err := dataplane.NewSyncMetrics(cfg.Registry, "ebpf")
		if err != nil {
			p.closeObjects()
			return nil, fmt.Errorf("ebpf provider: %w", err)
		}
		p.metrics = m
		p.prom = newCollector(p)
		if err := cfg.Registry.Register(p.prom); err != nil {
			p.closeObjects()
			return nil, fmt.Errorf("ebpf provider: register collector: %w", err)
		}
	}
	p.runner = dataplane.NewRunner("ebpf-sync", p.runnerSync, cfg.MinSyncInterval, cfg.FullSyncInterval, cfg.Burst,
		dataplane.WithRunnerLogger(log))
	p.ChangeTracker = dataplane.NewChangeTracker(cfg.Node,
		dataplane.WithTrackerLogger(log), dataplane.WithNotify(p.runner.Loop))
	go p.gcLoop()
	if cfg.ConntrackGCInterval > 0 {
		go p.ctGCLoop(cfg.ConntrackGCInterval)
	}
	return p, nil
}

// load loads the objects and attaches the node-wide programs.
func (p *Provider) load() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock rlimit: %w", err)
	}
	if err := EnsureBPFFS(); err != nil {
		return err
	}
	var nodeIP netip.Addr
	for _, a := range p.cfg.Node.NodeIPs {
		if a.Is4() {
			nodeIP = a
			break
		}
	}
	objs, err := loadObjects(loadOptions{PinPath: p.pinPath, Sizes: p.cfg.MapSizes, NodeIP: nodeIP,
		MaglevSize: p.cfg.MaglevSize, SNATMin: p.cfg.SNATPortMin, SNATMax: p.cfg.SNATPortMax})
	if err != nil {
		return err
	}
	p.objs = objs
	m, err := newBpfMaps(objs)
	if err != nil {
		p.closeObjects()
		return err
	}
	m.nodeNetNS = p.cfg.NetNS
	if objs.iterErr != nil {
		p.log.Warn("connected UDP sockets of the node keep a removed backend until they reconnect: this kernel cannot destroy them",
			"err", objs.iterErr)
	}
	p.maps = m
	if err := p.attachNode(); err != nil {
		p.closeObjects()
		return err
	}
	return nil
}

// cgroupHook is a socket program and its attach type.
type cgroupHook struct {
	name, prog string
	attach     ebpf.AttachType
}

// cgroupHooks returns the socket programs.
func cgroupHooks() []cgroupHook {
	return []cgroupHook{
		{"cgroup_connect4", progConnect4, ebpf.AttachCGroupInet4Connect},
		{"cgroup_sendmsg4", progSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"cgroup_recvmsg4", progRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
		{"cgroup_getpeername4", progGetpeername, ebpf.AttachCgroupInet4GetPeername},
	}
}

func (p *Provider) attachNode() error {
	cookie, err := netnsCookie(p.cfg.NetNS)
	if err != nil {
		return fmt.Errorf("node netns cookie: %w", err)
	}
	if err := p.maps.AddNetNS(cookie, NetNSHost); err != nil {
		return fmt.Errorf("register node netns: %w", err)
	}
	if err := EnsureCgroup2(p.cfg.CgroupPath); err != nil {
		return err
	}
	// The socket hooks are attached in both modes: the node's own
	// sockets have no per-packet hook. Without SocketLB pods' namespaces
	// are not registered, so pod traffic goes through TC.
	for _, h := range cgroupHooks() {
		prog := p.objs.progs[h.prog]
		at := h.attach
		if err := p.ensureLink(h.name, prog, func() (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: p.cfg.CgroupPath, Attach: at, Program: prog})
		}); err != nil {
			return err
		}
	}
	for _, up := range p.cfg.Uplinks {
		if err := p.completeChecksumsOnVeth(up); err != nil {
			return err
		}
		if err := p.ensureLink("xdp_"+up, p.objs.progs[progXDP], p.attachXDP(up, p.objs.progs[progXDP])); err != nil {
			return err
		}
		if err := p.ensureLink("uplink_"+up, p.objs.progs[progUplink],
			p.attachTCX(up, p.objs.progs[progUplink], ebpf.AttachTCXIngress)); err != nil {
			return err
		}
	}
	return nil
}

// AddPod attaches the per-packet programs to a pod's host-side veth and
// registers the pod's namespace as this node's (its sockets then get the
// socket-level LB). Calling it again for the same pod is harmless.
func (p *Provider) AddPod(pod Pod) error {
	if p.objs == nil {
		return errors.New("ebpf provider: no BPF objects (fake maps)")
	}
	if pod.NetNS != "" && p.cfg.SocketLB {
		cookie, err := netnsCookie(pod.NetNS)
		if err != nil {
			return fmt.Errorf("ebpf provider: pod netns cookie: %w", err)
		}
		if err := p.maps.AddNetNS(cookie, NetNSPod); err != nil {
			return fmt.Errorf("ebpf provider: register pod netns: %w", err)
		}
	}
	if pod.HostVeth == "" {
		return nil
	}
	if err := p.ensureLink("pod_"+pod.HostVeth+"_in", p.objs.progs[progFromPod],
		p.attachTCX(pod.HostVeth, p.objs.progs[progFromPod], ebpf.AttachTCXIngress)); err != nil {
		return fmt.Errorf("ebpf provider: %w", err)
	}
	if err := p.ensureLink("pod_"+pod.HostVeth+"_eg", p.objs.progs[progToPod],
		p.attachTCX(pod.HostVeth, p.objs.progs[progToPod], ebpf.AttachTCXEgress)); err != nil {
		return fmt.Errorf("ebpf provider: %w", err)
	}
	return nil
}

// RemovePod detaches the pod's programs and forgets its namespace. The
// namespace must still exist for its cookie to be found; when it is gone
// already, its cookie can never be seen again and stays harmlessly until
// Cleanup.
func (p *Provider) RemovePod(pod Pod) error {
	var errs []error
	if pod.NetNS != "" {
		if cookie, err := netnsCookie(pod.NetNS); err == nil {
			errs = append(errs, p.maps.DeleteNetNS(cookie))
		}
	}
	if pod.HostVeth != "" && p.objs != nil {
		errs = append(errs, p.removeLink("pod_"+pod.HostVeth+"_in"), p.removeLink("pod_"+pod.HostVeth+"_eg"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ebpf provider: remove pod: %w", err)
	}
	return nil
}

// SyncLoop runs rate-limited syncs until ctx is done: one soon after
// start, then whenever changes are recorded, after a failure within
// SyncInterval, and at least once per FullSyncInterval.
func (p *Provider) SyncLoop(ctx context.Context) {
	p.runner.Loop()
	p.runner.Run(ctx)
}

func (p *Provider) runnerSync() {
	if err := p.Sync(); err != nil {
		p.log.Error("sync failed", "error", err, "retry", p.cfg.SyncInterval)
		p.runner.RetryAfter(p.cfg.SyncInterval)
	}
}

// Sync applies every recorded change now. A full map is returned as an
// error wrapping ErrMapFull (and counted); the next sync retries.
func (p *Provider) Sync() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("ebpf provider: closed")
	}
	start := time.Now()
	full := p.lastFull.IsZero() || time.Since(p.lastFull) >= p.cfg.FullSyncInterval
	u := p.Apply()
	applied := time.Now()
	ops, err := p.rec.sync(u, full)
	kind := "partial"
	if full {
		kind = "full"
	}
	p.metrics.ObserveSync(kind, start, u, err)
	if p.prom != nil {
		p.prom.observe(err)
	}
	if err != nil {
		return fmt.Errorf("ebpf provider: sync: %w", err)
	}
	if full {
		p.lastFull = time.Now()
	}
	p.lastTimings = SyncTimings{Apply: applied.Sub(start), Reconcile: time.Since(applied), Ops: ops}
	if len(p.rec.gcPending) > 0 {
		select {
		case p.gcKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// gcLoop flushes the conntrack state of deleted backends after the syncs
// that deleted them (see reconciler.deferGC).
func (p *Provider) gcLoop() {
	for {
		select {
		case <-p.done:
			return
		case <-p.gcKick:
		}
		p.mu.Lock()
		if !p.closed {
			if _, err := p.rec.collect(); err != nil {
				p.log.Error("conntrack collection failed", "error", err)
			}
		}
		p.mu.Unlock()
	}
}

// ctGCLoop deletes expired conntrack pairs every interval.
func (p *Provider) ctGCLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if _, err := p.ExpireConntrack(); err != nil {
			p.log.Error("conntrack GC failed", "error", err)
		}
	}
}

// ExpireConntrack deletes the conntrack pairs whose lifetime ended
// (closed TCP flows 10 s after their last packet, established ones after
// 6 h idle, attempts and UDP flows after 60 s) and entries that lost their
// other half, and returns how many entries went. The provider runs it
// every ConntrackGCInterval; skiff_ebpf_conntrack_gc_deleted_total counts
// what it deleted.
func (p *Provider) ExpireConntrack() (int, error) {
	p.ctMu.Lock()
	defer p.ctMu.Unlock()
	if p.ctClosed {
		return 0, errors.New("ebpf provider: closed")
	}
	now, err := monotonicNow()
	if err != nil {
		return 0, fmt.Errorf("ebpf provider: conntrack GC: %w", err)
	}
	start := time.Now()
	n, err := p.maps.ExpireConntrack(now)
	p.ctGCRuns.Add(1)
	p.ctGCDeleted.Add(uint64(n))
	if err != nil {
		return n, fmt.Errorf("ebpf provider: conntrack GC: %w", err)
	}
	if n > 0 {
		p.log.Debug("conntrack GC", "deleted", n, "took", time.Since(start))
	}
	return n, nil
}

// FlushConntrack does now what the background collection would: destroys
// the node's UDP sockets connected to deleted backends and flushes their
// conntrack and affinity entries.
func (p *Provider) FlushConntrack() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("ebpf provider: closed")
	}
	if _, err := p.rec.collect(); err != nil {
		return fmt.Errorf("ebpf provider: %w", err)
	}
	return nil
}

// Close releases the provider's handles. Maps, programs and links stay
// pinned: traffic keeps flowing and a new provider takes the state over.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.done)
	p.ctMu.Lock()
	p.ctClosed = true
	p.ctMu.Unlock()
	p.closeObjects()
	return nil
}

func (p *Provider) closeObjects() {
	if b, ok := p.maps.(*Bpf); ok {
		b.close()
	}
	if p.objs != nil {
		p.objs.close()
	}
}

// Cleanup detaches every program of the node and removes its pinned maps
// and links (conntrack included).
func (p *Provider) Cleanup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	entries, err := os.ReadDir(filepath.Join(p.pinPath, "links"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read link pins: %w", err))
	}
	for _, e := range entries {
		errs = append(errs, p.removeLink(e.Name()))
	}
	if p.objs != nil || p.cfg.Maps == nil {
		if err := os.RemoveAll(p.pinPath); err != nil {
			errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
		}
	}
	p.rec.needFull = true
	p.lastFull = time.Time{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ebpf provider: cleanup: %w", err)
	}
	return nil
}

// completeChecksumsOnVeth turns off transmit checksum offload on a veth
// uplink (see DisableTxChecksumOffload): packets this node forwards to
// other nodes then carry complete checksums, as they would after a real
// NIC, and the other nodes' XDP can update them incrementally. Real NICs
// are left alone.
func (p *Provider) completeChecksumsOnVeth(ifname string) error {
	var kind string
	err := inNetNS(p.cfg.NetNS, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("uplink %s: %w", ifname, err)
		}
		kind = l.Type()
		return nil
	})
	if err != nil || kind != "veth" {
		return err
	}
	p.log.Info("veth uplink: transmit checksum offload off so XDP sees complete checksums", "uplink", ifname)
	return DisableTxChecksumOffload(p.cfg.NetNS, ifname)
}
