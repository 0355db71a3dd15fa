package dataplane

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Update is the state after ChangeTracker.Apply.
//
// Services and Endpoints are the tracker's own maps: read them, never write
// them, and do not use them after the next Apply, which changes them in
// place. Their values are never modified once stored, though: Apply
// replaces a changed *ServicePort or []Endpoint with a new one, so a
// provider may keep the values of one Update as its record of what it
// programmed and compare them with the next.
type Update struct {
	// Services is every ServicePort of every proxied Service.
	Services map[ServicePortName]*ServicePort
	// Endpoints is every ServicePort's endpoints, target ports resolved
	// from the EndpointSlice ports of the same name and protocol,
	// de-duplicated across slices (ip:port; a non-terminating copy wins)
	// and sorted by CompareEndpoints; every address is IPv4. Providers may
	// rely on this (no need to check or de-duplicate again). It may hold
	// names without a Service (slices that arrive before their Service)
	// and lacks names without endpoints.
	Endpoints map[ServicePortName][]Endpoint
	// EndpointCount is the total length of the lists in Endpoints.
	EndpointCount int
	// Changed holds every name whose ServicePort or endpoints changed since
	// the previous Apply, deleted ones included (those are absent from
	// Services or Endpoints).
	Changed map[ServicePortName]struct{}
}

// ChangeTracker records Service and EndpointSlice events and folds them
// into the current state on Apply, as kube-proxy's ServiceChangeTracker and
// EndpointsChangeTracker do. The On* methods only convert the object and
// record it; they are safe for concurrent use with each other and with
// Apply. An event that leaves a Service's ports or a slice's content as
// they were applied records nothing.
type ChangeTracker struct {
	node NodeConfig
	log  *slog.Logger

	mu sync.Mutex

	// Applied state: the Update's maps, and per Service what they were
	// built from (one record per Service keeps the tracker small: a full
	// sync of tens of thousands of Services spends much of its time
	// allocating and first touching memory).
	services  map[ServicePortName]*ServicePort
	endpoints map[ServicePortName][]Endpoint
	perSvc    map[types.NamespacedName]*serviceState
	// epCount is the total length of the lists in endpoints.
	epCount int

	// Pending changes: the latest recorded state per Service (nil map:
	// deleted or not proxied) and per slice (nil info: deleted).
	pendingSvc    map[types.NamespacedName]map[ServicePortName]*ServicePort
	pendingSlices map[types.NamespacedName][]namedSlice

	// scratch is buildEndpoints' result buffer, reused.
	scratch []portEndpoints

	// warned remembers what was already logged as ignored, per Service.
	warned map[types.NamespacedName]map[string]struct{}

	notify func()
}

// TrackerOption configures a ChangeTracker.
type TrackerOption func(*ChangeTracker)

// WithTrackerLogger sets the logger for ignored input (unsupported
// protocols, address families, malformed slices). Default: discard.
func WithTrackerLogger(l *slog.Logger) TrackerOption {
	return func(t *ChangeTracker) { t.log = l.With("component", "changetracker") }
}

// WithNotify sets a function called (outside the tracker's lock) after an
// event recorded a change, typically Runner.Loop. A provider that embeds
// *ChangeTracker gets the six Provider handlers this way.
func WithNotify(fn func()) TrackerOption {
	return func(t *ChangeTracker) { t.notify = fn }
}

