package endpointslice

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Object builders.

func service(name string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": name},
			ClusterIP:  "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web"),
			}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

type podOpt func(*corev1.Pod)

func pod(name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: "node-a",
			Containers: []corev1.Container{{
				Name:  "c",
				Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func terminating(p *corev1.Pod) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}
func containerPort(n int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
}
func noNamedPort(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }
func onNode(n string) podOpt    { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func manyPods(n int, opts ...podOpt) []*corev1.Pod {
	ps := make([]*corev1.Pod, n)
	for i := range n {
		ps[i] = pod(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.244.%d.%d", i/250, i%250+1), opts...)
	}
	return ps
}

func noZone(string) string { return "" }

// apply plays a plan onto a slice set the way the API server would, naming
// created slices.
func applyPlan(existing []*discoveryv1.EndpointSlice, p plan, next *int) []*discoveryv1.EndpointSlice {
	out := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		out[s.Name] = s
	}
	for _, s := range p.create {
		s = s.DeepCopy()
		*next++
		s.Name = fmt.Sprintf("%sgen%d", s.GenerateName, *next)
		s.UID = types.UID(s.Name)
		out[s.Name] = s
	}
	for _, s := range p.update {
		out[s.Name] = s.DeepCopy()
	}
	for _, s := range p.delete {
		delete(out, s.Name)
	}
	res := make([]*discoveryv1.EndpointSlice, 0, len(out))
	for _, s := range out {
		res = append(res, s)
	}
	slices.SortFunc(res, func(a, b *discoveryv1.EndpointSlice) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return res
}

func endpointCount(ss []*discoveryv1.EndpointSlice) int {
	n := 0
	for _, s := range ss {
		n += len(s.Endpoints)
	}
	return n
}

func TestConditions(t *testing.T) {
	tests := []struct {
		name                          string
		pod                           *corev1.Pod
		publishNotReady               bool
		ready, serving, terminatingOK bool
		included                      bool
	}{
		{"ready", pod("a", "10.0.0.1"), false, true, true, false, true},
		{"not ready", pod("a", "10.0.0.1", notReady), false, false, false, false, true},
		{"ready and terminating", pod("a", "10.0.0.1", terminating), false, false, true, true, true},
		{"not ready and terminating", pod("a", "10.0.0.1", notReady, terminating), false, false, false, true, true},
		{"publishNotReadyAddresses", pod("a", "10.0.0.1", notReady), true, true, false, false, true},
		{"publishNotReadyAddresses terminating", pod("a", "10.0.0.1", terminating), true, true, true, true, true},
		{"no IP", pod("a", ""), false, false, false, false, false},
		{"succeeded", pod("a", "10.0.0.1", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), false, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := service("web", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = tt.publishNotReady })
			r := reconciler{maxPerSlice: 100}
			p := r.reconcile(svc, []*corev1.Pod{tt.pod}, nil, noZone)
			if len(p.create) != 1 {
				t.Fatalf("got %d slices to create, want 1", len(p.create))
			}
			eps := p.create[0].Endpoints
			if !tt.included {
				if len(eps) != 0 {
					t.Fatalf("got %d endpoints, want 0 (placeholder)", len(eps))
				}
				return
			}
			if len(eps) != 1 {
				t.Fatalf("got %d endpoints, want 1", len(eps))
			}
			c := eps[0].Conditions
			if *c.Ready != tt.ready || *c.Serving != tt.serving || *c.Terminating != tt.terminatingOK {
				t.Errorf("got ready=%v serving=%v terminating=%v, want %v %v %v", *c.Ready, *c.Serving, *c.Terminating, tt.ready, tt.serving, tt.terminatingOK)
			}
		})
	}
}

func TestNamedPortsGroupSlices(t *testing.T) {
	svc := service("web")
	pods := []*corev1.Pod{
		pod("a", "10.0.0.1"),
		pod("b", "10.0.0.2"),
		pod("c", "10.0.0.3", containerPort(9090)),
		pod("d", "10.0.0.4", noNamedPort),
	}
	r := reconciler{maxPerSlice: 100}
	p := r.reconcile(svc, pods, nil, noZone)
	got := map[string][]string{}
	for _, s := range p.create {
		var names []string
		for _, ep := range s.Endpoints {
			names = append(names, ep.TargetRef.Name)
		}
		slices.Sort(names)
		got[portsKey(s.Ports)] = names
	}
	want := map[string][]string{
		"http/TCP/8080/": {"a", "b"},
		"http/TCP/9090/": {"c"},
		"":               {"d"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got slices by ports %v, want %v", got, want)
	}
}

func TestSliceMetadata(t *testing.T) {
	svc := service("web", func(s *corev1.Service) {
		s.Labels = map[string]string{"team": "a", discoveryv1.LabelManagedBy: "someone"}
		s.Spec.ClusterIP = corev1.ClusterIPNone
	})
	p1 := pod("a", "10.0.0.1", func(p *corev1.Pod) { p.Spec.Hostname = "a"; p.Spec.Subdomain = "web" })
	p2 := pod("b", "10.0.0.2", onNode("node-b"), func(p *corev1.Pod) { p.Spec.Hostname = "b"; p.Spec.Subdomain = "other" })
	r := reconciler{maxPerSlice: 100}
	p := r.reconcile(svc, []*corev1.Pod{p1, p2}, nil, func(n string) string {
		return map[string]string{"node-a": "zone-1"}[n]
	})
	if len(p.create) != 1 {
		t.Fatalf("got %d creates, want 1", len(p.create))
	}
	s := p.create[0]
	wantLabels := map[string]string{
		"team":                       "a",
		discoveryv1.LabelServiceName: "web",
		discoveryv1.LabelManagedBy:   ControllerName,
		corev1.IsHeadlessService:     "",
	}
	if fmt.Sprint(s.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("got labels %v, want %v", s.Labels, wantLabels)
	}
	if s.GenerateName != "web-" || s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("got generateName %q addressType %s, want web- IPv4", s.GenerateName, s.AddressType)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != svc.UID || !*s.OwnerReferences[0].Controller {
		t.Errorf("got ownerReferences %+v, want the Service as controller", s.OwnerReferences)
	}
	byName := map[string]discoveryv1.Endpoint{}
	for _, ep := range s.Endpoints {
		byName[ep.TargetRef.Name] = ep
	}
	a, b := byName["a"], byName["b"]
	if a.Hostname == nil || *a.Hostname != "a" {
		t.Errorf("got hostname %v for a pod in the Service's subdomain, want a", a.Hostname)
	}
	if b.Hostname != nil {
		t.Errorf("got hostname %q for a pod of another subdomain, want none", *b.Hostname)
	}
	if a.Zone == nil || *a.Zone != "zone-1" || b.Zone != nil {
		t.Errorf("got zones %v %v, want zone-1 and none", a.Zone, b.Zone)
	}
	if *a.NodeName != "node-a" || *b.NodeName != "node-b" {
		t.Errorf("got nodes %s %s, want node-a node-b", *a.NodeName, *b.NodeName)
	}
	if a.TargetRef.Kind != "Pod" || a.TargetRef.UID != "uid-a" || a.Addresses[0] != "10.0.0.1" {
		t.Errorf("got targetRef %+v addresses %v, want pod a uid-a 10.0.0.1", a.TargetRef, a.Addresses)
	}
}

func TestPackingAndChurn(t *testing.T) {
	svc := service("web")
	r := reconciler{maxPerSlice: 100}
	next := 0

	// 250 pods: 100 + 100 + 50.
	pods := manyPods(250)
	var state []*discoveryv1.EndpointSlice
	p := r.reconcile(svc, pods, state, noZone)
	if len(p.create) != 3 || len(p.update) != 0 || len(p.delete) != 0 {
		t.Fatalf("got %d/%d/%d create/update/delete, want 3/0/0", len(p.create), len(p.update), len(p.delete))
	}
	state = applyPlan(state, p, &next)
	var sizes []int
	for _, s := range state {
		sizes = append(sizes, len(s.Endpoints))
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[50 100 100]" {
		t.Fatalf("got slice sizes %v, want [50 100 100]", sizes)
	}

	extra := func(prefix string, n int) []*corev1.Pod {
		ps := make([]*corev1.Pod, n)
		for i := range n {
			ps[i] = pod(fmt.Sprintf("%s%03d", prefix, i), fmt.Sprintf("10.%d.%d.%d", 200+len(prefix), i/200, i%200+1))
		}
		return ps
	}
	withNew := append(slices.Clone(pods), pod("new", "10.250.0.1"))
	notReadyOne := slices.Clone(withNew)
	notReadyOne[3] = pod(pods[3].Name, pods[3].Status.PodIP, notReady)
	// p0000 and p0003 share the first slice.
	removedOne := slices.Clone(withNew[1:])
	// The first slice loses p0001 (98 left) and is topped up to 100; the
	// other 39 fit into the 51-endpoint slice.
	removedAndAdded := append(slices.Clone(removedOne[1:]), extra("q", 41)...)
	// 150 more: one full new slice, and 50 that fit nowhere: another.
	added150 := append(slices.Clone(removedAndAdded), extra("rr", 150)...)

	steps := []struct {
		name                  string
		pods                  []*corev1.Pod
		create, update, delet int
	}{
		{"no change", pods, 0, 0, 0},
		{"one pod added goes into the slice with room", withNew, 0, 1, 0},
		{"one pod becomes not ready", notReadyOne, 0, 1, 0},
		{"one pod removed (and one ready again in the same slice)", removedOne, 0, 1, 0},
		{"a pod removed and 41 added fill the changing slice and the one with room", removedAndAdded, 0, 2, 0},
		{"150 added need two new slices", added150, 2, 0, 0},
	}
	for _, st := range steps {
		p := r.reconcile(svc, st.pods, state, noZone)
		if len(p.create) != st.create || len(p.update) != st.update || len(p.delete) != st.delet {
			t.Errorf("%s: got %d/%d/%d create/update/delete, want %d/%d/%d", st.name,
				len(p.create), len(p.update), len(p.delete), st.create, st.update, st.delet)
		}
		state = applyPlan(state, p, &next)
		if got := endpointCount(state); got != len(st.pods) {
			t.Errorf("%s: got %d endpoints in slices, want %d", st.name, got, len(st.pods))
		}
		for _, s := range state {
			if len(s.Endpoints) > 100 {
				t.Errorf("%s: got a slice with %d endpoints, want at most 100", st.name, len(s.Endpoints))
			}
		}
		// A second pass on the result is always a no-op.
		if again := r.reconcile(svc, st.pods, state, noZone); !again.empty() {
			t.Errorf("%s: got a non-empty plan on the second pass: %d/%d/%d", st.name, len(again.create), len(again.update), len(again.delete))
		}
	}
}

func TestPlaceholderAndReuse(t *testing.T) {
	svc := service("web")
	r := reconciler{maxPerSlice: 100}
	next := 0

	p := r.reconcile(svc, nil, nil, noZone)
	if len(p.create) != 1 || len(p.create[0].Endpoints) != 0 || len(p.create[0].Ports) != 0 {
		t.Fatalf("got %d creates, want one empty placeholder", len(p.create))
	}
	state := applyPlan(nil, p, &next)
	if p := r.reconcile(svc, nil, state, noZone); !p.empty() {
		t.Errorf("got a plan for an unchanged placeholder, want none")
	}
	placeholder := state[0].Name

	// The first pod reuses the placeholder instead of create + delete.
	p = r.reconcile(svc, []*corev1.Pod{pod("a", "10.0.0.1")}, state, noZone)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || p.update[0].Name != placeholder {
		t.Fatalf("got %d/%d/%d create/update/delete, want the placeholder %s updated", len(p.create), len(p.update), len(p.delete), placeholder)
	}
	state = applyPlan(state, p, &next)

	// Changing the target port rewrites the slice in place.
	svc2 := service("web", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(9000) })
	p = r.reconcile(svc2, []*corev1.Pod{pod("a", "10.0.0.1")}, state, noZone)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || *p.update[0].Ports[0].Port != 9000 {
		t.Fatalf("got %d/%d/%d create/update/delete, want one update to port 9000", len(p.create), len(p.update), len(p.delete))
	}
	state = applyPlan(state, p, &next)

	// All pods gone: back to one placeholder, still the same object.
	p = r.reconcile(svc2, nil, state, noZone)
	state = applyPlan(state, p, &next)
	if len(state) != 1 || state[0].Name != placeholder || len(state[0].Endpoints) != 0 {
		t.Errorf("got %d slices (first %s), want the placeholder %s only", len(state), state[0].Name, placeholder)
	}
}

func TestForeignAndWrongTypeSlicesDeleted(t *testing.T) {
	svc := service("web")
	r := reconciler{maxPerSlice: 100}
	old := newSlice(service("web", func(s *corev1.Service) { s.UID = "old-uid" }), discoveryv1.AddressTypeIPv4, nil)
	old.Name = "web-old"
	v6 := newSlice(svc, discoveryv1.AddressTypeIPv6, nil)
	v6.Name = "web-v6"
	p := r.reconcile(svc, []*corev1.Pod{pod("a", "10.0.0.1")}, []*discoveryv1.EndpointSlice{old, v6}, noZone)
	var deleted []string
	for _, s := range p.delete {
		deleted = append(deleted, s.Name)
	}
	slices.Sort(deleted)
	// addressType is immutable: the IPv6 slice cannot become the IPv4 one.
	if fmt.Sprint(deleted) != "[web-old web-v6]" || len(p.create) != 1 || len(p.update) != 0 {
		t.Errorf("got deletes %v, %d creates, %d updates, want web-old and web-v6 deleted and one create", deleted, len(p.create), len(p.update))
	}
}

func TestFindPort(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := pod("a", "10.0.0.1", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP})
		p.Spec.InitContainers = []corev1.Container{
			{Name: "sidecar", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
			{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 7000}}},
		}
	})
	tests := []struct {
		name    string
		port    corev1.ServicePort
		want    int32
		wantErr bool
	}{
		{"named", corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")}, 8080, false},
		{"named protocol mismatch", corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns")}, 0, true},
		{"named udp", corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}, 53, false},
		{"sidecar port", corev1.ServicePort{Port: 9100, TargetPort: intstr.FromString("metrics")}, 9100, false},
		{"plain init container port", corev1.ServicePort{Port: 7000, TargetPort: intstr.FromString("setup")}, 0, true},
		{"number", corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9999)}, 9999, false},
		{"unset", corev1.ServicePort{Port: 81}, 81, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindPort(p, &tt.port)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v, want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestAddressTypes(t *testing.T) {
	tests := []struct {
		name string
		svc  *corev1.Service
		want []discoveryv1.AddressType
	}{
		{"ipFamilies", &corev1.Service{Spec: corev1.ServiceSpec{IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}}}, []discoveryv1.AddressType{"IPv6", "IPv4"}},
		{"clusterIP v6", &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "fd00::10"}}, []discoveryv1.AddressType{"IPv6"}},
		{"headless without families", &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None"}}, []discoveryv1.AddressType{"IPv4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddressTypes(tt.svc); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
