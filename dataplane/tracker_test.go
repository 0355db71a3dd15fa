package dataplane

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

func names(m map[ServicePortName]struct{}) []string {
	var out []string
	for n := range m {
		out = append(out, n.String())
	}
	sort.Strings(out)
	return out
}

func epStrings(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		s := e.String()
		if e.Local {
			s += " local"
		}
		if !e.Ready {
			s += " notready"
		}
		if e.Terminating {
			s += " terminating"
		}
		out = append(out, s)
	}
	return out
}

func TestChangeTrackerServices(t *testing.T) {
	tr := NewChangeTracker(NodeConfig{Name: "n1"})
	if tr.Pending() {
		t.Fatalf("new tracker: got Pending true, want false")
	}
	a := svc("ns", "a", "10.96.0.1")
	tr.OnServiceAdd(a)
	if !tr.Pending() {
		t.Fatalf("after add: got Pending false, want true")
	}
	u := tr.Apply()
	if got, want := names(u.Changed), []string{"ns/a:http/TCP"}; !slices.Equal(got, want) {
		t.Fatalf("after add: got changed %v, want %v", got, want)
	}
	if len(u.Services) != 1 {
		t.Fatalf("after add: got %d services, want 1", len(u.Services))
	}
	first := u.Services[spn("ns", "a", "http", v1.ProtocolTCP)]

	// An update that does not change the ports records nothing.
	a2 := a.DeepCopy()
	a2.ResourceVersion = "2"
	a2.Labels = map[string]string{"x": "y"}
	tr.OnServiceUpdate(a, a2)
	if tr.Pending() {
		t.Fatalf("after no-op update: got Pending true, want false")
	}

	// A change and its revert before Apply cancel out.
	a3 := a2.DeepCopy()
	a3.Spec.Ports[0].Port = 8080
	tr.OnServiceUpdate(a2, a3)
	tr.OnServiceUpdate(a3, a2)
	if tr.Pending() {
		t.Fatalf("after change and revert: got Pending true, want false")
	}

	// Adding a second port changes only that name; the old value is not modified.
	a4 := a2.DeepCopy()
	a4.Spec.Ports = append(a4.Spec.Ports, v1.ServicePort{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53})
	tr.OnServiceUpdate(a2, a4)
	u = tr.Apply()
	if got, want := names(u.Changed), []string{"ns/a:dns/UDP"}; !slices.Equal(got, want) {
		t.Fatalf("after adding a port: got changed %v, want %v", got, want)
	}
	if u.Services[spn("ns", "a", "http", v1.ProtocolTCP)] != first {
		t.Errorf("unchanged port: got a new *ServicePort, want the previous one")
	}

	// Changing the ClusterIP changes both; the old pointer keeps the old value.
	a5 := a4.DeepCopy()
	a5.Spec.ClusterIP, a5.Spec.ClusterIPs = "10.96.0.9", []string{"10.96.0.9"}
	tr.OnServiceUpdate(a4, a5)
	u = tr.Apply()
	if got, want := names(u.Changed), []string{"ns/a:dns/UDP", "ns/a:http/TCP"}; !slices.Equal(got, want) {
		t.Fatalf("after ClusterIP change: got changed %v, want %v", got, want)
	}
	if got := first.ClusterIPs[0].String(); got != "10.96.0.1" {
		t.Errorf("old ServicePort was modified: got ClusterIP %s, want 10.96.0.1", got)
	}

	// Turning it headless removes every port.
	a6 := a5.DeepCopy()
	a6.Spec.ClusterIP, a6.Spec.ClusterIPs = v1.ClusterIPNone, nil
	tr.OnServiceUpdate(a5, a6)
	u = tr.Apply()
	if got, want := names(u.Changed), []string{"ns/a:dns/UDP", "ns/a:http/TCP"}; !slices.Equal(got, want) {
		t.Fatalf("after going headless: got changed %v, want %v", got, want)
	}
	if len(u.Services) != 0 {
		t.Fatalf("after going headless: got %d services, want 0", len(u.Services))
	}

	// Deleting a Service that is not programmed records nothing.
	tr.OnServiceDelete(a6)
	if tr.Pending() {
		t.Fatalf("after deleting a headless Service: got Pending true, want false")
	}
	if u := tr.Apply(); len(u.Changed) != 0 {
		t.Fatalf("empty Apply: got changed %v, want none", names(u.Changed))
	}
}

