package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetNSDir is where named network namespaces are bind-mounted, as
// `ip netns add` does: `ip netns list` shows the test bed's namespaces.
const NetNSDir = "/run/netns"

// NetNS is a named network namespace (a bind mount under /run/netns).
type NetNS struct {
	name string

	poolMu sync.Mutex
	pool   *nsPool
}

// workers returns the namespace's dial workers, started on first use.
func (ns *NetNS) workers() *nsPool {
	ns.poolMu.Lock()
	defer ns.poolMu.Unlock()
	if ns.pool == nil {
		ns.pool = newNSPool(ns.Path())
	}
	return ns.pool
}

// closeWorkers stops the dial workers, if any.
func (ns *NetNS) closeWorkers() {
	ns.poolMu.Lock()
	p := ns.pool
	ns.poolMu.Unlock()
	if p != nil {
		p.close()
	}
}

// Name is the namespace's name (`ip netns exec NAME ...` works).
func (ns *NetNS) Name() string { return ns.name }

// Path is the namespace's bind mount, e.g. for nsenter --net=PATH.
func (ns *NetNS) Path() string { return filepath.Join(NetNSDir, ns.name) }

func (ns *NetNS) String() string { return ns.name }

// createNetNS creates a named network namespace. The calling goroutine's
// thread is not affected: the work runs on a throw-away locked thread.
func createNetNS(name string) (*NetNS, error) {
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", NetNSDir, err)
	}
	path := filepath.Join(NetNSDir, name)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends up in the new namespace and is
		// destroyed when this goroutine returns.
		runtime.LockOSThread()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			errc <- fmt.Errorf("create netns file %s: %w", path, err)
			return
		}
		f.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			os.Remove(path)
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			errc <- fmt.Errorf("bind-mount network namespace to %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return &NetNS{name: name}, nil
}

// deleteNetNS removes a named namespace's bind mount. The namespace itself
// goes when nothing else refers to it (open sockets do).
func deleteNetNS(name string) error {
	path := filepath.Join(NetNSDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Do runs fn with the calling thread in the namespace, on a dedicated
// locked OS thread that is discarded afterwards, so no other goroutine
// ever runs in the namespace by accident. Only the network namespace
// changes (mounts such as /sys/fs/bpf stay visible). Sockets created in
// fn belong to the namespace for their whole life and may be used from any
// goroutine afterwards; processes started in fn run in it.
func (ns *NetNS) Do(fn func() error) error {
	return Do(ns.Path(), fn)
}

// Do runs fn in the network namespace at path, like NetNS.Do.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
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

// Run runs a command in the namespace and returns its standard output. On
// failure the error includes standard error.
func (ns *NetNS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := ns.Do(func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s in netns %s: %w: %s", name, strings.Join(args, " "), ns.name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Netlink returns a netlink handle bound to the namespace. Close it.
func (ns *NetNS) Netlink() (*netlink.Handle, error) {
	h, err := netns.GetFromPath(ns.Path())
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns.name, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %s: %w", ns.name, err)
	}
	return nl, nil
}

// Sysctl sets a sysctl (e.g. "net/ipv4/ip_forward") in the namespace.
func (ns *NetNS) Sysctl(key, value string) error {
	return ns.Do(func() error {
		p := filepath.Join("/proc/sys", key)
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("set %s=%s in netns %s: %w", key, value, ns.name, err)
		}
		return nil
	})
}

// CleanupPrefix deletes every named namespace whose name starts with
// prefix: leftovers of a test bed that was not closed (a killed test). It
// is idempotent. Use it only with a prefix no one else uses at the same
// time.
func CleanupPrefix(prefix string) error {
	if prefix == "" {
		return errors.New("cleanup netns leftovers: empty prefix")
	}
	entries, err := os.ReadDir(NetNSDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", NetNSDir, err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			errs = append(errs, deleteNetNS(e.Name()))
		}
	}
	return errors.Join(errs...)
}
