// Package api is `skiff bench api`: it runs `skiff server` as a child
// process on a fresh data directory and measures, with client-go as the
// client, the latency of create, get and update at a steady write rate with
// watchers attached, the latency of listing 1,000 and 10,000 pods, the
// server's resident memory with 10,000 pods stored, and the time from start
// to /readyz with an empty and a 10,000-pod data directory.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/tools/bench/internal/procmem"
)

// Config is the benchmark's parameters.
type Config struct {
	Skiff    string
	Objects  int
	Rate     int
	Duration time.Duration
	Watchers int
	JSON     string
	Keep     bool
	// ServerArgs are added to the server's command line (--server-arg,
	// repeatable), e.g. --disable-scheduler to measure the API server
	// without the control plane's informers.
	ServerArgs []string
	// HeapProfile, when set, is where the server's heap profile is
	// written when the RSS is read.
	HeapProfile string
}

// Latency summarises one operation's samples in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// Result is what --json writes.
type Result struct {
	Machine string `json:"machine"`
	// ServerArgs are the arguments the server ran with beyond the data
	// directory and address: which of its components the numbers cover.
	ServerArgs   []string           `json:"server_args"`
	Objects      int                `json:"objects"`
	WriteRate    int                `json:"write_rate_per_s"`
	Watchers     int                `json:"watchers"`
	WatchEvents  int64              `json:"watch_events_received"`
	Latency      map[string]Latency `json:"latency"`
	RSSBytes     int64              `json:"server_rss_bytes_with_objects"`
	RSSAnonBytes int64              `json:"server_rss_anon_bytes"`
	RSSFileBytes int64              `json:"server_rss_file_bytes"`
	// RSSExecutable and RSSEtcdDB split the file-backed part: the
	// server binary's resident pages and etcd's memory-mapped database.
	RSSExecutable   int64   `json:"server_rss_executable_bytes"`
	RSSEtcdDB       int64   `json:"server_rss_etcd_db_bytes"`
	ReadyEmpty      float64 `json:"ready_empty_s"`
	ReadyFull       float64 `json:"ready_full_s"`
	DataDirBytes    int64   `json:"data_dir_bytes"`
	AchievedWriteHz float64 `json:"achieved_write_rate_per_s"`
}

// Run is the `skiff bench api` command.
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench api", flag.ContinueOnError)
	cfg := Config{}
	self, _ := os.Executable()
	fs.StringVar(&cfg.Skiff, "skiff", self, "skiff binary to run as the server")
	fs.IntVar(&cfg.Objects, "objects", 10000, "pods stored for the large list, RSS and restart measurements")
	fs.IntVar(&cfg.Rate, "rate", 100, "steady writes per second during the latency phase")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the latency phase")
	fs.IntVar(&cfg.Watchers, "watchers", 5, "watches open during the latency phase")
	fs.StringVar(&cfg.JSON, "json", "", "write the results to this file as JSON")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data directory")
	fs.StringVar(&cfg.HeapProfile, "heap-profile", "", "write the server's heap profile (/debug/pprof/heap) to this file when its RSS is read")
	fs.Func("server-arg", "add an argument to the server's command line (repeatable)", func(v string) error {
		cfg.ServerArgs = append(cfg.ServerArgs, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := Bench(ctx, cfg)
	if err != nil {
		return err
	}
	print(res)
	if cfg.JSON != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.JSON, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.JSON, err)
		}
	}
	return nil
}

