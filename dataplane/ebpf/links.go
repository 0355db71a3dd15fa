package ebpf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Links are pinned in <pin path>/links/<name>. A provider that starts and
// finds a pin updates that link to its freshly loaded program (an atomic
// replacement: no packet sees the hook empty) instead of attaching anew.

func (p *Provider) linkPath(name string) string {
	return filepath.Join(p.pinPath, "links", name)
}

// ensureLink makes the pinned link name run prog, attaching it with attach
// when there is no pin yet.
func (p *Provider) ensureLink(name string, prog *ebpf.Program, attach func() (link.Link, error)) error {
	path := p.linkPath(name)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		defer l.Close()
		if err := l.Update(prog); err == nil {
			return nil
		}
		// A defunct link (its device is gone) cannot be updated:
		// replace it.
		if err := l.Unpin(); err != nil {
			return fmt.Errorf("unpin stale link %s: %w", name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load pinned link %s: %w", name, err)
	}
	l, err := attach()
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	defer l.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		_ = l.Detach()
		return fmt.Errorf("create link pin directory: %w", err)
	}
	if err := l.Pin(path); err != nil {
		_ = l.Detach()
		return fmt.Errorf("pin link %s: %w", name, err)
	}
	return nil
}

// removeLink detaches and unpins the link name, if pinned.
func (p *Provider) removeLink(name string) error {
	l, err := link.LoadPinnedLink(p.linkPath(name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// A pin that is not a usable link: just remove the file.
		if rerr := os.Remove(p.linkPath(name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("remove link pin %s: %w", name, rerr)
		}
		return nil
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin link %s: %w", name, err)
	}
	if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("detach link %s: %w", name, err)
	}
	return nil
}

// ifindex resolves an interface name in the node's namespace.
func (p *Provider) ifindex(name string) (int, error) {
	var idx int
	err := inNetNS(p.cfg.NetNS, func() error {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		idx = ifc.Index
		return nil
	})
	return idx, err
}

// attachTCX attaches prog to an interface of the node's namespace. The
// ifindex is resolved and the link created inside that namespace.
func (p *Provider) attachTCX(ifname string, prog *ebpf.Program, at ebpf.AttachType) func() (link.Link, error) {
	return func() (link.Link, error) {
		var l link.Link
		err := inNetNS(p.cfg.NetNS, func() error {
			ifc, err := net.InterfaceByName(ifname)
			if err != nil {
				return fmt.Errorf("interface %s: %w", ifname, err)
			}
			l, err = link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: at})
			return err
		})
		return l, err
	}
}

func (p *Provider) attachXDP(ifname string, prog *ebpf.Program) func() (link.Link, error) {
	return func() (link.Link, error) {
		var l link.Link
		err := inNetNS(p.cfg.NetNS, func() error {
			ifc, err := net.InterfaceByName(ifname)
			if err != nil {
				return fmt.Errorf("interface %s: %w", ifname, err)
			}
			l, err = link.AttachXDP(link.XDPOptions{Interface: ifc.Index, Program: prog})
			return err
		})
		return l, err
	}
}