// NewChangeTracker returns an empty tracker for the given node.
func NewChangeTracker(node NodeConfig, opts ...TrackerOption) *ChangeTracker {
	t := &ChangeTracker{
		node:          node,
		log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		services:      make(map[ServicePortName]*ServicePort),
		endpoints:     make(map[ServicePortName][]Endpoint),
		perSvc:        make(map[types.NamespacedName]*serviceState),
		pendingSvc:    make(map[types.NamespacedName]map[ServicePortName]*ServicePort),
		pendingSlices: make(map[types.NamespacedName][]namedSlice),
		warned:        make(map[types.NamespacedName]map[string]struct{}),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Node returns the node the tracker was made for.
func (t *ChangeTracker) Node() NodeConfig { return t.node }

// OnServiceAdd records a new Service.
func (t *ChangeTracker) OnServiceAdd(svc *v1.Service) { t.recordService(svc, svc) }

// OnServiceUpdate records a changed Service.
func (t *ChangeTracker) OnServiceUpdate(old, svc *v1.Service) { t.recordService(svc, svc) }

// OnServiceDelete records a deleted Service.
func (t *ChangeTracker) OnServiceDelete(svc *v1.Service) { t.recordService(svc, nil) }

func (t *ChangeTracker) recordService(key, svc *v1.Service) {
	if key == nil {
		return
	}
	nn := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	ports, ignored := ServicePorts(svc)
	if len(ports) == 0 {
		ports = nil
	}
	t.mu.Lock()
	if svc == nil {
		delete(t.warned, nn)
	} else {
		t.warnOnce(nn, ignored)
	}
	changed := !servicePortsEqual(t.perSvc[nn].servicePorts(), ports)
	if changed {
		t.pendingSvc[nn] = ports
	} else {
		delete(t.pendingSvc, nn)
	}
	t.mu.Unlock()
	if changed && t.notify != nil {
		t.notify()
	}
}

// OnEndpointSliceAdd records a new EndpointSlice.
func (t *ChangeTracker) OnEndpointSliceAdd(slice *discoveryv1.EndpointSlice) {
	t.recordSlice(slice, false)
}

// OnEndpointSliceUpdate records a changed EndpointSlice.
func (t *ChangeTracker) OnEndpointSliceUpdate(old, slice *discoveryv1.EndpointSlice) {
	t.recordSlice(slice, false)
}

// OnEndpointSliceDelete records a deleted EndpointSlice.
func (t *ChangeTracker) OnEndpointSliceDelete(slice *discoveryv1.EndpointSlice) {
	t.recordSlice(slice, true)
}

func (t *ChangeTracker) recordSlice(slice *discoveryv1.EndpointSlice, remove bool) {
	if slice == nil {
		return
	}
	if slice.AddressType != discoveryv1.AddressTypeIPv4 {
		return // IPv6 and FQDN slices are not proxied; one per Service is normal.
	}
	svcName := slice.Labels[discoveryv1.LabelServiceName]
	if svcName == "" || slice.Namespace == "" || slice.Name == "" {
		t.log.Warn("ignoring EndpointSlice without namespace, name or service label",
			"slice", slice.Namespace+"/"+slice.Name, "label", discoveryv1.LabelServiceName)
		return
	}
	nn := types.NamespacedName{Namespace: slice.Namespace, Name: svcName}
	var info *sliceInfo
	if !remove {
		info = newSliceInfo(slice)
	}
	t.mu.Lock()
	applied := findSlice(t.perSvc[nn].sliceList(), slice.Name)
	changed := !applied.equal(info)
	pending := t.pendingSlices[nn]
	if changed {
		t.pendingSlices[nn] = putSlice(pending, slice.Name, info)
	} else if i := indexSlice(pending, slice.Name); i >= 0 {
		// Back to what is applied: nothing pending for this slice.
		if pending = slices.Delete(pending, i, i+1); len(pending) == 0 {
			delete(t.pendingSlices, nn)
		} else {
			t.pendingSlices[nn] = pending
		}
	}
	t.mu.Unlock()
	if changed && t.notify != nil {
		t.notify()
	}
}

func (t *ChangeTracker) warnOnce(nn types.NamespacedName, msgs []string) {
	for _, m := range msgs {
		w := t.warned[nn]
		if _, ok := w[m]; ok {
			continue
		}
		if w == nil {
			w = make(map[string]struct{})
			t.warned[nn] = w
		}
		w[m] = struct{}{}
		t.log.Warn("ignoring part of Service", "service", nn.String(), "reason", m)
	}
}

// Pending reports whether changes were recorded since the last Apply.
func (t *ChangeTracker) Pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pendingSvc) > 0 || len(t.pendingSlices) > 0
}

// Apply folds every recorded change into the current state and returns
// it. Its cost is proportional to the number of changed Services (and
// their slices), not to the total.
func (t *ChangeTracker) Apply() Update {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := make(map[ServicePortName]struct{}, len(t.pendingSvc)+len(t.pendingSlices))
	t.reserve()

	for nn, ports := range t.pendingSvc {
		st := t.perSvc[nn]
		old := st.servicePorts()
		for name := range old {
			if _, ok := ports[name]; !ok {
				delete(t.services, name)
				changed[name] = struct{}{}
			}
		}
		for name, sp := range ports {
			if o, ok := old[name]; !ok || !o.Equal(sp) {
				t.services[name] = sp
				changed[name] = struct{}{}
			}
		}
		if st == nil && ports != nil {
			st = &serviceState{}
			t.perSvc[nn] = st
		}
		if st != nil {
			st.ports = ports
			t.dropIfEmpty(nn, st)
		}
	}
	clear(t.pendingSvc)

	for nn, pending := range t.pendingSlices {
		st := t.perSvc[nn]
		if st == nil {
			st = &serviceState{}
			t.perSvc[nn] = st
		}
		for _, ps := range pending {
			st.slices = applySlice(st.slices, ps)
		}
		eps := t.buildEndpoints(nn, st.slices)
		oldNames := st.epNames
		for _, name := range oldNames {
			if !slices.ContainsFunc(eps, func(pe portEndpoints) bool { return pe.name == name }) {
				t.epCount -= len(t.endpoints[name])
				delete(t.endpoints, name)
				changed[name] = struct{}{}
			}
		}
		sameNames := len(oldNames) == len(eps)
		for i, pe := range eps {
			sameNames = sameNames && oldNames[i] == pe.name
			if old, ok := t.endpoints[pe.name]; !ok || !slices.Equal(old, pe.eps) {
				t.epCount += len(pe.eps) - len(old)
				t.endpoints[pe.name] = pe.eps
				changed[pe.name] = struct{}{}
			}
		}
		switch {
		case len(eps) == 0:
			st.epNames = nil
		case !sameNames:
			names := make([]ServicePortName, len(eps))
			for i, pe := range eps {
				names[i] = pe.name
			}
			st.epNames = names
		}
		clear(eps) // the scratch buffer must not keep the lists alive
		t.dropIfEmpty(nn, st)
	}
	clear(t.pendingSlices)

	return Update{Services: t.services, Endpoints: t.endpoints, Changed: changed, EndpointCount: t.epCount}
}