func print(r *Result) {
	fmt.Printf("skiff bench api on %s\n", r.Machine)
	server := "skiff server (API server, scheduler, controller manager)"
	if len(r.ServerArgs) > 0 {
		server = "skiff server " + strings.Join(r.ServerArgs, " ")
	}
	fmt.Printf("  server: %s\n", server)
	fmt.Printf("  %d writes/s target (%.0f achieved), %d watchers (%d events received)\n", r.WriteRate, r.AchievedWriteHz, r.Watchers, r.WatchEvents)
	names := make([]string, 0, len(r.Latency))
	for n := range r.Latency {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Printf("  %-22s %8s %10s %10s %10s\n", "operation", "samples", "p50 ms", "p99 ms", "max ms")
	for _, n := range names {
		l := r.Latency[n]
		fmt.Printf("  %-22s %8d %10.2f %10.2f %10.2f\n", n, l.Samples, l.P50, l.P99, l.Max)
	}
	fmt.Printf("  server RSS with %d pods: %.1f MiB (anonymous %.1f MiB, file-backed %.1f MiB: binary %.1f, etcd db %.1f)\n", r.Objects,
		mib(r.RSSBytes), mib(r.RSSAnonBytes), mib(r.RSSFileBytes), mib(r.RSSExecutable), mib(r.RSSEtcdDB))
	fmt.Printf("  start to /readyz: %.2f s empty, %.2f s with %d pods (data dir %.1f MiB)\n", r.ReadyEmpty, r.ReadyFull, r.Objects, float64(r.DataDirBytes)/(1<<20))
}

func summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p * float64(len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	return Latency{Samples: len(s), P50: q(0.50), P99: q(0.99), Max: float64(s[len(s)-1].Microseconds()) / 1000}
}

// freePort returns a port free on 127.0.0.1 right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// server is the `skiff server` child process.
type server struct {
	cmd     *exec.Cmd
	dataDir string
	port    int
	log     *os.File
	exited  chan error
}

// errPortTaken is a start that failed because a port freePort chose was
// taken again before the server bound it.
var errPortTaken = errors.New("a chosen port was taken before the server bound it")

// startServer starts the server on free ports and waits for /readyz. A
// port can be taken again between freePort and the server's bind (by any
// connection's ephemeral port): that start is retried on other ports.
func startServer(ctx context.Context, skiff, dataDir string, extra []string) (*server, time.Duration, error) {
	for attempt := 1; ; attempt++ {
		s, ready, err := startServerOnce(ctx, skiff, dataDir, extra)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return s, ready, err
		}
	}
}

func startServerOnce(ctx context.Context, skiff, dataDir string, extra []string) (*server, time.Duration, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		ports[i] = p
	}
	logf, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, 0, err
	}
	// Where this start's output begins in the log (restarts append).
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		logf.Close()
		return nil, 0, err
	}
	cmd := exec.Command(skiff, "server", "--data-dir", dataDir, "--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(ports[0]),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		"--log-level", "warn")
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, 0, fmt.Errorf("start %s server: %w", skiff, err)
	}
	exited := make(chan error, 1)
	s := &server{cmd: cmd, dataDir: dataDir, port: ports[0], log: logf, exited: exited}
	go func() { exited <- cmd.Wait() }()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", ports[0])
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(start), nil
			}
		}
		select {
		case err := <-exited:
			logf.Close()
			if log, _ := os.ReadFile(logf.Name()); int64(len(log)) > logStart && bytes.Contains(log[logStart:], []byte("address already in use")) {
				err = fmt.Errorf("%w (%v)", errPortTaken, err)
			}
			return nil, 0, fmt.Errorf("server exited before ready (%w); see %s", err, logf.Name())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			logf.Close()
			return nil, 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 2*time.Minute {
			_ = cmd.Process.Kill()
			logf.Close()
			return nil, 0, errors.New("server not ready after 2 minutes")
		}
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (s *server) stop() error {
	defer s.log.Close()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("server exit: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("server did not stop within 30s of SIGTERM")
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (s *server) client() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dataDir, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	cfg.UserAgent = "skiff-bench-api"
	return kubernetes.NewForConfig(cfg)
}

func benchPod(name string, i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench", "shard": strconv.Itoa(i % 10)},
			Annotations: map[string]string{"bench.skiff.dev/index": strconv.Itoa(i)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1.0", Args: []string{"--port=8080", "--verbose"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
			Env:   []corev1.EnvVar{{Name: "MODE", Value: "bench"}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
		}}},
	}
}

