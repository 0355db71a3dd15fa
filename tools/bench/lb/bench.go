package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/ebpf"
	"github.com/skiff-project/skiff/dataplane/iptables"
	"github.com/skiff-project/skiff/dataplane/testbed"
)

// bench is one run's test bed and shared setup.
type bench struct {
	c       *testbed.Cluster
	o       options
	log     *slog.Logger
	pinBase string
	peers   []link.Link
	servers []*echoServer
	// iptablesDefault describes the machine's iptables ("nf_tables" or
	// "legacy", from iptables --version).
	iptablesDefault string
}

// prepare lets node 0's XDP transmit (an XDP program on the fabric side of
// its uplink) and makes the external client and the nodes send complete
// checksums, as they would behind real NICs (see
// ebpf.DisableTxChecksumOffload; node 1 runs no provider that would do
// it). All modes run on the same prepared test bed.
func (b *bench) prepare() error {
	if err := ebpf.EnsureBPFFS(); err != nil {
		return err
	}
	b.pinBase = pinBase()
	for _, pod := range b.c.Pods() {
		s, err := startEcho(pod.NS.Path(), pod.Name, targetPort, b.o.nice)
		if err != nil {
			return err
		}
		b.servers = append(b.servers, s)
	}
	for _, n := range b.c.Nodes {
		l, err := ebpf.PassXDP(b.c.Fabric.Path(), n.FabricPeer)
		if err != nil {
			return err
		}
		b.peers = append(b.peers, l)
	}
	for _, n := range b.c.Nodes {
		if err := ebpf.DisableTxChecksumOffload(n.NS.Path(), n.Uplink); err != nil {
			return err
		}
	}
	// The probes' clients close first and keep TIME_WAIT for a minute,
	// 2,050 per point and destination; after about seven points within a
	// minute every connect() walked some 14,000 TIME_WAIT ports of one
	// parity before it found a free one (1 to 5 ms each, whatever the
	// dataplane). Load generators reuse TIME_WAIT ports older than a
	// second instead (tcp_tw_reuse=1, safe with TCP timestamps).
	for _, ns := range []*testbed.NetNS{b.c.Client, b.c.Nodes[0].Pods[1].NS} {
		if err := ns.Sysctl("net/ipv4/tcp_tw_reuse", "1"); err != nil {
			return err
		}
	}
	return ebpf.DisableTxChecksumOffload(b.c.Client.Path(), testbed.UplinkName)
}

func (b *bench) close() error {
	var errs []error
	for _, s := range b.servers {
		errs = append(errs, s.close())
	}
	for _, l := range b.peers {
		errs = append(errs, l.Close())
	}
	if b.pinBase != "" {
		errs = append(errs, os.RemoveAll(b.pinBase))
	}
	return errors.Join(errs...)
}

// iptablesBackend is the iptables variant the baseline uses at n
// Services (docs/decisions/0002-iptables-baseline-backend.md): the legacy
// one from --iptables-legacy-from Services up, the machine's default below.
func (b *bench) iptablesBackend(n int) (iptables.Backend, string) {
	if b.o.legacyFrom > 0 && n >= b.o.legacyFrom {
		return iptables.BackendLegacy, "legacy"
	}
	return iptables.BackendDefault, "default (" + b.iptablesDefault + ")"
}

// newProvider returns a provider of the mode for node 0.
func (b *bench) newProvider(mode string, n int) (dataplane.Provider, *ebpf.Provider, error) {
	node := b.c.Nodes[0]
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if mode == ModeIPTables {
		backend, _ := b.iptablesBackend(n)
		p, err := iptables.New(iptables.Config{Node: node.Config(), NetNS: node.NS.Path(), Backend: backend, Logger: quiet})
		return p, nil, err
	}
	sizes := ebpf.DefaultMapSizes()
	p, err := ebpf.New(ebpf.Config{
		Node:     node.Config(),
		NetNS:    node.NS.Path(),
		PinPath:  filepath.Join(b.pinBase, node.Name),
		Uplinks:  []string{node.Uplink},
		SocketLB: mode == ModeSocket,
		MapSizes: sizes,
		Logger:   quiet,
	})
	if err != nil {
		return nil, nil, err
	}
	for _, pod := range node.Pods {
		if err := p.AddPod(ebpf.Pod{HostVeth: pod.HostVeth, NetNS: pod.NS.Path()}); err != nil {
			return nil, nil, errors.Join(err, p.Cleanup(), p.Close())
		}
	}
	return p, p, nil
}

