package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiff-project/skiff/dataplane/ebpf"
)

// What one run leaves behind while it runs, under fixed names so that the
// next run can remove it when a run was interrupted (killed, or the
// machine rebooted half way): the test bed's network namespaces (the
// iptables rules and the XDP and TC programs live and die with them) and
// the eBPF provider's pin directory (its pinned links keep the socket
// programs on the cgroup until they are removed).
const (
	testbedPrefix = "sklb"
	pinDirName    = "skiff-bench-lb"
	lockPath      = "/run/skiff-bench-lb.lock"
)

func pinBase() string { return filepath.Join(ebpf.BPFFSRoot, pinDirName) }

// lockRun makes sure no other run uses the fixed names at the same time.
// The lock goes with the process, so a killed run leaves none.
func lockRun() (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another skiff bench lb is running (it holds %s)", lockPath)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return func() { f.Close() }, nil
}

// cleanupLeftovers removes the pin directories of earlier runs: this
// run's fixed one, and the randomly named ones (skiff-bench-<hex>) that
// earlier versions of the benchmark used. The test bed's namespaces are
// removed by testbed.New (fixed prefix).
func cleanupLeftovers(log *slog.Logger) error {
	if err := ebpf.EnsureBPFFS(); err != nil {
		return err
	}
	dirs, err := filepath.Glob(filepath.Join(ebpf.BPFFSRoot, "skiff-bench-*"))
	if err != nil {
		return fmt.Errorf("find leftover pin directories: %w", err)
	}
	for _, d := range dirs {
		log.Info("removing leftovers of an earlier run", "pins", d)
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove leftover pin directory %s: %w", d, err)
		}
	}
	return nil
}

// loadAvg returns the 1, 5 and 15 minute load averages (zeros if
// unreadable).
func loadAvg() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(b)) {
		if i == len(out) {
			break
		}
		out[i], _ = strconv.ParseFloat(f, 64)
	}
	return out
}

// iptablesVariant returns what the machine's iptables is ("nf_tables" or
// "legacy", from `iptables --version`), or "unknown".
func iptablesVariant(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "iptables", "--version").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if i, j := strings.LastIndex(s, "("), strings.LastIndex(s, ")"); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return "unknown"
}