func TestChangeTrackerEndpoints(t *testing.T) {
	tcp, udp := v1.ProtocolTCP, v1.ProtocolUDP
	web := port("http", tcp, 8080)
	dns := port("dns", udp, 5353)
	tests := []struct {
		name        string
		events      func(tr *ChangeTracker)
		wantChanged []string
		want        map[ServicePortName][]string
	}{
		{
			name: "named target ports resolve per port name and protocol",
			events: func(tr *ChangeTracker) {
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web, dns},
					epSpec{ip: "10.244.1.5", node: "n1"}, epSpec{ip: "10.244.2.5", node: "n2"}))
			},
			wantChanged: []string{"ns/a:dns/UDP", "ns/a:http/TCP"},
			want: map[ServicePortName][]string{
				spn("ns", "a", "http", tcp): {"10.244.1.5:8080 local", "10.244.2.5:8080"},
				spn("ns", "a", "dns", udp):  {"10.244.1.5:5353 local", "10.244.2.5:5353"},
			},
		},
		{
			name: "duplicates across slices collapse, the non-terminating copy wins, order is numeric",
			events: func(tr *ChangeTracker) {
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web},
					epSpec{ip: "10.244.1.10", ready: ptr(false), serving: ptr(true), terminating: ptr(true)},
					epSpec{ip: "10.244.1.9"}))
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-2", []discoveryv1.EndpointPort{web},
					epSpec{ip: "10.244.1.10"}, epSpec{ip: "10.244.1.9", ready: ptr(false), terminating: ptr(true)}))
			},
			wantChanged: []string{"ns/a:http/TCP"},
			want: map[ServicePortName][]string{
				spn("ns", "a", "http", tcp): {"10.244.1.9:8080", "10.244.1.10:8080"},
			},
		},
		{
			name: "removing the last slice removes the endpoints",
			events: func(tr *ChangeTracker) {
				s := slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.5"})
				tr.OnEndpointSliceAdd(s)
				tr.Apply()
				tr.OnEndpointSliceDelete(s)
			},
			wantChanged: []string{"ns/a:http/TCP"},
			want:        map[ServicePortName][]string{},
		},
		{
			name: "add and delete before Apply cancel out",
			events: func(tr *ChangeTracker) {
				s := slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.5"})
				tr.OnEndpointSliceAdd(s)
				tr.OnEndpointSliceDelete(s)
			},
			want: map[ServicePortName][]string{},
		},
		{
			name: "a port renamed in the slice moves the endpoints",
			events: func(tr *ChangeTracker) {
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.5"}))
				tr.Apply()
				tr.OnEndpointSliceUpdate(nil, slice("ns", "a", "a-1", []discoveryv1.EndpointPort{port("web", tcp, 8080)}, epSpec{ip: "10.244.1.5"}))
			},
			wantChanged: []string{"ns/a:http/TCP", "ns/a:web/TCP"},
			want: map[ServicePortName][]string{
				spn("ns", "a", "web", tcp): {"10.244.1.5:8080"},
			},
		},
		{
			name: "conditions change is a change; an identical update is not",
			events: func(tr *ChangeTracker) {
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.5"}, epSpec{ip: "10.244.1.6"}))
				tr.Apply()
				tr.OnEndpointSliceUpdate(nil, slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.5"}, epSpec{ip: "10.244.1.6"}))
				if tr.Pending() {
					panic("identical slice update recorded a change")
				}
				tr.OnEndpointSliceUpdate(nil, slice("ns", "a", "a-1", []discoveryv1.EndpointPort{web},
					epSpec{ip: "10.244.1.5", ready: ptr(false), serving: ptr(true), terminating: ptr(true)}, epSpec{ip: "10.244.1.6"}))
			},
			wantChanged: []string{"ns/a:http/TCP"},
			want: map[ServicePortName][]string{
				spn("ns", "a", "http", tcp): {"10.244.1.5:8080 notready terminating", "10.244.1.6:8080"},
			},
		},
		{
			name: "IPv6 slices, slices without a service label, ports without a number and bad addresses are ignored",
			events: func(tr *ChangeTracker) {
				v6 := slice("ns", "a", "a-6", []discoveryv1.EndpointPort{web}, epSpec{ip: "fd00::5"})
				v6.AddressType = discoveryv1.AddressTypeIPv6
				tr.OnEndpointSliceAdd(v6)
				nolabel := slice("ns", "a", "a-x", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.1.7"})
				nolabel.Labels = nil
				tr.OnEndpointSliceAdd(nolabel)
				tr.OnEndpointSliceAdd(slice("ns", "a", "a-1",
					[]discoveryv1.EndpointPort{web, {Name: ptr("noport"), Protocol: &tcp}},
					epSpec{ip: "10.244.1.5"}, epSpec{ip: "not-an-ip"}))
			},
			wantChanged: []string{"ns/a:http/TCP"},
			want: map[ServicePortName][]string{
				spn("ns", "a", "http", tcp): {"10.244.1.5:8080"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewChangeTracker(NodeConfig{Name: "n1"})
			tt.events(tr)
			u := tr.Apply()
			if got := names(u.Changed); !slices.Equal(got, tt.wantChanged) {
				t.Errorf("got changed %v, want %v", got, tt.wantChanged)
			}
			got := make(map[ServicePortName][]string)
			for n, eps := range u.Endpoints {
				got[n] = epStrings(eps)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got endpoints %v, want %v", got, tt.want)
			}
			if tr.Pending() {
				t.Errorf("after Apply: got Pending true, want false")
			}
		})
	}
}

// TestChangeTrackerApplyTouchesOnlyChanges checks that Apply's Changed set
// names only what changed when many Services exist.
func TestChangeTrackerApplyTouchesOnlyChanges(t *testing.T) {
	tr := NewChangeTracker(NodeConfig{Name: "n1"})
	web := port("http", v1.ProtocolTCP, 8080)
	for i := range 1000 {
		name := fmt.Sprintf("s%d", i)
		tr.OnServiceAdd(svc("ns", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)))
		tr.OnEndpointSliceAdd(slice("ns", name, name+"-1", []discoveryv1.EndpointPort{web}, epSpec{ip: fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)}))
	}
	if u := tr.Apply(); len(u.Changed) != 1000 || len(u.Services) != 1000 || len(u.Endpoints) != 1000 {
		t.Fatalf("initial Apply: got %d changed, %d services, %d endpoints, want 1000 each", len(u.Changed), len(u.Services), len(u.Endpoints))
	}
	tr.OnEndpointSliceUpdate(nil, slice("ns", "s7", "s7-1", []discoveryv1.EndpointPort{web}, epSpec{ip: "10.244.9.9"}))
	u := tr.Apply()
	if got, want := names(u.Changed), []string{"ns/s7:http/TCP"}; !slices.Equal(got, want) {
		t.Fatalf("got changed %v, want %v", got, want)
	}
	if got := epStrings(u.Endpoints[spn("ns", "s7", "http", v1.ProtocolTCP)]); !slices.Equal(got, []string{"10.244.9.9:8080"}) {
		t.Fatalf("got endpoints %v, want [10.244.9.9:8080]", got)
	}
}

