// Package lb is `skiff bench lb`: the Service load balancers side by side in
// one run, on the dataplane network-namespace test bed: the eBPF provider
// with socket-level LB, the eBPF provider with per-packet TC only, and the
// kube-proxy-style iptables provider, at growing numbers of Services (a few
// endpoints each; one Service carries the traffic).
//
// It measures (1) the datapath cost of the TC and XDP programs per packet,
// for a new and an established flow (BPF_PROG_TEST_RUN against the live
// maps, the kernel's own timing), (2) new-connection latency p50/p99 and
// connections per second through a ClusterIP (pod to pod) and a NodePort
// (external client to a node) with real sockets: connect, small request,
// response, close, made with blocking system calls on one OS thread per
// end so that the harness adds no hand-offs (probe.go), and (3)
// programming time: a full sync of N Services (wall clock, CPU time and
// page faults) and one endpoint change at N Services.
//
// The iptables baseline uses iptables-legacy from 10,000 Services up
// (docs/decisions/0002-iptables-baseline-backend.md); each result says
// which backend it used.
//
// Needs root. One run at a time (a lock file); a run removes what an
// interrupted one left (cleanup.go).
package lb

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-project/skiff/dataplane/testbed"
)

// Modes.
const (
	ModeSocket   = "ebpf-socket"
	ModeTC       = "ebpf-tc"
	ModeIPTables = "iptables"
)

