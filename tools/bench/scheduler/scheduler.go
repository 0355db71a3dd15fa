// Package scheduler is `skiff bench scheduler`, modelled on upstream's
// scheduler_perf: the API server and an embedded etcd run in this process
// with the scheduler, the nodes are hollow (Node objects with capacity, no
// kubelet), and no container ever runs. For each workload it creates the
// nodes, schedules a set of initial pods, then creates the measured pods
// and samples, once a second, how many of them the watch saw bound, as
// upstream's throughput collector does; it reports the average and the
// percentiles of those per-second samples and the peak resident memory of
// the process (the whole control plane plus the load generator).
//
// Workloads:
//
//   - basic: pods with cpu and memory requests (upstream's SchedulingBasic);
//   - anti-affinity: pods in groups, each with required anti-affinity on
//     the hostname against its own group (upstream's
//     SchedulingPodAntiAffinity, with groups so that 10,000 pods fit on
//     5,000 nodes);
//   - topology-spread: pods spread over three zones with maxSkew 1 and
//     DoNotSchedule (upstream's TopologySpreading, which uses maxSkew 5).
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolswatch "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"

	sched "github.com/skiff-project/skiff/controlplane/scheduler"
	"github.com/skiff-project/skiff/tools/bench/internal/procmem"
	"github.com/skiff-project/skiff/tools/internal/gcbudget"
)

// Config is the benchmark's parameters.
type Config struct {
	Nodes     int
	InitPods  int
	Pods      int
	Workloads []string
	// AntiAffinityGroup is the number of pods per anti-affinity group.
	AntiAffinityGroup int
	Zones             int
	CreateWorkers     int
	Parallelism       int
	BindParallelism   int
	NoFsync           bool
	Timeout           time.Duration
	JSON              string
	CPUProfile        string
	Trace             string
	MemProfile        string
	// Precreate creates the measured pods before the scheduler sees them
	// and measures how fast it drains them.
	Precreate bool
	Log       *slog.Logger
}

// Throughput summarises the per-second samples of bound pods, as upstream's
// SchedulingThroughput (percentiles of the ascending samples).
type Throughput struct {
	Samples int     `json:"samples"`
	Average float64 `json:"average"`
	Perc50  float64 `json:"perc50"`
	Perc90  float64 `json:"perc90"`
	Perc95  float64 `json:"perc95"`
	Perc99  float64 `json:"perc99"`
}

