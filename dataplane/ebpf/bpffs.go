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