// Report is the JSON output.
type Report struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Machine  Machine   `json:"machine"`
	Results  []Result  `json:"results"`
	Failures []string  `json:"failures,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute load
	// averages when the run started and ended: on a shared machine the
	// wall-clock numbers include waiting for a CPU.
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
}

// Result is one mode at one number of Services.
type Result struct {
	Mode     string `json:"mode"`
	Services int    `json:"services"`
	// FullSyncMS is the first Sync of a new provider given N Services.
	FullSyncMS float64 `json:"full_sync_ms"`
	// FullSyncTrackerMS and FullSyncMapsMS split an eBPF full sync: the
	// change tracker's Apply, and the reconciler's diff and map writes.
	FullSyncTrackerMS float64 `json:"full_sync_tracker_ms,omitempty"`
	FullSyncMapsMS    float64 `json:"full_sync_maps_ms,omitempty"`
	FullSyncMapOps    int     `json:"full_sync_map_ops,omitempty"`
	// FullSyncCPUMS is the CPU time (user and system, all threads) the
	// process used during the full sync, FullSyncPageFaults its minor
	// page faults (first touches of memory; costly on some virtual
	// machines).
	FullSyncCPUMS      float64 `json:"full_sync_cpu_ms"`
	FullSyncPageFaults int64   `json:"full_sync_page_faults"`
	// IPTablesBackend is the iptables variant of an iptables point:
	// "legacy", or "default (nf_tables)" for the machine's default.
	IPTablesBackend string `json:"iptables_backend,omitempty"`
	// EndpointChangeMS is the median Sync after one endpoint of one
	// idle Service moved (EndpointChangeRuns of them).
	EndpointChangeMS float64 `json:"endpoint_change_ms"`
	// EndpointChangeCPUMS is the median CPU time of those syncs (the
	// process's, user and system: on a shared machine, the part of the
	// wall time that was work).
	EndpointChangeCPUMS float64 `json:"endpoint_change_cpu_ms"`
	EndpointChangeRuns  int     `json:"endpoint_change_runs"`
	ClusterIP           Latency `json:"clusterip"`
	NodePort            Latency `json:"nodeport"`
	// Datapath is measured for the eBPF modes only.
	Datapath *Datapath `json:"datapath,omitempty"`
}

// Latency is new-connection latency (connect, request, response, close)
// over sequential connections.
type Latency struct {
	Conns       int     `json:"conns"`
	Errors      int     `json:"errors"`
	P50US       float64 `json:"p50_us"`
	P99US       float64 `json:"p99_us"`
	ConnsPerSec float64 `json:"conns_per_s"`
	// FirstError is the first failed connection's error, if any.
	FirstError string `json:"first_error,omitempty"`
}

// Datapath is ns per packet from BPF_PROG_TEST_RUN.
type Datapath struct {
	// TCNewNS: a pod's first packet to the ClusterIP (service lookup,
	// backend choice, conntrack pair, DNAT), averaged over distinct flows.
	TCNewNS float64 `json:"tc_new_ns"`
	// TCEstablishedNS: a packet of an established flow (conntrack hit,
	// DNAT), repeated.
	TCEstablishedNS float64 `json:"tc_established_ns"`
	// XDPNewNS: an external client's first packet to the NodePort
	// (Maglev, conntrack, DNAT, and for remote backends SNAT, fib lookup,
	// XDP_TX), averaged over distinct flows.
	XDPNewNS float64 `json:"xdp_new_ns"`
	// XDPEstablishedLocalNS / RemoteNS: an established NodePort flow to a
	// node-local backend (DNAT, XDP_PASS) / to a remote one (DNAT+SNAT,
	// fib lookup, XDP_TX).
	XDPEstablishedLocalNS  float64 `json:"xdp_established_local_ns"`
	XDPEstablishedRemoteNS float64 `json:"xdp_established_remote_ns"`
}

type options struct {
	services   []int
	ipt        []int // numbers of Services the iptables mode runs at
	legacyFrom int   // the iptables mode uses the legacy backend from this many Services
	nice       int   // nice value of the latency probe's and echo servers' threads
	modes      []string
	conns      int
	repeat     int
	newFlows   int
	changes    int
	jsonPath   string
	plotPath   string
	verbose    bool
}

// Run is the entry point: args are the flags after "lb".
func Run(ctx context.Context, args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("bench lb needs root (network namespaces, BPF, iptables)")
	}
	unlock, err := lockRun()
	if err != nil {
		return err
	}
	defer unlock()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	rep, err := run(ctx, o, log)
	if rep == nil {
		return err
	}
	rep.Machine.LoadEnd = loadAvg()
	rep.Command = "skiff bench lb " + strings.Join(args, " ")
	printTable(os.Stdout, rep)
	if o.jsonPath != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(o.jsonPath, append(b, '\n'), 0o644)
		}
		if jerr != nil {
			err = errors.Join(err, fmt.Errorf("write json: %w", jerr))
		}
	}
	if o.plotPath != "" {
		if perr := writePlot(o.plotPath, rep); perr != nil {
			err = errors.Join(err, fmt.Errorf("write plot: %w", perr))
		}
	}
	return err
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("skiff bench lb", flag.ContinueOnError)
	var o options
	services := fs.String("services", "1,1000,10000,30000", "numbers of Services, comma separated")
	ipt := fs.String("iptables-services", "all", "numbers of Services for the iptables mode, comma separated, or \"all\" for --services")
	fs.IntVar(&o.legacyFrom, "iptables-legacy-from", 10000, "the iptables mode uses iptables-legacy from this many Services up, the machine's default iptables below (0: never legacy); the nf_tables iptables-restore of iptables 1.8.9 takes minutes at 10,000 Services (docs/decisions/0002-iptables-baseline-backend.md)")
	modes := fs.String("modes", strings.Join([]string{ModeSocket, ModeTC, ModeIPTables}, ","), "modes to run, comma separated")
	fs.IntVar(&o.conns, "conns", 10000, "sequential connections per latency measurement (the p99 is the 100th slowest of 10,000; of 2,000 it moved by 20-40% from run to run)")
	fs.IntVar(&o.nice, "nice", -20, "nice value of the latency probe's and echo servers' threads (-20..19; 0 leaves them alone), so that other work on a shared machine disturbs the tail less")
	fs.IntVar(&o.repeat, "repeat", 1000000, "BPF_PROG_TEST_RUN repeat for established flows")
	fs.IntVar(&o.newFlows, "new-flows", 2000, "distinct flows for the new-flow datapath cost")
	fs.IntVar(&o.changes, "changes", 9, "endpoint changes timed per point (median reported)")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to `FILE`")
	fs.StringVar(&o.plotPath, "plot", "", "write a PNG plot of latency vs Services to `FILE`")
	fs.BoolVar(&o.verbose, "v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.services, err = parseCounts("--services", *services); err != nil {
		return o, err
	}
	o.ipt = o.services
	if *ipt != "all" {
		if o.ipt, err = parseCounts("--iptables-services", *ipt); err != nil {
			return o, err
		}
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case ModeSocket, ModeTC, ModeIPTables:
			o.modes = append(o.modes, m)
		default:
			return o, fmt.Errorf("unknown mode %q (want %s, %s or %s)", m, ModeSocket, ModeTC, ModeIPTables)
		}
	}
	if o.conns < 100 || o.changes < 1 || o.repeat < 1 || o.newFlows < 1 || o.legacyFrom < 0 || o.nice < -20 || o.nice > 19 {
		return o, errors.New("--conns must be at least 100, --changes, --repeat and --new-flows at least 1, --iptables-legacy-from at least 0, --nice within -20..19")
	}
	return o, nil
}

func parseCounts(flag, list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 60000 {
			return nil, fmt.Errorf("bad %s entry %q (1..60000)", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func run(ctx context.Context, o options, log *slog.Logger) (rep *Report, err error) {
	rep = &Report{Started: time.Now().UTC(), Machine: Machine{CPUs: runtime.NumCPU(), Kernel: kernelRelease(), Go: runtime.Version(),
		LoadStart: loadAvg()}}
	if err := cleanupLeftovers(log); err != nil {
		return rep, err
	}
	// A fixed prefix: the next run removes what an interrupted one left.
	c, err := testbed.New(testbed.Config{Prefix: testbedPrefix, Nodes: 2, PodsPerNode: 2, Logger: log})
	if err != nil {
		return rep, fmt.Errorf("test bed: %w", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove test bed: %w", cerr))
		}
	}()
	b := &bench{c: c, o: o, log: log, iptablesDefault: iptablesVariant(ctx)}
	defer func() {
		if cerr := b.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench clean-up: %w", cerr))
		}
	}()
	if err := b.prepare(); err != nil {
		return rep, err
	}
	for _, n := range o.services {
		for _, mode := range o.modes {
			if mode == ModeIPTables && !slices.Contains(o.ipt, n) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			log.Info("running", "mode", mode, "services", n)
			r, err := b.point(ctx, mode, n)
			if err != nil {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s at %d Services: %v", mode, n, err))
				log.Error("point failed", "mode", mode, "services", n, "error", err)
				continue
			}
			rep.Results = append(rep.Results, r)
		}
	}
	if len(rep.Failures) > 0 {
		return rep, fmt.Errorf("%d measurement points failed", len(rep.Failures))
	}
	return rep, nil
}