func TestChangeTrackerConcurrentHandlers(t *testing.T) {
	notified := make(chan struct{}, 1)
	tr := NewChangeTracker(NodeConfig{Name: "n1"}, WithNotify(func() {
		select {
		case notified <- struct{}{}:
		default:
		}
	}))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				name := fmt.Sprintf("g%d-%d", g, i)
				tr.OnServiceAdd(svc("ns", name, fmt.Sprintf("10.%d.%d.1", 100+g, i)))
				tr.OnEndpointSliceAdd(slice("ns", name, name, []discoveryv1.EndpointPort{port("http", v1.ProtocolTCP, 80)}, epSpec{ip: "10.244.0.1"}))
				if i%50 == 0 {
					tr.Apply()
				}
			}
		}()
	}
	wg.Wait()
	u := tr.Apply()
	if len(u.Services) != 800 || len(u.Endpoints) != 800 {
		t.Fatalf("got %d services and %d endpoint sets, want 800 each", len(u.Services), len(u.Endpoints))
	}
	select {
	case <-notified:
	default:
		t.Fatalf("notify was never called, want at least once")
	}
}

// referenceEndpoints is the tracker's first implementation of the
// endpoint merge, kept to check the faster one: slices in name order, one
// map entry per ServicePort, an index of ip:port, a sort per list.
func referenceEndpoints(node string, nn types.NamespacedName, bySlice map[string]*discoveryv1.EndpointSlice) map[ServicePortName][]Endpoint {
	out := make(map[ServicePortName][]Endpoint)
	names := make([]string, 0, len(bySlice))
	for n := range bySlice {
		names = append(names, n)
	}
	sort.Strings(names)
	type key struct {
		name ServicePortName
		ap   netip.AddrPort
	}
	index := make(map[key]int)
	for _, sn := range names {
		s := bySlice[sn]
		for _, p := range s.Ports {
			if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
				continue
			}
			spn := ServicePortName{NamespacedName: nn, Protocol: v1.ProtocolTCP}
			if p.Name != nil {
				spn.Port = *p.Name
			}
			if p.Protocol != nil {
				spn.Protocol = *p.Protocol
			}
			for _, e := range s.Endpoints {
				ip, err := netip.ParseAddr(e.Addresses[0])
				if err != nil || !ip.Unmap().Is4() {
					continue
				}
				ep := Endpoint{
					IP:          ip.Unmap(),
					Port:        uint16(*p.Port),
					Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
					Serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
					Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
				}
				if e.NodeName != nil {
					ep.NodeName = *e.NodeName
				}
				ep.Local = ep.NodeName == node
				k := key{spn, ep.AddrPort()}
				if i, ok := index[k]; ok {
					if !ep.Terminating {
						out[spn][i] = ep
					}
					continue
				}
				index[k] = len(out[spn])
				out[spn] = append(out[spn], ep)
			}
		}
	}
	for _, list := range out {
		slices.SortFunc(list, CompareEndpoints)
	}
	return out
}