// point measures one mode at n Services.
func (b *bench) point(ctx context.Context, mode string, n int) (r Result, err error) {
	r = Result{Mode: mode, Services: n}
	if mode == ModeIPTables {
		_, r.IPTablesBackend = b.iptablesBackend(n)
	}
	p, ep, err := b.newProvider(mode, n)
	if err != nil {
		return r, fmt.Errorf("new provider: %w", err)
	}
	defer func() {
		err = errors.Join(err, p.Cleanup(), p.Close())
	}()
	for i := 0; i < n; i++ {
		p.OnServiceAdd(service(i))
		p.OnEndpointSliceAdd(slice(i, 0, b.c))
	}
	runtime.GC() // the Services' garbage is not the sync's to collect
	cpu0, faults0 := cpuUsage()
	start := time.Now()
	if err := p.Sync(); err != nil {
		return r, fmt.Errorf("full sync: %w", err)
	}
	r.FullSyncMS = ms(time.Since(start))
	cpu1, faults1 := cpuUsage()
	r.FullSyncCPUMS, r.FullSyncPageFaults = ms(cpu1-cpu0), faults1-faults0
	if ep != nil {
		st := ep.LastSyncTimings()
		r.FullSyncTrackerMS, r.FullSyncMapsMS, r.FullSyncMapOps = ms(st.Apply), ms(st.Reconcile), st.Ops
	}

	node := b.c.Nodes[0]
	client := node.Pods[1]
	// The probe runs in this process, beside the point's Services (a
	// large heap at 30,000): collect now and keep the collector off while
	// it measures, so that its pauses are not in the latency tail. The
	// probe allocates next to nothing per connection.
	runtime.GC()
	gc := debug.SetGCPercent(-1)
	r.ClusterIP, err = probe(ctx, client.NS.Path(), netip.AddrPortFrom(trafficVIP(), servicePort), warmupConns, b.o.conns, b.o.nice)
	if err == nil {
		r.NodePort, err = probe(ctx, b.c.Client.Path(), netip.AddrPortFrom(node.IP, trafficNodePort), warmupConns, b.o.conns, b.o.nice)
	}
	debug.SetGCPercent(gc)
	if err != nil {
		return r, fmt.Errorf("latency: %w", err)
	}
	if r.ClusterIP.Conns == 0 || r.NodePort.Conns == 0 {
		return r, fmt.Errorf("no connection succeeded (clusterip: %d errors, first %q; nodeport: %d errors, first %q)",
			r.ClusterIP.Errors, r.ClusterIP.FirstError, r.NodePort.Errors, r.NodePort.FirstError)
	}
	if ep != nil {
		d, err := b.datapath(ep, client.IP)
		if err != nil {
			return r, fmt.Errorf("datapath: %w", err)
		}
		r.Datapath = d
	}

	// One endpoint change at a time, on an idle Service (the traffic
	// Service when it is the only one).
	j := n / 2
	var times, cpus []time.Duration
	for g := 1; g <= b.o.changes; g++ {
		// The eBPF provider collects the conntrack of a deleted backend
		// after the sync, in the background; let it finish so that it
		// does not hold up the next timed sync.
		if ep != nil {
			if err := ep.FlushConntrack(); err != nil {
				return r, err
			}
		}
		p.OnEndpointSliceUpdate(slice(j, g-1, b.c), slice(j, g, b.c))
		cpu0, _ := cpuUsage()
		start := time.Now()
		if err := p.Sync(); err != nil {
			return r, fmt.Errorf("endpoint change sync: %w", err)
		}
		times = append(times, time.Since(start))
		cpu1, _ := cpuUsage()
		cpus = append(cpus, cpu1-cpu0)
	}
	slices.Sort(times)
	slices.Sort(cpus)
	r.EndpointChangeMS = ms(times[len(times)/2])
	r.EndpointChangeCPUMS = ms(cpus[len(cpus)/2])
	r.EndpointChangeRuns = len(times)
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// warmupConns are made before each latency measurement and not counted.
const warmupConns = 50

// cpuUsage returns the process's CPU time (user and system, every thread)
// and its minor page faults so far.
func cpuUsage() (time.Duration, int64) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// datapath measures the programs with BPF_PROG_TEST_RUN on the live maps.
func (b *bench) datapath(p *ebpf.Provider, podIP netip.Addr) (*Datapath, error) {
	d := &Datapath{}
	vip := netip.AddrPortFrom(trafficVIP(), servicePort)
	node := b.c.Nodes[0]
	np := netip.AddrPortFrom(node.IP, trafficNodePort)
	avgNew := func(h ebpf.Hook, src netip.Addr, dst netip.AddrPort, base int) (float64, error) {
		var sum time.Duration
		for i := 0; i < b.o.newFlows; i++ {
			pkt := ebpf.TestPacket(netip.AddrPortFrom(src, uint16(base+i)), dst, ebpf.ProtoTCP, 0, nil)
			r, err := p.RunProgram(h, pkt, 1)
			if err != nil {
				return 0, err
			}
			sum += r.PerRun
		}
		return float64(sum.Nanoseconds()) / float64(b.o.newFlows), nil
	}
	established := func(h ebpf.Hook, pkt []byte) (float64, error) {
		if _, err := p.RunProgram(h, pkt, 1); err != nil {
			return 0, err
		}
		r, err := p.RunProgram(h, pkt, uint32(b.o.repeat))
		if err != nil {
			return 0, err
		}
		return float64(r.PerRun.Nanoseconds()), nil
	}
	var err error
	if d.TCNewNS, err = avgNew(ebpf.HookFromPod, podIP, vip, 10000); err != nil {
		return nil, err
	}
	ack := byte(0x10)
	if d.TCEstablishedNS, err = established(ebpf.HookFromPod,
		ebpf.TestPacket(netip.AddrPortFrom(podIP, 9999), vip, ebpf.ProtoTCP, ack, []byte("x"))); err != nil {
		return nil, err
	}
	if d.XDPNewNS, err = avgNew(ebpf.HookXDP, testbed.ClientIP, np, 20000); err != nil {
		return nil, err
	}
	// Established NodePort flows: find a source port Maglev sends to the
	// local backend and one it sends to a remote one.
	local := node.Pods[0].IP
	found := map[bool]bool{}
	for port := 40000; port < 40100 && len(found) < 2; port++ {
		pkt := ebpf.TestPacket(netip.AddrPortFrom(testbed.ClientIP, uint16(port)), np, ebpf.ProtoTCP, ack, []byte("x"))
		r, err := p.RunProgram(ebpf.HookXDP, pkt, 1)
		if err != nil {
			return nil, err
		}
		if len(r.Out) < 34 {
			continue
		}
		dst := netip.AddrFrom4([4]byte(r.Out[30:34]))
		isLocal := dst == local
		if found[isLocal] {
			continue
		}
		found[isLocal] = true
		ns, err := established(ebpf.HookXDP, pkt)
		if err != nil {
			return nil, err
		}
		if isLocal {
			d.XDPEstablishedLocalNS = ns
		} else {
			d.XDPEstablishedRemoteNS = ns
		}
	}
	return d, nil
}
