package testbed

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// PrivilegedEnv is the environment variable that turns a missing privilege
// into a test failure instead of a skip (CI sets it).
const PrivilegedEnv = "SKIFF_PRIVILEGED_TESTS"

// Missing skips the test with reason, or fails it when PrivilegedEnv is
// "1".
func Missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(PrivilegedEnv) == "1" {
		t.Fatalf("%s=1 but %s", PrivilegedEnv, reason)
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", reason, PrivilegedEnv)
}

// RequireRoot skips (or fails, see Missing) unless the test runs as root,
// which network namespaces, iptables and BPF need.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "test needs root (network namespaces)")
	}
}

// RequireCommands skips (or fails) unless every named program is on PATH.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "test needs "+n+" on PATH")
		}
	}
}

// NewForTest builds a test bed for t after checking privileges, logs to
// t.Log, and removes it when the test ends, pass or fail.
func NewForTest(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	RequireRoot(t)
	if cfg.Logger == nil {
		cfg.Logger = TestLogger(t)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("build test bed: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close test bed %s: %v", c.Prefix, err)
		}
	})
	return c
}

// TestLogger returns a logger writing to t.Log at debug level. Lines
// logged after the test's cleanups ran (by a goroutine that outlived it)
// are dropped instead of panicking.
func TestLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}