// TestChangeTrackerEndpointsMatchReference feeds random slices (shared
// and repeated addresses, several ports, mixed conditions, added, changed
// and deleted) and compares every Apply with the reference merge.
func TestChangeTrackerEndpointsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	bools := []*bool{nil, ptr(true), ptr(false)}
	ports := []discoveryv1.EndpointPort{
		port("http", v1.ProtocolTCP, 8080), port("http", v1.ProtocolTCP, 9090), port("dns", v1.ProtocolUDP, 53), port("", v1.ProtocolTCP, 80),
	}
	randomSlice := func(name string) *discoveryv1.EndpointSlice {
		var ps []discoveryv1.EndpointPort
		for _, p := range ports {
			if r.IntN(2) == 0 {
				ps = append(ps, p)
			}
		}
		var eps []epSpec
		for range r.IntN(6) {
			eps = append(eps, epSpec{ip: fmt.Sprintf("10.244.0.%d", 1+r.IntN(5)), node: []string{"", "n1", "n2"}[r.IntN(3)],
				ready: bools[r.IntN(3)], serving: bools[r.IntN(3)], terminating: bools[r.IntN(3)]})
		}
		return slice("ns", "a", name, ps, eps...)
	}
	nn := types.NamespacedName{Namespace: "ns", Name: "a"}
	for round := range 200 {
		tr := NewChangeTracker(NodeConfig{Name: "n1"})
		current := map[string]*discoveryv1.EndpointSlice{}
		for step := range 6 {
			name := fmt.Sprintf("a-%d", r.IntN(3))
			if r.IntN(4) == 0 {
				if s := current[name]; s != nil {
					tr.OnEndpointSliceDelete(s)
					delete(current, name)
				}
			} else {
				s := randomSlice(name)
				tr.OnEndpointSliceUpdate(current[name], s)
				current[name] = s
			}
			u := tr.Apply()
			want := referenceEndpoints("n1", nn, current)
			got := map[ServicePortName][]Endpoint{}
			for n, eps := range u.Endpoints {
				got[n] = eps
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d step %d: got %v, want %v", round, step, got, want)
			}
			count := 0
			for _, eps := range want {
				count += len(eps)
			}
			if u.EndpointCount != count {
				t.Fatalf("round %d step %d: got EndpointCount %d, want %d", round, step, u.EndpointCount, count)
			}
		}
	}
}
