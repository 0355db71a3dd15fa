package dataplane

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// benchInput returns n ClusterIP Services with one port and one
// EndpointSlice of three endpoints each, the shape `skiff bench lb` uses.
func benchInput(n int) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	svcs := make([]*v1.Service, n)
	slices := make([]*discoveryv1.EndpointSlice, n)
	for i := range n {
		ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}).String()
		name := fmt.Sprintf("svc%d", i)
		svcs[i] = svc("bench", name, ip)
		var eps []epSpec
		for k := range 3 {
			eps = append(eps, epSpec{ip: netip.AddrFrom4([4]byte{10, byte(250 + k), byte(i >> 8), byte(i)}).String(), node: "n2"})
		}
		slices[i] = slice("bench", name, name+"-1", []discoveryv1.EndpointPort{port("http", v1.ProtocolTCP, 8080)}, eps...)
	}
	return svcs, slices
}

// cpuTime is the process's user plus system CPU time (every thread, the
// garbage collector's included). On a shared machine it moves less than
// wall time, which includes waiting for a CPU.
// It also returns the minor page faults so far (first touches of memory;
// slow on some virtual machines).
func cpuTime() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

// BenchmarkApplyFull is the change tracker's share of a full sync: every
// Service and EndpointSlice recorded, then one Apply. cpu-ms/op is the
// CPU time of the Apply (after a forced collection of the setup's
// garbage).
func BenchmarkApplyFull(b *testing.B) {
	for _, n := range []int{1000, 30000} {
		svcs, slices := benchInput(n)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			var cpu time.Duration
			var faults int64
			for b.Loop() {
				b.StopTimer()
				tr := NewChangeTracker(NodeConfig{Name: "n1"})
				for i := range svcs {
					tr.OnServiceAdd(svcs[i])
					tr.OnEndpointSliceAdd(slices[i])
				}
				runtime.GC()
				cpu0, flt0 := cpuTime()
				b.StartTimer()
				u := tr.Apply()
				b.StopTimer()
				cpu1, flt1 := cpuTime()
				cpu += cpu1 - cpu0
				faults += flt1 - flt0
				b.StartTimer()
				if len(u.Services) != n || len(u.Changed) != n {
					b.Fatalf("got %d services, %d changed, want %d", len(u.Services), len(u.Changed), n)
				}
			}
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
		})
	}
}
