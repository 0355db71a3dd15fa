package ebpf

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/rlimit"
)

// requirePrivileged skips a test that needs root and BPF, or fails it when
// SKIFF_PRIVILEGED_TESTS=1 says it must run.
func requirePrivileged(t testing.TB) {
	t.Helper()
	must := os.Getenv("SKIFF_PRIVILEGED_TESTS") == "1"
	miss := func(reason string) {
		if must {
			t.Fatalf("privileged test cannot run (SKIFF_PRIVILEGED_TESTS=1): %s", reason)
		}
		t.Skipf("skipping privileged test: %s (set SKIFF_PRIVILEGED_TESTS=1 to require it)", reason)
	}
	if os.Geteuid() != 0 {
		miss("not root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		miss("remove memlock rlimit: " + err.Error())
	}
	if err := EnsureBPFFS(); err != nil {
		miss(err.Error())
	}
}

func randSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPinDir returns a fresh pin directory removed when the test ends.
func testPinDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(BPFFSRoot, "skiff-test-"+randSuffix(t))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pin dir %s: %v", dir, err)
		}
	})
	return dir
}

// loadTestObjects loads the programs with small maps in a test pin dir.
func loadTestObjects(t testing.TB, o loadOptions) (*objects, *Bpf) {
	t.Helper()
	requirePrivileged(t)
	if o.PinPath == "" {
		o.PinPath = testPinDir(t)
	}
	if o.Sizes == (MapSizes{}) {
		o.Sizes = MapSizes{Services: 1024, Sets: 1024, Slots: 4096, Backends: 4096, Conntrack: 4096,
			Affinity: 1024, Sockets: 1024, NetNS: 64}
	}
	if o.MaglevSize == 0 {
		o.MaglevSize = 251
	}
	objs, err := loadObjects(o)
	if err != nil {
		t.Fatalf("load objects: %v", err)
	}
	t.Cleanup(objs.close)
	m, err := newBpfMaps(objs)
	if err != nil {
		t.Fatal(err)
	}
	return objs, m
}
