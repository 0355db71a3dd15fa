package cloud

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePool(t *testing.T) {
	tests := []struct {
		name      string
		entries   []string
		wantSize  float64
		wantFirst string
		wantErr   bool
	}{
		{"cidr skips network and broadcast", []string{"192.168.10.0/29"}, 6, "192.168.10.1", false},
		{"/31 uses both", []string{"192.168.10.0/31"}, 2, "192.168.10.0", false},
		{"/32", []string{"192.168.10.7/32"}, 1, "192.168.10.7", false},
		{"range", []string{"172.18.255.200-172.18.255.250"}, 51, "172.18.255.200", false},
		{"single address", []string{"10.0.0.5"}, 1, "10.0.0.5", false},
		{"several", []string{"10.0.0.5", " 10.0.1.0/30 ", "10.0.2.1-10.0.2.2"}, 5, "10.0.0.5", false},
		{"ipv6 range", []string{"fd00::10-fd00::1f"}, 16, "", false},
		{"empty", []string{""}, 0, "", true},
		{"downward range", []string{"10.0.0.9-10.0.0.1"}, 0, "", true},
		{"mixed family range", []string{"10.0.0.1-fd00::1"}, 0, "", true},
		{"overlap", []string{"10.0.0.0/24", "10.0.0.100-10.0.1.5"}, 0, "", true},
		{"garbage", []string{"ten.0.0.1"}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePool(tt.entries)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := p.Size(); got != tt.wantSize {
				t.Errorf("got size %v, want %v", got, tt.wantSize)
			}
			if tt.wantFirst != "" {
				a, err := p.Allocate("ns/a", true)
				if err != nil || a.String() != tt.wantFirst {
					t.Errorf("got first address %v, %v, want %s", a, err, tt.wantFirst)
				}
			}
		})
	}
}

func TestPoolAllocation(t *testing.T) {
	p, err := ParsePool([]string{"10.0.0.1-10.0.0.3", "fd00::1-fd00::2"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Allocate("ns/a", true)
	if err := p.AllocateSpecific("ns/b", netip.MustParseAddr("10.0.0.3")); err != nil {
		t.Fatalf("AllocateSpecific: %v", err)
	}
	c, _ := p.Allocate("ns/c", true)
	if a.String() != "10.0.0.1" || c.String() != "10.0.0.2" {
		t.Errorf("got %s and %s, want 10.0.0.1 and 10.0.0.2", a, c)
	}
	if _, err := p.Allocate("ns/d", true); !errors.Is(err, ErrExhausted) {
		t.Errorf("got %v from an exhausted family, want ErrExhausted", err)
	}
	if v6, err := p.Allocate("ns/d", false); err != nil || v6.String() != "fd00::1" {
		t.Errorf("got %v, %v for IPv6, want fd00::1", v6, err)
	}
	if err := p.AllocateSpecific("ns/d", netip.MustParseAddr("10.0.0.1")); !errors.Is(err, ErrInUse) {
		t.Errorf("got %v for a held address, want ErrInUse", err)
	}
	if err := p.AllocateSpecific("ns/a", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Errorf("got %v re-requesting one's own address, want nil", err)
	}
	if err := p.AllocateSpecific("ns/d", netip.MustParseAddr("10.9.9.9")); !errors.Is(err, ErrNotInPool) {
		t.Errorf("got %v for an address outside, want ErrNotInPool", err)
	}
	p.Release("ns/c", netip.MustParseAddr("10.0.0.1")) // not c's: no effect
	if p.Owner(netip.MustParseAddr("10.0.0.1")) != "ns/a" {
		t.Error("got 10.0.0.1 released by a Service that does not hold it")
	}
	if got := p.ReleaseAll("ns/d"); len(got) != 1 || p.Allocated() != 3 {
		t.Errorf("got %v released and %d held, want [fd00::1] and 3", got, p.Allocated())
	}
	if a, err := p.Allocate("ns/e", false); err != nil || a.String() != "fd00::1" {
		t.Errorf("got %v, %v after a release, want fd00::1", a, err)
	}
	only6, _ := ParsePool([]string{"fd00::/120"})
	if _, err := only6.Allocate("ns/a", true); !errors.Is(err, ErrNoFamily) {
		t.Errorf("got %v for IPv4 from an IPv6 pool, want ErrNoFamily", err)
	}
}