// reserve grows the applied maps ahead of a batch of pending changes that
// is large next to them (the first sync, or many Services created at
// once), so they are allocated once rather than doubled step by step.
// The copy costs as much as the batch, at most.
func (t *ChangeTracker) reserve() {
	if n := len(t.pendingSvc) + len(t.pendingSlices); n > len(t.perSvc) {
		t.perSvc = withRoom(t.perSvc, n)
	}
	if n := len(t.pendingSvc); n > len(t.services) {
		t.services = withRoom(t.services, n)
	}
	if n := len(t.pendingSlices); n > len(t.endpoints) {
		t.endpoints = withRoom(t.endpoints, n)
	}
}

// serviceState is what the tracker applied for one Service.
type serviceState struct {
	ports   map[ServicePortName]*ServicePort // nil: no Service, or not proxied
	slices  []namedSlice                     // by name
	epNames []ServicePortName                // names with endpoints, as built
}

func (st *serviceState) servicePorts() map[ServicePortName]*ServicePort {
	if st == nil {
		return nil
	}
	return st.ports
}

func (st *serviceState) sliceList() []namedSlice {
	if st == nil {
		return nil
	}
	return st.slices
}

// dropIfEmpty forgets a Service with neither ports nor slices.
func (t *ChangeTracker) dropIfEmpty(nn types.NamespacedName, st *serviceState) {
	if st.ports == nil && len(st.slices) == 0 && len(st.epNames) == 0 {
		delete(t.perSvc, nn)
	}
}

// namedSlice is one EndpointSlice of a Service; lists of them are kept in
// name order (a Service has one slice per 100 endpoints by default, so a
// sorted list beats a map).
type namedSlice struct {
	name string
	info *sliceInfo // nil in a pending list: deleted
}

func indexSlice(list []namedSlice, name string) int {
	i, ok := slices.BinarySearchFunc(list, name, func(s namedSlice, n string) int { return strings.Compare(s.name, n) })
	if !ok {
		return -1
	}
	return i
}

func findSlice(list []namedSlice, name string) *sliceInfo {
	if i := indexSlice(list, name); i >= 0 {
		return list[i].info
	}
	return nil
}

// putSlice sets name's info in a sorted list, replacing or inserting (a
// pending list records deletions as nil infos).
func putSlice(list []namedSlice, name string, info *sliceInfo) []namedSlice {
	i, ok := slices.BinarySearchFunc(list, name, func(s namedSlice, n string) int { return strings.Compare(s.name, n) })
	if ok {
		list[i].info = info
		return list
	}
	return slices.Insert(list, i, namedSlice{name: name, info: info})
}

// applySlice folds one pending entry into an applied list: a nil info
// removes the slice.
func applySlice(list []namedSlice, ps namedSlice) []namedSlice {
	if ps.info != nil {
		return putSlice(list, ps.name, ps.info)
	}
	if i := indexSlice(list, ps.name); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		return nil
	}
	return list
}

