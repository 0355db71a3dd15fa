package procmem

import (
	"os"
	"testing"
)

func TestReadSelf(t *testing.T) {
	u, err := Read(0)
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 || u.Anon <= 0 || u.File <= 0 {
		t.Fatalf("RSS %d, anon %d, file %d: want all positive", u.RSS, u.Anon, u.File)
	}
	if u.Anon+u.File > u.RSS+(1<<20) {
		t.Errorf("anon %d + file %d exceed RSS %d", u.Anon, u.File, u.RSS)
	}
	// The test binary runs, so some of its text is resident. (status
	// counters and smaps are read at different moments: compare with RSS.)
	if u.Executable <= 0 || u.Executable > u.RSS {
		t.Errorf("executable %d, RSS %d: want 0 < executable <= RSS", u.Executable, u.RSS)
	}
	if u.EtcdDB != 0 {
		t.Errorf("etcd db %d in a process without etcd", u.EtcdDB)
	}
	if _, err := Read(os.Getpid()); err != nil {
		t.Errorf("Read(own pid): %v", err)
	}
}

func TestReadMissingProcess(t *testing.T) {
	if _, err := Read(1 << 30); err == nil {
		t.Fatal("Read of a pid that cannot exist succeeded")
	}
}

func TestStatus(t *testing.T) {
	v, err := Status(0, "VmHWM", "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	if v[0] <= 0 || v[1] <= 0 || v[1] > v[0] {
		t.Errorf("VmHWM %d, VmRSS %d: want 0 < VmRSS <= VmHWM", v[0], v[1])
	}
	if _, err := Status(0, "VmRSS", "NoSuchField"); err == nil {
		t.Error("a missing field read without error")
	}
}
