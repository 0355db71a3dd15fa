package ebpf

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The sync benchmarks run what Provider.Sync runs (the change tracker's
// Apply, the reconciler, the real BPF maps) on the input of `skiff bench
// lb`: Service 0 is a NodePort Service, the others ClusterIP Services,
// each with one EndpointSlice of three endpoints. Nothing is attached, so
// they need BPF but no network namespaces.

func benchService(i int) *v1.Service {
	ip := netip.AddrFrom4([4]byte{10, 96 + byte((i+1)>>16), byte((i + 1) >> 8), byte(i + 1)}).String()
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc%d", i)},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
	}
	if i == 0 {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
	}
	return s
}

// benchSlice is Service i's slice; an odd gen moves its first endpoint.
func benchSlice(i, gen int) *discoveryv1.EndpointSlice {
	name, proto, port := "http", v1.ProtocolTCP, int32(8080)
	tru, fal := true, false
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc%d-1", i),
			Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc%d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
	}
	for k := range 3 {
		a := netip.AddrFrom4([4]byte{10, byte(250 + k), byte(i >> 8), byte(i)})
		if k == 0 && gen%2 == 1 {
			a = netip.AddrFrom4([4]byte{10, 253, byte(i >> 8), byte(i)})
		}
		node := map[bool]string{true: "n1", false: "n2"}[k == 0]
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &tru, Serving: &tru, Terminating: &fal}})
	}
	return s
}

// newBenchProvider loads the objects with the default map sizes and
// returns a provider on them (nothing attached).
func newBenchProvider(b *testing.B) *Provider {
	b.Helper()
	_, m := loadTestObjects(b, loadOptions{NodeIP: testNode.NodeIPs[0], Sizes: DefaultMapSizes(), MaglevSize: DefaultMaglevSize})
	p, err := New(Config{Node: testNode, Maps: m})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(); m.close() })
	return p
}

// cpuTime is the process's user plus system CPU time (every thread, the
// garbage collector's included; system time includes the kernel's side
// of the map writes). On a shared machine it moves less than wall time,
// which includes waiting for a CPU.
func cpuTime() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

// timedSync runs p.Sync after collecting the setup's garbage and adds
// its CPU time and page faults to c.
func timedSync(b *testing.B, p *Provider, c *cost) {
	b.Helper()
	b.StopTimer()
	runtime.GC()
	cpu0, flt0 := cpuTime()
	b.StartTimer()
	err := p.Sync()
	b.StopTimer()
	cpu1, flt1 := cpuTime()
	b.StartTimer()
	if err != nil {
		b.Fatal(err)
	}
	c.cpu += cpu1 - cpu0
	c.faults += flt1 - flt0
}

// cost is what the timed syncs of a benchmark used: CPU time and minor
// page faults (first touches of memory; slow on some virtual machines).
type cost struct {
	cpu    time.Duration
	faults int64
}

func (c cost) report(b *testing.B) {
	b.ReportMetric(float64(c.cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(c.faults)/float64(b.N), "faults/op")
}

func BenchmarkSyncFull(b *testing.B) {
	requirePrivileged(b)
	for _, n := range []int{1000, 30000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			var apply, rec time.Duration
			var c cost
			for b.Loop() {
				b.StopTimer()
				p := newBenchProvider(b)
				for i := range n {
					p.OnServiceAdd(benchService(i))
					p.OnEndpointSliceAdd(benchSlice(i, 0))
				}
				b.StartTimer()
				timedSync(b, p, &c)
				st := p.LastSyncTimings()
				apply += st.Apply
				rec += st.Reconcile
			}
			b.ReportMetric(float64(apply.Microseconds())/1e3/float64(b.N), "apply-ms/op")
			b.ReportMetric(float64(rec.Microseconds())/1e3/float64(b.N), "reconcile-ms/op")
			c.report(b)
		})
	}
}

// BenchmarkSyncEndpointChange is one endpoint of one Service moved, then
// synced: the NodePort Service (its Maglev table is rebuilt) and an idle
// ClusterIP one.
func BenchmarkSyncEndpointChange(b *testing.B) {
	requirePrivileged(b)
	for _, n := range []int{1, 30000} {
		for k, j := range []int{0, n / 2} {
			if k > 0 && j == 0 {
				continue // one Service: the NodePort one only
			}
			kind := map[bool]string{true: "nodeport", false: "clusterip"}[j == 0]
			b.Run(fmt.Sprintf("services=%d/%s", n, kind), func(b *testing.B) {
				p := newBenchProvider(b)
				for i := range n {
					p.OnServiceAdd(benchService(i))
					p.OnEndpointSliceAdd(benchSlice(i, 0))
				}
				if err := p.Sync(); err != nil {
					b.Fatal(err)
				}
				gen := 0
				var c cost
				for b.Loop() {
					b.StopTimer()
					if err := p.FlushConntrack(); err != nil {
						b.Fatal(err)
					}
					gen++
					p.OnEndpointSliceUpdate(benchSlice(j, gen-1), benchSlice(j, gen))
					b.StartTimer()
					timedSync(b, p, &c)
				}
				c.report(b)
			})
		}
	}
}