// fill creates pods until n exist.
func fill(ctx context.Context, c kubernetes.Interface, from, to int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := from; i < to; i++ {
		g.Go(func() error {
			_, err := c.CoreV1().Pods("bench").Create(ctx, benchPod(fmt.Sprintf("fill-%05d", i), i), metav1.CreateOptions{})
			return err
		})
	}
	return g.Wait()
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// Bench runs the benchmark.
func Bench(ctx context.Context, cfg Config) (_ *Result, err error) {
	if cfg.Objects < 1000 {
		return nil, errors.New("--objects must be at least 1000")
	}
	dir, err := os.MkdirTemp("", "skiff-bench-api-")
	if err != nil {
		return nil, err
	}
	defer func() {
		// A failed run keeps the server's log for a look.
		if err != nil {
			err = fmt.Errorf("%w (server log kept: %s)", err, filepath.Join(dir, "server.log"))
		} else if !cfg.Keep {
			os.RemoveAll(dir)
		}
	}()
	res := &Result{Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), ServerArgs: cfg.ServerArgs,
		Objects: cfg.Objects, WriteRate: cfg.Rate, Watchers: cfg.Watchers, Latency: map[string]Latency{}}

	srv, ready, err := startServer(ctx, cfg.Skiff, dir, cfg.ServerArgs)
	if err != nil {
		return nil, err
	}
	res.ReadyEmpty = ready.Seconds()
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.stop()
		}
	}()
	c, err := srv.client()
	if err != nil {
		return nil, err
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	if err := fill(ctx, c, 0, 1000); err != nil {
		return nil, fmt.Errorf("fill 1000: %w", err)
	}
	if err := measureList(ctx, c, "list 1000 pods", 30, res); err != nil {
		return nil, err
	}
	if err := steady(ctx, c, cfg, res); err != nil {
		return nil, err
	}
	if err := fill(ctx, c, 1000, cfg.Objects); err != nil {
		return nil, fmt.Errorf("fill %d: %w", cfg.Objects, err)
	}
	if err := measureList(ctx, c, fmt.Sprintf("list %d pods", cfg.Objects), 10, res); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)
	mem, err := procmem.Read(srv.cmd.Process.Pid)
	if err != nil {
		return nil, fmt.Errorf("read server RSS: %w", err)
	}
	res.RSSBytes, res.RSSAnonBytes, res.RSSFileBytes = mem.RSS, mem.Anon, mem.File
	res.RSSExecutable, res.RSSEtcdDB = mem.Executable, mem.EtcdDB
	if cfg.HeapProfile != "" {
		prof, err := c.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/heap").DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("server heap profile: %w", err)
		}
		if err := os.WriteFile(cfg.HeapProfile, prof, 0o644); err != nil {
			return nil, err
		}
	}
	stopped = true
	if err := srv.stop(); err != nil {
		return nil, err
	}
	res.DataDirBytes = dirSize(dir)
	srv2, ready, err := startServer(ctx, cfg.Skiff, dir, cfg.ServerArgs)
	if err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	res.ReadyFull = ready.Seconds()
	if err := srv2.stop(); err != nil {
		return nil, err
	}
	return res, nil
}

func measureList(ctx context.Context, c kubernetes.Interface, name string, n int, res *Result) error {
	var samples []time.Duration
	for range n {
		start := time.Now()
		l, err := c.CoreV1().Pods("bench").List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		samples = append(samples, time.Since(start))
		if len(l.Items) == 0 {
			return fmt.Errorf("%s: empty list", name)
		}
	}
	res.Latency[name] = summarize(samples)
	return nil
}

// steady writes at cfg.Rate per second (creates and updates alternating)
// for cfg.Duration with cfg.Watchers watches open, while a reader gets
// pods at the same rate, and records each request's latency.
func steady(ctx context.Context, c kubernetes.Interface, cfg Config, res *Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pods := c.CoreV1().Pods("bench")
	var events atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Watchers {
		l, err := pods.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return err
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion, AllowWatchBookmarks: true})
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for {
				select {
				case _, ok := <-w.ResultChan():
					if !ok {
						return
					}
					events.Add(1)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	record := func(op string, d time.Duration) {
		mu.Lock()
		lat[op] = append(lat[op], d)
		mu.Unlock()
	}
	interval := time.Second / time.Duration(cfg.Rate)
	deadline := time.Now().Add(cfg.Duration)
	var writes atomic.Int64
	var firstErr atomic.Value
	var ops sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for i := 0; time.Now().Before(deadline); i++ {
		<-tick.C
		ops.Add(2)
		// Writes are issued on schedule (open loop), each in its own
		// goroutine, so a slow request does not lower the rate.
		go func(i int) {
			defer ops.Done()
			var err error
			t0 := time.Now()
			if i%2 == 0 {
				_, err = pods.Create(ctx, benchPod(fmt.Sprintf("steady-%06d", i/2), i), metav1.CreateOptions{})
				record("create", time.Since(t0))
			} else {
				p := benchPod(fmt.Sprintf("fill-%05d", (i/2)%1000), i)
				p.Annotations["bench.skiff.dev/update"] = strconv.Itoa(i)
				_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
				record("update", time.Since(t0))
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			writes.Add(1)
		}(i)
		go func(i int) {
			defer ops.Done()
			t0 := time.Now()
			_, err := pods.Get(ctx, fmt.Sprintf("fill-%05d", i%1000), metav1.GetOptions{})
			record("get", time.Since(t0))
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}(i)
	}
	ops.Wait()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("steady phase: %w", err)
	}
	for op, s := range lat {
		res.Latency[op] = summarize(s)
	}
	res.WatchEvents = events.Load()
	res.AchievedWriteHz = float64(writes.Load()) / elapsed.Seconds()
	return nil
}
