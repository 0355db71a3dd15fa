package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Executor runs the iptables programs. The real one runs them in the
// node's network namespace; tests use a fake that keeps rules in memory.
type Executor interface {
	// Run runs the named program (iptables, iptables-save,
	// iptables-restore) with args and stdin and returns its standard
	// output. An exit status is reported as an error matching
	// *ExitError.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// Backend selects the iptables variant the real Executor runs.
type Backend string

const (
	// BackendDefault runs iptables, iptables-save and iptables-restore as
	// installed: the nf_tables variant on Debian 12, as kube-proxy on such
	// a host would.
	BackendDefault Backend = ""
	// BackendNFT runs the iptables-nft* programs.
	BackendNFT Backend = "nft"
	// BackendLegacy runs the iptables-legacy* programs (x_tables). Its
	// iptables-restore scales linearly with the ruleset; the nf_tables
	// variant of iptables 1.8.9 does not (about 3 s for 2,000 Services and
	// 40 s for 5,000 here), so large-scale benchmarks use this one.
	BackendLegacy Backend = "legacy"
)

// program maps a program name to the backend's binary.
func (b Backend) program(name string) string {
	if b == BackendDefault {
		return name
	}
	if base, ok := strings.CutSuffix(name, "-restore"); ok {
		return base + "-" + string(b) + "-restore"
	}
	if base, ok := strings.CutSuffix(name, "-save"); ok {
		return base + "-" + string(b) + "-save"
	}
	return name + "-" + string(b)
}

// Programs returns the binaries the backend runs (for availability checks).
func (b Backend) Programs() []string {
	return []string{b.program("iptables"), b.program("iptables-save"), b.program("iptables-restore")}
}

// ExitError is a program's non-zero exit.
type ExitError struct {
	Program string
	Code    int
	Stderr  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s exited with status %d: %s", e.Program, e.Code, e.Stderr)
}

// NewExecutor returns an Executor that runs the backend's programs in the
// network namespace at netnsPath (e.g. /run/netns/node-1), or in the
// current one when netnsPath is empty. Only the network namespace
// changes: the program is started from a locked OS thread that entered
// the namespace (and is discarded afterwards), like nsenter --net.
func NewExecutor(netnsPath string, backend Backend) Executor {
	return &nsExecutor{path: netnsPath, backend: backend}
}

type nsExecutor struct {
	path    string
	backend Backend
}

func (e *nsExecutor) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	name = e.backend.program(name)
	var stdout, stderr bytes.Buffer
	run := func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	}
	var err error
	if e.path == "" {
		err = run()
	} else {
		err = inNetNS(e.path, run)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), &ExitError{Program: name, Code: ee.ExitCode(), Stderr: strings.TrimSpace(stderr.String())}
		}
		return stdout.Bytes(), fmt.Errorf("run %s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

// inNetNS runs fn on a fresh locked OS thread inside the network namespace
// at path. The thread is never unlocked, so it is destroyed afterwards and
// no other goroutine ever runs in the namespace.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// exitCode returns the exit status of a failed program, or -1.
func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}