// WorkloadResult is one workload's outcome.
type WorkloadResult struct {
	Name         string     `json:"name"`
	Nodes        int        `json:"nodes"`
	InitPods     int        `json:"init_pods"`
	MeasuredPods int        `json:"measured_pods"`
	Throughput   Throughput `json:"throughput_pods_per_s"`
	// Overall is the measured pods over the time from the first creation
	// to the last binding seen.
	Overall         float64 `json:"overall_pods_per_s"`
	DurationSeconds float64 `json:"measured_duration_s"`
	// CreateRate is how fast the load generator created the pods.
	CreateRate float64 `json:"create_rate_pods_per_s"`
	// CPUPerPod is the process's CPU time (user and system) over the
	// measured phase divided by the measured pods: the whole control
	// plane's cost of a pod, steadier on a noisy machine than the rate.
	CPUPerPod    float64 `json:"cpu_ms_per_pod"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	// Memory is the process's memory at the end of the measured phase.
	Memory       Memory             `json:"memory_at_end"`
	Attempts     map[string]float64 `json:"schedule_attempts"`
	TargetPerSec float64            `json:"target_pods_per_s"`
	Pass         bool               `json:"meets_target"`
	SetupSeconds float64            `json:"setup_s"`
	// APICalls are the API server's requests and etcd operations during
	// the measured phase, with their mean latency.
	APICalls []APICall `json:"api_calls"`
}

// Memory breaks down the process's memory.
type Memory struct {
	RSSAnonBytes  int64  `json:"rss_anon_bytes"`
	RSSFileBytes  int64  `json:"rss_file_bytes"`
	HeapInuse     uint64 `json:"go_heap_inuse_bytes"`
	HeapLiveAfter uint64 `json:"go_heap_live_after_gc_bytes"`
	HeapIdle      uint64 `json:"go_heap_idle_not_released_bytes"`
	Stacks        uint64 `json:"go_stack_bytes"`
	Goroutines    int    `json:"goroutines"`
	// RSSExecutable and RSSEtcdDB are the resident pages of the binary
	// and of etcd's memory-mapped database file.
	RSSExecutable int64 `json:"rss_executable_bytes"`
	RSSEtcdDB     int64 `json:"rss_etcd_db_bytes"`
}

func readMemory() Memory {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// A failed read leaves the RSS fields zero; the heap figures stand.
	u, _ := procmem.Read(0)
	m := Memory{
		RSSAnonBytes:  u.Anon,
		RSSFileBytes:  u.File,
		RSSExecutable: u.Executable,
		RSSEtcdDB:     u.EtcdDB,
		HeapInuse:     ms.HeapInuse,
		HeapIdle:      ms.HeapIdle - ms.HeapReleased,
		Stacks:        ms.StackInuse,
		Goroutines:    runtime.NumGoroutine(),
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	m.HeapLiveAfter = ms.HeapAlloc
	return m
}

// Result is what --json writes.
type Result struct {
	Machine   string `json:"machine"`
	CPUs      int    `json:"cpus"`
	LoadAvg   string `json:"load_average_at_start"`
	Fsync     bool   `json:"etcd_fsync"`
	Precreate bool   `json:"precreated_pods"`
	GOGC      int    `json:"gogc"`
	// MemoryLimit is the runtime's soft memory limit at the start (0:
	// none); the GC policy may lift it for a large live heap.
	MemoryLimit int64            `json:"memory_limit_bytes,omitempty"`
	Workloads   []WorkloadResult `json:"workloads"`
	RSSLimit    int64            `json:"rss_target_bytes"`
}

// target returns the pass threshold of a workload on the 2-core
// machine, and whether the workload exists.
func target(workload string) (float64, bool) {
	switch workload {
	case "basic":
		return 1000, true
	case "anti-affinity":
		return 300, true
	case "topology-spread":
		return 500, true
	}
	return 0, false
}

const rssTarget = 300 << 20

// Run is the `skiff bench scheduler` command.
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench scheduler", flag.ContinueOnError)
	cfg := Config{}
	var workloads string
	fs.IntVar(&cfg.Nodes, "nodes", 5000, "hollow nodes")
	fs.IntVar(&cfg.InitPods, "init-pods", 1000, "pods scheduled before measuring")
	fs.IntVar(&cfg.Pods, "pods", 10000, "measured pods")
	fs.StringVar(&workloads, "workloads", "basic,anti-affinity,topology-spread", "comma-separated workloads to run")
	fs.IntVar(&cfg.AntiAffinityGroup, "anti-affinity-group", 2500, "pods per anti-affinity group (at most --nodes)")
	fs.IntVar(&cfg.Zones, "zones", 3, "zones for the topology-spread workload")
	fs.IntVar(&cfg.CreateWorkers, "create-workers", 64, "concurrent pod and node creators")
	fs.IntVar(&cfg.Parallelism, "parallelism", 0, "scheduler filter/score goroutines (default GOMAXPROCS)")
	fs.IntVar(&cfg.BindParallelism, "bind-parallelism", 0, "scheduler bind calls in flight (default the scheduler's, 64)")
	fs.BoolVar(&cfg.NoFsync, "etcd-unsafe-no-fsync", false, "run etcd without fsync")
	fs.BoolVar(&cfg.Precreate, "precreate", false, "create the measured pods with the scheduler stopped, then measure how fast it drains them (upstream creates them while it runs)")
	fs.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "limit per workload")
	fs.StringVar(&cfg.JSON, "json", "", "write the results to this file as JSON")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of each workload's measured phase to FILE.<workload>")
	fs.StringVar(&cfg.Trace, "trace", "", "write an execution trace of each workload's measured phase to FILE.<workload> (go tool trace; shows where the scheduling loop waits)")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write heap profiles at the start and the end of each workload's measured phase to FILE.<workload>.base and FILE.<workload> (compare them with go tool pprof -diff_base)")
	logLevel := fs.String("log-level", "warn", "log level of the control plane: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	// client-go logs through klog; send it to the same place.
	klog.SetSlogLogger(cfg.Log.With("component", "client-go"))
	// The control plane here is what `skiff server` runs, with its GC
	// policy (GOGC and GOMEMLIMIT in the environment override it).
	gcbudget.Start(ctx, gcbudget.DefaultBudget, cfg.Log)
	for _, w := range strings.Split(workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			cfg.Workloads = append(cfg.Workloads, w)
		}
	}
	res, err := Bench(ctx, cfg)
	if res != nil {
		print(res)
		if cfg.JSON != "" {
			data, jerr := json.MarshalIndent(res, "", "  ")
			if jerr != nil {
				return errors.Join(err, jerr)
			}
			if werr := os.WriteFile(cfg.JSON, append(data, '\n'), 0o644); werr != nil {
				return errors.Join(err, fmt.Errorf("write %s: %w", cfg.JSON, werr))
			}
		}
	}
	return err
}

func print(r *Result) {
	defer func() {
		for _, w := range r.Workloads {
			m := w.Memory
			fmt.Printf("  %s: memory at the end: RSS anon %.0f MiB, file %.0f MiB (binary %.0f, etcd db %.0f); Go heap in use %.0f MiB (%.0f MiB live after GC), idle %.0f MiB, stacks %.0f MiB, %d goroutines\n",
				w.Name, mib(m.RSSAnonBytes), mib(m.RSSFileBytes), mib(m.RSSExecutable), mib(m.RSSEtcdDB), mib(int64(m.HeapInuse)), mib(int64(m.HeapLiveAfter)), mib(int64(m.HeapIdle)), mib(int64(m.Stacks)), m.Goroutines)
			fmt.Printf("  %s: API requests and etcd operations while measuring (count, mean latency, errors):\n", w.Name)
			for i, c := range w.APICalls {
				if i == 8 {
					break
				}
				fmt.Printf("    %-40s %8.0f %8.2f ms %6.0f\n", c.Name, c.Count, c.MeanMS, c.Errors)
			}
		}
	}()
	limit := "none"
	if r.MemoryLimit > 0 {
		limit = fmt.Sprintf("%d MiB", r.MemoryLimit>>20)
	}
	fmt.Printf("skiff bench scheduler on %s (%d CPUs, load average at start %s, etcd fsync %v, GOGC %d, soft memory limit %s, pods precreated %v)\n",
		r.Machine, r.CPUs, r.LoadAvg, r.Fsync, r.GOGC, limit, r.Precreate)
	fmt.Printf("  %-16s %6s %6s %8s %9s %8s %8s %8s %9s %8s %9s %6s\n", "workload", "nodes", "pods", "avg/s", "p50/s", "p90/s", "p99/s", "overall", "create/s", "CPU/pod", "peakRSS", "target")
	for _, w := range r.Workloads {
		mark := "ok"
		if !w.Pass {
			mark = "MISS"
		}
		fmt.Printf("  %-16s %6d %6d %8.0f %9.0f %8.0f %8.0f %8.0f %9.0f %6.2fms %7.0fMiB %4.0f %s\n", w.Name, w.Nodes, w.MeasuredPods,
			w.Throughput.Average, w.Throughput.Perc50, w.Throughput.Perc90, w.Throughput.Perc99, w.Overall, w.CreateRate, w.CPUPerPod,
			float64(w.PeakRSSBytes)/(1<<20), w.TargetPerSec, mark)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Bench runs the workloads one after the other, each on a fresh control
// plane.
func Bench(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Nodes <= 0 || cfg.Pods <= 0 || cfg.InitPods < 0 {
		return nil, errors.New("--nodes and --pods must be positive and --init-pods not negative")
	}
	if cfg.AntiAffinityGroup <= 0 {
		return nil, fmt.Errorf("--anti-affinity-group %d must be positive", cfg.AntiAffinityGroup)
	}
	// A group larger than the cluster could never be placed.
	cfg.AntiAffinityGroup = min(cfg.AntiAffinityGroup, cfg.Nodes)
	host, _ := os.Hostname()
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	res := &Result{Machine: host, CPUs: runtime.NumCPU(), LoadAvg: loadAvg(), Fsync: !cfg.NoFsync, GOGC: gogc, RSSLimit: rssTarget, Precreate: cfg.Precreate}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		res.MemoryLimit = l
	}
	for _, w := range cfg.Workloads {
		if _, ok := target(w); !ok {
			return res, fmt.Errorf("unknown workload %q (have basic, anti-affinity, topology-spread)", w)
		}
		wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		wr, err := runWorkload(wctx, cfg, w)
		cancel()
		if err != nil {
			return res, fmt.Errorf("workload %s: %w", w, err)
		}
		res.Workloads = append(res.Workloads, *wr)
		runtime.GC()
		debug.FreeOSMemory()
	}
	return res, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// rssSampler tracks the process's peak resident memory.
type rssSampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

// procStatus is one memory field of this process's /proc status, in
// bytes; 0 when it cannot be read.
func procStatus(field string) int64 {
	v, err := procmem.Status(0, field)
	if err != nil {
		return 0
	}
	return v[0]
}

func startRSSSampler() *rssSampler {
	// Reset the kernel's peak (VmHWM) so it covers this workload only.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if r := procStatus("VmRSS"); r > s.peak.Load() {
				s.peak.Store(r)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	return max(s.peak.Load(), procStatus("VmHWM"))
}

func runWorkload(ctx context.Context, cfg Config, name string) (*WorkloadResult, error) {
	log := cfg.Log.With("workload", name)
	goal, _ := target(name)
	wr := &WorkloadResult{Name: name, Nodes: cfg.Nodes, InitPods: cfg.InitPods, MeasuredPods: cfg.Pods, TargetPerSec: goal}
	rss := startRSSSampler()
	setupStart := time.Now()

	dir, err := os.MkdirTemp("", "skiff-bench-scheduler-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cp, err := startControlPlane(ctx, dir, cfg.NoFsync, log.With("component", "controlplane"))
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	client, err := kubernetes.NewForConfig(cp.restConfig("skiff-bench"))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for _, ns := range []string{"sched-0", "sched-1"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	if err := createNodes(ctx, client, cfg, name == "topology-spread"); err != nil {
		return nil, err
	}
	log.Info("nodes created", "nodes", cfg.Nodes, "elapsed", time.Since(setupStart))

	reg := prometheus.NewRegistry()
	s, err := sched.New(sched.Config{
		RESTConfig:      cp.restConfig("skiff-scheduler"),
		Log:             log.With("component", "scheduler"),
		Metrics:         reg,
		Parallelism:     cfg.Parallelism,
		BindParallelism: cfg.BindParallelism,
	})
	if err != nil {
		return nil, fmt.Errorf("new scheduler: %w", err)
	}
	// stopSched is set while the scheduler runs.
	var stopSched func()
	startSched := func() error {
		sctx, scancel := context.WithCancel(ctx)
		if err := s.Start(sctx); err != nil {
			scancel()
			return fmt.Errorf("start scheduler: %w", err)
		}
		stopSched = func() {
			scancel()
			_ = s.Stop()
			stopSched = nil
		}
		return nil
	}
	defer func() {
		if stopSched != nil {
			stopSched()
		}
	}()
	if err := startSched(); err != nil {
		return nil, err
	}

	// Initial pods, scheduled before measuring.
	if cfg.InitPods > 0 {
		counter, err := watchBound(ctx, client, "sched-0")
		if err != nil {
			return nil, err
		}
		if _, err := createPods(ctx, client, cfg, "sched-0", 0, cfg.InitPods, name, true); err != nil {
			counter.stop()
			return nil, err
		}
		err = counter.waitFor(ctx, cfg.InitPods)
		counter.stop()
		if err != nil {
			return nil, fmt.Errorf("initial pods: %w", err)
		}
	}
	wr.SetupSeconds = time.Since(setupStart).Seconds()
	log.Info("initial pods scheduled", "pods", cfg.InitPods, "elapsed", time.Since(setupStart))

	// Measured pods.
	counter, err := watchBound(ctx, client, "sched-1")
	if err != nil {
		return nil, err
	}
	defer counter.stop()
	if cfg.Precreate {
		// Create the measured pods with the scheduler stopped, then
		// measure how fast it drains them.
		stopSched()
		createDur, err := createPods(ctx, client, cfg, "sched-1", cfg.InitPods, cfg.Pods, name, false)
		if err != nil {
			return nil, err
		}
		wr.CreateRate = float64(cfg.Pods) / createDur.Seconds()
		if err := startSched(); err != nil {
			return nil, err
		}
	}
	// The profiles cover the measured phase: they stop when the last pod
	// is seen bound, or on any error.
	var stops []func()
	stopProfiles := sync.OnceFunc(func() {
		for _, stop := range stops {
			stop()
		}
	})
	defer stopProfiles()
	if cfg.MemProfile != "" {
		// The heap profile's allocation counts are cumulative; this base
		// lets `go tool pprof -diff_base` show the measured phase's alone.
		if err := writeHeapProfile(cfg.MemProfile + "." + name + ".base"); err != nil {
			return nil, err
		}
	}
	for _, r := range []struct {
		file, what string
		start      func(io.Writer) error
		stop       func()
	}{{cfg.CPUProfile, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile}, {cfg.Trace, "trace", trace.Start, trace.Stop}} {
		if r.file == "" {
			continue
		}
		stop, err := record(r.file+"."+name, r.what, r.start, r.stop)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
	}
	apiBefore := snapshotAPI(cp.metrics)
	collector := startThroughputCollector(counter)
	cpuBefore := processCPU()
	start := time.Now()
	if !cfg.Precreate {
		createDur, err := createPods(ctx, client, cfg, "sched-1", cfg.InitPods, cfg.Pods, name, false)
		if err != nil {
			collector.finish()
			return nil, err
		}
		wr.CreateRate = float64(cfg.Pods) / createDur.Seconds()
	}
	if err := counter.waitFor(ctx, cfg.Pods); err != nil {
		collector.finish()
		return nil, fmt.Errorf("measured pods: %w (%d of %d bound)", err, counter.count(), cfg.Pods)
	}
	stopProfiles()
	wr.CPUPerPod = float64((processCPU() - cpuBefore).Microseconds()) / 1000 / float64(cfg.Pods)
	elapsed := counter.lastAt().Sub(start)
	wr.Throughput = collector.finish()
	wr.DurationSeconds = elapsed.Seconds()
	wr.Overall = float64(cfg.Pods) / elapsed.Seconds()
	wr.Pass = wr.Throughput.Average >= wr.TargetPerSec
	wr.Attempts = attempts(reg)
	wr.APICalls = apiCalls(apiBefore, snapshotAPI(cp.metrics))
	wr.Memory = readMemory()
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile + "." + name); err != nil {
			return nil, err
		}
	}
	stopSched()
	wr.PeakRSSBytes = rss.finish()
	return wr, nil
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// record writes what start begins (a CPU profile, an execution trace) into
// path until the returned function stops it.
func record(path, what string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", what, err)
	}
	return func() {
		stop()
		f.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create heap profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	return nil
}

func attempts(reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "scheduler_schedule_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// createNodes creates hollow nodes like upstream's node-default template:
// 4 cpus, 32Gi, 110 pods, Ready.
func createNodes(ctx context.Context, c kubernetes.Interface, cfg Config, zones bool) error {
	return parallel(ctx, cfg.Nodes, cfg.CreateWorkers, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("scheduler-perf-%05d", i)
		n := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
			Status: v1.NodeStatus{
				Capacity: v1.ResourceList{
					v1.ResourcePods:   resource.MustParse("110"),
					v1.ResourceCPU:    resource.MustParse("4"),
					v1.ResourceMemory: resource.MustParse("32Gi"),
				},
				Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
				Phase:      v1.NodeRunning,
			},
		}
		n.Status.Allocatable = n.Status.Capacity.DeepCopy()
		if zones {
			n.Labels[v1.LabelTopologyZone] = fmt.Sprintf("moon-%d", i%cfg.Zones+1)
		}
		created, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		if len(created.Status.Allocatable) == 0 {
			// The server dropped status on create: set it.
			created.Status = n.Status
			if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update node status %s: %w", name, err)
			}
		}
		return nil
	})
}

// podFor builds pod i of a workload, after upstream's templates: a pause
// container requesting 100m cpu and 500Mi.
func podFor(cfg Config, workload, ns string, i int, initial bool) *v1.Pod {
	req := v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("500Mi")}
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%06d", i), Namespace: ns},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name:      "pause",
			Image:     "registry.k8s.io/pause:3.10.2",
			Ports:     []v1.ContainerPort{{ContainerPort: 80}},
			Resources: v1.ResourceRequirements{Requests: req, Limits: req.DeepCopy()},
		}}},
	}
	switch workload {
	case "anti-affinity":
		group := fmt.Sprintf("group-%d", i/cfg.AntiAffinityGroup)
		p.Labels = map[string]string{"color": "green", "group": group}
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}},
				TopologyKey:   v1.LabelHostname,
				Namespaces:    []string{"sched-1", "sched-0"},
			}},
		}}
	case "topology-spread":
		if initial {
			break // upstream's initial pods are the default template
		}
		p.Labels = map[string]string{"color": "blue"}
		p.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       v1.LabelTopologyZone,
			WhenUnsatisfiable: v1.DoNotSchedule,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}},
		}}
	}
	return p
}

// createPods creates pods [first, first+n) and returns how long it took.
func createPods(ctx context.Context, c kubernetes.Interface, cfg Config, ns string, first, n int, workload string, initial bool) (time.Duration, error) {
	start := time.Now()
	err := parallel(ctx, n, cfg.CreateWorkers, func(ctx context.Context, i int) error {
		p := podFor(cfg, workload, ns, first+i, initial)
		for {
			_, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if err == nil {
				return nil
			}
			if apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("create pod %s/%s: %w", ns, p.Name, err)
		}
	})
	return time.Since(start), err
}

// boundCounter counts the pods of a namespace that a watch saw bound.
type boundCounter struct {
	mu      sync.Mutex
	bound   map[string]struct{}
	last    time.Time
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchBound(ctx context.Context, c kubernetes.Interface, ns string) (*boundCounter, error) {
	// Only bound pods: the watch then delivers one event per pod.
	const bound = "spec.nodeName!="
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1, FieldSelector: bound})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", ns, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	rw, err := toolswatch.NewRetryWatcherWithContext(wctx, l.ResourceVersion, &podWatcher{c: c, ns: ns})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch pods of %s: %w", ns, err)
	}
	bc := &boundCounter{bound: map[string]struct{}{}, changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(bc.done)
		defer rw.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				p, ok := ev.Object.(*v1.Pod)
				if !ok || p.Spec.NodeName == "" {
					continue
				}
				bc.mu.Lock()
				if _, seen := bc.bound[p.Name]; !seen {
					bc.bound[p.Name] = struct{}{}
					bc.last = time.Now()
				}
				bc.mu.Unlock()
				select {
				case bc.changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	return bc, nil
}

// podWatcher adapts the pods client to cache.Watcher for the retry watcher.
type podWatcher struct {
	c  kubernetes.Interface
	ns string
}

func (w *podWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.FieldSelector = "spec.nodeName!="
	return w.c.CoreV1().Pods(w.ns).Watch(ctx, opts)
}

func (bc *boundCounter) count() int {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return len(bc.bound)
}

func (bc *boundCounter) lastAt() time.Time {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return bc.last
}

func (bc *boundCounter) waitFor(ctx context.Context, n int) error {
	for bc.count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-bc.changed:
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (bc *boundCounter) stop() {
	bc.cancel()
	<-bc.done
}

// throughputCollector samples bound pods once a second, as upstream's
// collector: the first sample after binding starts is skipped, and seconds
// without progress are folded into the next sample.
type throughputCollector struct {
	counter *boundCounter
	stopCh  chan struct{}
	done    chan struct{}
	samples []float64
}

func startThroughputCollector(bc *boundCounter) *throughputCollector {
	tc := &throughputCollector{counter: bc, stopCh: make(chan struct{}), done: make(chan struct{})}
	go tc.run()
	return tc
}

func (tc *throughputCollector) run() {
	defer close(tc.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	started := false
	last, skipped := 0, 0
	lastAt := time.Now()
	for {
		select {
		case <-tc.stopCh:
			return
		case now := <-t.C:
			n := tc.counter.count()
			if n == 0 {
				continue
			}
			if !started {
				started, last, lastAt = true, n, now
				continue
			}
			if n == last {
				skipped++
				continue
			}
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			for i := 0; i <= skipped; i++ {
				tc.samples = append(tc.samples, rate)
			}
			last, lastAt, skipped = n, now, 0
		}
	}
}

func (tc *throughputCollector) finish() Throughput {
	close(tc.stopCh)
	<-tc.done
	s := slices.Clone(tc.samples)
	if len(s) == 0 {
		return Throughput{}
	}
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	perc := func(p float64) float64 { return s[int(math.Ceil(float64(len(s))*p/100))-1] }
	return Throughput{Samples: len(s), Average: sum / float64(len(s)), Perc50: perc(50), Perc90: perc(90), Perc95: perc(95), Perc99: perc(99)}
}
