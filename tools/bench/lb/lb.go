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
// response, close, and (3) programming time: a full sync of N Services and
// one endpoint change at N Services. Needs root.
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
	// EndpointChangeMS is the median Sync after one endpoint of one
	// idle Service moved (EndpointChangeRuns of them).
	EndpointChangeMS   float64 `json:"endpoint_change_ms"`
	EndpointChangeRuns int     `json:"endpoint_change_runs"`
	ClusterIP          Latency `json:"clusterip"`
	NodePort           Latency `json:"nodeport"`
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
	services []int
	ipt      []int // numbers of Services the iptables mode runs at
	modes    []string
	conns    int
	repeat   int
	newFlows int
	changes  int
	jsonPath string
	plotPath string
	verbose  bool
}

// Run is the entry point: args are the flags after "lb".
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("skiff bench lb", flag.ContinueOnError)
	var o options
	services := fs.String("services", "1,1000,10000,30000", "numbers of Services, comma separated")
	ipt := fs.String("iptables-services", "1,1000", "numbers of Services for the iptables mode, comma separated, or \"all\" for --services (a 10,000-Service iptables-restore with the nft backend ran for more than 8 minutes on a loaded 2-core machine)")
	modes := fs.String("modes", strings.Join([]string{ModeSocket, ModeTC, ModeIPTables}, ","), "modes to run, comma separated")
	fs.IntVar(&o.conns, "conns", 1000, "sequential connections per latency measurement")
	fs.IntVar(&o.repeat, "repeat", 1000000, "BPF_PROG_TEST_RUN repeat for established flows")
	fs.IntVar(&o.newFlows, "new-flows", 2000, "distinct flows for the new-flow datapath cost")
	fs.IntVar(&o.changes, "changes", 9, "endpoint changes timed per point (median reported)")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to `FILE`")
	fs.StringVar(&o.plotPath, "plot", "", "write a PNG plot of latency vs Services to `FILE`")
	fs.BoolVar(&o.verbose, "v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*services, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 60000 {
			return fmt.Errorf("bad --services entry %q (1..60000)", s)
		}
		o.services = append(o.services, n)
	}
	o.ipt = o.services
	if *ipt != "all" {
		o.ipt = nil
		for _, s := range strings.Split(*ipt, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 60000 {
				return fmt.Errorf("bad --iptables-services entry %q (1..60000)", s)
			}
			o.ipt = append(o.ipt, n)
		}
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case ModeSocket, ModeTC, ModeIPTables:
			o.modes = append(o.modes, m)
		default:
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("bench lb needs root (network namespaces, BPF, iptables)")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	rep, err := run(ctx, o, log)
	if rep != nil {
		rep.Command = "skiff bench lb " + strings.Join(args, " ")
		printTable(os.Stdout, rep)
		if o.jsonPath != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(o.jsonPath, append(b, '\n'), 0o644)
			}
			if jerr != nil {
				return errors.Join(err, fmt.Errorf("write json: %w", jerr))
			}
		}
		if o.plotPath != "" {
			if perr := writePlot(o.plotPath, rep); perr != nil {
				return errors.Join(err, fmt.Errorf("write plot: %w", perr))
			}
		}
	}
	return err
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func run(ctx context.Context, o options, log *slog.Logger) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), Machine: Machine{CPUs: runtime.NumCPU(), Kernel: kernelRelease(), Go: runtime.Version()}}
	c, err := testbed.New(testbed.Config{Nodes: 2, PodsPerNode: 2, Logger: log})
	if err != nil {
		return rep, fmt.Errorf("test bed: %w", err)
	}
	defer c.Close()
	for _, p := range c.Pods() {
		if _, err := p.Serve("tcp", targetPort); err != nil {
			return rep, fmt.Errorf("echo server: %w", err)
		}
	}
	b := &bench{c: c, o: o, log: log}
	if err := b.prepare(); err != nil {
		return rep, err
	}
	defer b.close()
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
