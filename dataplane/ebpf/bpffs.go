package ebpf

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BPFFSRoot is where bpffs is expected.
const BPFFSRoot = "/sys/fs/bpf"

// EnsureBPFFS mounts bpffs at /sys/fs/bpf when nothing is mounted there
// (the lab machines do not mount it at boot).
func EnsureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFSRoot, &st); err == nil && uint32(st.Type) == unix.BPF_FS_MAGIC {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statfs %s: %w", BPFFSRoot, err)
	}
	if err := os.MkdirAll(BPFFSRoot, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", BPFFSRoot, err)
	}
	if err := unix.Mount("bpf", BPFFSRoot, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", BPFFSRoot, err)
	}
	return nil
}

// removeDir removes a pin directory tree.
func removeDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC.
const cgroup2Magic = 0x63677270

// EnsureCgroup2 mounts a cgroup2 hierarchy at path when nothing of that
// kind is mounted there (the lab machines mount cgroup v1 only; a cgroup2
// root beside it carries the socket programs).
func EnsureCgroup2(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err == nil && uint32(st.Type) == cgroup2Magic {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := unix.Mount("cgroup2", path, "cgroup2", 0, ""); err != nil {
		return fmt.Errorf("mount cgroup2 at %s: %w", path, err)
	}
	return nil
}
