// Package procmem reads a process's resident memory from /proc, split the
// way the benchmarks report it: anonymous pages (Go heap, stacks) and
// file-backed pages, the latter further by file so that the executable's
// text and etcd's memory-mapped database show apart.
package procmem

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is one reading. Bytes throughout.
type Usage struct {
	RSS  int64 // VmRSS
	Anon int64 // RssAnon
	File int64 // RssFile
	// Executable and EtcdDB are the resident pages of the process's own
	// binary and of files named member/snap/db (etcd's bbolt database).
	Executable int64
	EtcdDB     int64
}

func procDir(pid int) string {
	if pid == 0 {
		return "/proc/self"
	}
	return fmt.Sprintf("/proc/%d", pid)
}

// Status reads memory fields of pid's /proc status ("VmRSS", "VmHWM",
// "RssAnon", ...) in bytes; pid 0 is the calling process. A field the
// file lacks is an error.
func Status(pid int, names ...string) ([]int64, error) {
	dir := procDir(pid)
	st, err := os.ReadFile(dir + "/status")
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(names))
	found := 0
	for _, line := range strings.Split(string(st), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for i, want := range names {
			if name == want {
				if out[i], err = kib(rest); err != nil {
					return nil, fmt.Errorf("%s/status %s: %w", dir, name, err)
				}
				found++
			}
		}
	}
	if found < len(names) {
		return nil, fmt.Errorf("%s/status: missing one of %v", dir, names)
	}
	return out, nil
}

// Read reads pid's usage; pid 0 is the calling process.
func Read(pid int) (Usage, error) {
	dir := procDir(pid)
	var u Usage
	st, err := Status(pid, "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return u, err
	}
	u.RSS, u.Anon, u.File = st[0], st[1], st[2]
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return u, err
	}
	byFile, err := residentByFile(dir + "/smaps")
	if err != nil {
		return u, err
	}
	for path, b := range byFile {
		switch {
		case path == exe:
			u.Executable += b
		case strings.HasSuffix(path, "/member/snap/db"):
			u.EtcdDB += b
		}
	}
	return u, nil
}

// residentByFile sums the Rss of an smaps file's mappings by path.
func residentByFile(smaps string) (map[string]int64, error) {
	f, err := os.Open(smaps)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	path := ""
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		// A mapping's header: "start-end perms offset dev inode [path]".
		if strings.Contains(fields[0], "-") && len(fields) >= 5 {
			path = ""
			if len(fields) >= 6 {
				path = fields[5]
			}
			continue
		}
		if fields[0] == "Rss:" && path != "" {
			b, err := kib(strings.Join(fields[1:], " "))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", smaps, err)
			}
			out[path] += b
		}
	}
	return out, sc.Err()
}

// kib parses "1234 kB" into bytes.
func kib(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty value")
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n << 10, err
}