// withRoom returns m, or a copy of it with room for extra more entries.
func withRoom[K comparable, V any](m map[K]V, extra int) map[K]V {
	if len(m) >= extra {
		return m
	}
	out := make(map[K]V, len(m)+extra)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// portEndpoints is one ServicePort's endpoint list.
type portEndpoints struct {
	name ServicePortName
	eps  []Endpoint
}

// buildEndpoints computes one Service's endpoints from all its slices, as
// kube-proxy's EndpointSliceCache does: per slice port (name, protocol,
// number), one Endpoint per distinct ip:port; when an address appears in
// several slices a non-terminating copy wins. Slices are visited in name
// order so the result does not depend on map order; ports come out in the
// order they are first seen.
//
// Each slice's endpoints are sorted by address when recorded, so the
// common case (one slice) needs neither sorting nor a lookup table: the
// list is built in order and adjacent duplicates are merged.
func (t *ChangeTracker) buildEndpoints(nn types.NamespacedName, list []namedSlice) []portEndpoints {
	out := t.scratch[:0]
	for si, ns := range list {
		info := ns.info
		for _, p := range info.ports {
			spn := ServicePortName{NamespacedName: nn, Port: p.name, Protocol: p.protocol}
			j := slices.IndexFunc(out, func(pe portEndpoints) bool { return pe.name == spn })
			if j < 0 {
				n := 0
				for _, o := range list[si:] {
					n += len(o.info.endpoints)
				}
				out = append(out, portEndpoints{name: spn, eps: make([]Endpoint, 0, n)})
				j = len(out) - 1
			}
			for _, e := range info.endpoints {
				out[j].eps = append(out[j].eps, Endpoint{
					IP:          e.ip,
					Port:        p.port,
					Ready:       e.ready,
					Serving:     e.serving,
					Terminating: e.terminating,
					NodeName:    e.nodeName,
					Local:       t.node.Name != "" && e.nodeName == t.node.Name,
				})
			}
		}
	}
	kept := out[:0]
	for _, pe := range out {
		if len(pe.eps) > 0 { // a port without endpoints has no list
			pe.eps = mergeDuplicates(pe.eps)
			kept = append(kept, pe)
		}
	}
	clear(out[len(kept):])
	t.scratch = kept[:0]
	return kept
}

// mergeDuplicates sorts eps by CompareEndpoints and keeps one endpoint
// per ip:port: of several copies (in their order in eps), the first,
// replaced by any later copy that is not terminating. A list that is
// already strictly sorted (one slice without duplicates) is returned as
// it is.
func mergeDuplicates(eps []Endpoint) []Endpoint {
	sorted := true
	for i := 1; i < len(eps); i++ {
		if CompareEndpoints(eps[i-1], eps[i]) >= 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return eps
	}
	slices.SortStableFunc(eps, CompareEndpoints)
	out := eps[:0]
	for i, ep := range eps {
		if i > 0 && CompareEndpoints(out[len(out)-1], ep) == 0 {
			if !ep.Terminating {
				out[len(out)-1] = ep
			}
			continue
		}
		out = append(out, ep)
	}
	clear(eps[len(out):]) // drop references held past the end
	return out
}

func servicePortsEqual(a, b map[ServicePortName]*ServicePort) bool {
	if len(a) != len(b) {
		return false
	}
	for name, sp := range a {
		if !sp.Equal(b[name]) {
			return false
		}
	}
	return true
}

// sliceInfo is the part of an EndpointSlice the dataplane uses, copied so
// the tracker keeps no reference to informer objects.
type sliceInfo struct {
	ports     []slicePort
	endpoints []sliceEndpoint
}

type slicePort struct {
	name     string
	protocol v1.Protocol
	port     uint16
}

type sliceEndpoint struct {
	ip          netip.Addr
	nodeName    string
	ready       bool
	serving     bool
	terminating bool
}

// newSliceInfo converts an IPv4 EndpointSlice. Ports without a number (or
// out of range) and endpoints without a valid IPv4 first address are
// dropped, as kube-proxy drops them. A nil port name means "" and a nil
// protocol TCP (the API defaults). Conditions follow the EndpointSlice
// API: ready and serving default to true, terminating to false.
func newSliceInfo(s *discoveryv1.EndpointSlice) *sliceInfo {
	info := &sliceInfo{}
	for _, p := range s.Ports {
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		sp := slicePort{protocol: v1.ProtocolTCP, port: uint16(*p.Port)}
		if p.Name != nil {
			sp.name = *p.Name
		}
		if p.Protocol != nil {
			sp.protocol = *p.Protocol
		}
		if sp.protocol != v1.ProtocolTCP && sp.protocol != v1.ProtocolUDP {
			continue
		}
		info.ports = append(info.ports, sp)
	}
	for _, e := range s.Endpoints {
		if len(e.Addresses) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(e.Addresses[0]))
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			continue
		}
		se := sliceEndpoint{
			ip:          ip,
			ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
			serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
			terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
		}
		if e.NodeName != nil {
			se.nodeName = *e.NodeName
		}
		info.endpoints = append(info.endpoints, se)
	}
	// Address order (stable: copies of one address keep their order,
	// which decides which copy wins), so that Apply can build a Service's
	// lists without sorting them. Endpoint order within a slice carries
	// no meaning, so this loses nothing.
	slices.SortStableFunc(info.endpoints, func(a, b sliceEndpoint) int { return a.ip.Compare(b.ip) })
	return info
}

func (s *sliceInfo) equal(o *sliceInfo) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.Equal(s.ports, o.ports) && slices.Equal(s.endpoints, o.endpoints)
}

// String is for debugging.
func (s *sliceInfo) String() string {
	return fmt.Sprintf("ports=%v endpoints=%v", s.ports, s.endpoints)
}
