package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// The allocation repair, after kube-apiserver's ClusterIP and NodePort
// repair controllers (pkg/registry/core/service/ipallocator/controller and
// portallocator/controller, repair.go). Allocation keys are written in the
// same transaction as the Service that holds them, so in normal operation
// keys and Services agree. They can disagree after an etcd restore, a
// direct write to etcd or a change of the configured ranges; the repair
// finds that, from one consistent snapshot (Services and allocation keys
// listed at the same etcd revision), and fixes what it safely can:
//
//   - a key no Service holds is a leak; it is released when the next pass
//     finds it still leaked at the same revision (kube-apiserver waits for
//     three passes; here a Service and its keys are one transaction, so an
//     in-flight create cannot look like a leak and one confirmation
//     suffices), with a delete conditioned on that revision, so a key
//     someone rewrote in between is never removed;
//   - a value a Service holds without a key gets its key back, with a
//     transaction conditioned on the key being absent and the Service
//     unchanged since the snapshot (event ClusterIPNotAllocated or
//     PortNotAllocated);
//   - a value held by two Services: a Warning event ClusterIPAlreadyAllocated
//     or PortAlreadyAllocated on each Service but the key's owner (or, when
//     the key names neither, the oldest);
//   - a value outside the configured range (or not an IP): a Warning event
//     ClusterIPOutOfRange, PortOutOfRange or ClusterIPNotValid.
//
// Every API server replica runs it (as kube-apiserver does); the
// conditions make concurrent passes safe. Events are core/v1 Events named
// after the Service and the problem, so the same problem found again (by
// this pass or another replica's) counts up the event's series instead of
// adding events.

// DefaultRepairInterval is how often the allocation repair runs, as
// kube-apiserver's repair controllers.
const DefaultRepairInterval = 3 * time.Minute

// Reporting controllers of the repair's events, as kube-apiserver's.
const (
	ipRepairController   = "ipallocator-repair-controller"
	portRepairController = "portallocator-repair-controller"
)

// repairState is the repair loop's: the leaks seen by the last pass, and
// the loop's lifecycle.
type repairState struct {
	// pass serializes passes and guards leaks.
	pass sync.Mutex
	// leaks maps a leaked allocation key to the ModRevision it had when
	// the last pass found it leaked.
	leaks map[string]int64

	// mu guards done and closed.
	mu sync.Mutex
	// done is closed when the loop has ended (nil until it starts).
	done   chan struct{}
	closed bool
}

// startRepair starts the repair loop once: a pass now, then one every
// RepairInterval until Close. A negative interval disables the loop.
func (s *Server) startRepair() {
	if s.cfg.RepairInterval < 0 {
		return
	}
	s.repair.mu.Lock()
	defer s.repair.mu.Unlock()
	if s.repair.done != nil || s.repair.closed {
		return
	}
	done := make(chan struct{})
	s.repair.done = done
	go func() {
		defer close(done)
		s.repairLoop()
	}()
}

// stopRepair waits for the repair loop to end; s.stop is closed already.
func (s *Server) stopRepair() {
	s.repair.mu.Lock()
	s.repair.closed = true
	done := s.repair.done
	s.repair.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (s *Server) repairLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancelOnStop(ctx, cancel)
	t := time.NewTicker(s.cfg.RepairInterval)
	defer t.Stop()
	for {
		if err := s.repairAllocations(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("service allocation repair failed; retrying at the next interval", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// repairService is a Service of the snapshot.
type repairService struct {
	svc    *corev1.Service
	key    string
	modRev int64
}

func (rs *repairService) owner() string { return rs.svc.Namespace + "/" + rs.svc.Name }

// allocationSnapshot is the Services and allocation keys at one revision.
type allocationSnapshot struct {
	services []*repairService
	keys     map[string]storage.KeyValue
}

// repairAllocations runs one repair pass.
func (s *Server) repairAllocations(ctx context.Context) error {
	s.repair.pass.Lock()
	defer s.repair.pass.Unlock()
	snap, err := s.allocationSnapshot(ctx)
	if err != nil {
		s.metrics.ipRepairFailures.Inc()
		s.metrics.portRepairFailures.Inc()
		return fmt.Errorf("read services and allocations: %w", err)
	}
	holders := map[string][]*repairService{}
	for _, rs := range snap.services {
		s.collectIPs(ctx, rs, holders)
		s.collectPorts(ctx, rs, holders)
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(holders)) {
		if err := s.repairHeld(ctx, key, holders[key], snap.keys); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.releaseLeaks(ctx, snap.keys, holders); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// allocationSnapshot lists the Services and the allocation keys at one
// revision.
func (s *Server) allocationSnapshot(ctx context.Context) (*allocationSnapshot, error) {
	r := s.resources.byStorage("services")
	if r == nil {
		return &allocationSnapshot{keys: map[string]storage.KeyValue{}}, nil
	}
	snap := &allocationSnapshot{keys: map[string]storage.KeyValue{}}
	var rev int64
	err := s.listAll(ctx, r.prefix(), &rev, func(kv storage.KeyValue) error {
		obj, err := decodeKV(r, kv)
		if err != nil {
			return err
		}
		svc, ok := obj.(*corev1.Service)
		if !ok {
			return fmt.Errorf("%s holds %T, not a Service", kv.Key, obj)
		}
		snap.services = append(snap.services, &repairService{svc: svc, key: kv.Key, modRev: kv.ModRevision})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, prefix := range []string{ipKeyPrefix, portKeyPrefix} {
		if err := s.listAll(ctx, prefix, &rev, func(kv storage.KeyValue) error {
			snap.keys[kv.Key] = kv
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// listAll visits every key under prefix at *rev (0: the latest, which it
// then sets), a page at a time.
func (s *Server) listAll(ctx context.Context, prefix string, rev *int64, visit func(storage.KeyValue) error) error {
	start := ""
	for {
		page, err := s.store.List(ctx, prefix, storage.ListOptions{Revision: *rev, StartKey: start, Limit: listBatch})
		if err != nil {
			return err
		}
		*rev = page.Revision
		for _, kv := range page.Items {
			if err := visit(kv); err != nil {
				return err
			}
		}
		if !page.More || len(page.Items) == 0 {
			return nil
		}
		start = page.Items[len(page.Items)-1].Key + "\x00"
	}
}

func ipFamily(ip net.IP) corev1.IPFamily {
	if ip.To4() != nil {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// collectIPs adds the allocation keys of rs's ClusterIPs to holders, and
// reports the ones that cannot have a key.
func (s *Server) collectIPs(ctx context.Context, rs *repairService, holders map[string][]*repairService) {
	svc := rs.svc
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, v := range ips {
		if v == corev1.ClusterIPNone || v == "" {
			continue
		}
		ip := net.ParseIP(v)
		switch {
		case ip == nil:
			s.metrics.ipRepairErrors.WithLabelValues("invalid").Inc()
			s.log.Warn("service allocation repair: cluster IP is not a valid IP", "value", v, "service", rs.owner())
			s.repairEvent(ctx, rs, ipRepairController, "ClusterIPNotValid", "ClusterIPValidation",
				fmt.Sprintf("Cluster IP %s is not a valid IP; please recreate service", v))
		case !s.alloc.cidr.Contains(ip):
			s.metrics.ipRepairErrors.WithLabelValues("outOfRange").Inc()
			s.log.Warn("service allocation repair: cluster IP outside the service CIDR", "value", ip, "cidr", s.alloc.cidr, "service", rs.owner())
			s.repairEvent(ctx, rs, ipRepairController, "ClusterIPOutOfRange", "ClusterIPAllocation",
				fmt.Sprintf("Cluster IP [%v]:%s is not within the service CIDR %s; please recreate service", ipFamily(ip), ip, s.alloc.cidr))
		default:
			k := ipKey(ip)
			if !slices.Contains(holders[k], rs) {
				holders[k] = append(holders[k], rs)
			}
		}
	}
}

// collectPorts adds the allocation keys of rs's NodePorts and health check
// port to holders, and reports the ones outside the range.
func (s *Server) collectPorts(ctx context.Context, rs *repairService, holders map[string][]*repairService) {
	svc := rs.svc
	type nodePort struct {
		proto corev1.Protocol
		port  int32
	}
	var ports []nodePort
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			ports = append(ports, nodePort{p.Protocol, p.NodePort})
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		ports = append(ports, nodePort{corev1.ProtocolTCP, svc.Spec.HealthCheckNodePort})
	}
	for _, p := range ports {
		if int(p.port) < s.alloc.portBase || int(p.port) >= s.alloc.portBase+s.alloc.portSize {
			s.metrics.portRepairErrors.WithLabelValues("outOfRange").Inc()
			s.log.Warn("service allocation repair: node port outside the range", "value", p.port, "service", rs.owner())
			s.repairEvent(ctx, rs, portRepairController, "PortOutOfRange", "PortAllocation",
				fmt.Sprintf("Port %d is not within the port range %d-%d; please recreate service", p.port, s.alloc.portBase, s.alloc.portBase+s.alloc.portSize-1))
			continue
		}
		k := portKey(p.proto, p.port)
		if !slices.Contains(holders[k], rs) {
			holders[k] = append(holders[k], rs)
		}
	}
}

// keyKind is what the repair reports about the values of one kind of
// allocation key.
type keyKind struct {
	controller string // the events' reporting controller
	noun       string // "Cluster IP" or "Port", as upstream's messages
	action     string // the events' action
	errs       *prometheus.CounterVec
	failures   prometheus.Counter
}

// describeKey returns the kind of an allocation key and its value as
// upstream's messages print it ("[IPv4]:10.96.0.10", "30080").
func (s *Server) describeKey(key string) (keyKind, string) {
	if v, ok := strings.CutPrefix(key, ipKeyPrefix); ok {
		if ip := net.ParseIP(v); ip != nil {
			v = fmt.Sprintf("[%v]:%s", ipFamily(ip), ip)
		}
		return keyKind{ipRepairController, "Cluster IP", "ClusterIPAllocation", s.metrics.ipRepairErrors, s.metrics.ipRepairFailures}, v
	}
	v := strings.TrimPrefix(key, portKeyPrefix)
	if _, port, ok := strings.Cut(v, "-"); ok {
		v = port
	}
	return keyKind{portRepairController, "Port", "PortAllocation", s.metrics.portRepairErrors, s.metrics.portRepairFailures}, v
}

// repairHeld handles one value that Services hold: duplicates are
// reported, and a missing key is claimed for the holder.
func (s *Server) repairHeld(ctx context.Context, key string, hs []*repairService, keys map[string]storage.KeyValue) error {
	kind, value := s.describeKey(key)
	kv, allocated := keys[key]
	// The key's owner keeps the value; when the key names none of them,
	// the oldest Service does.
	holder := hs[0]
	for _, rs := range hs[1:] {
		if rs.svc.CreationTimestamp.Before(&holder.svc.CreationTimestamp) {
			holder = rs
		}
	}
	for _, rs := range hs {
		if allocated && rs.owner() == string(kv.Value) {
			holder = rs
		}
	}
	reason := "PortAlreadyAllocated"
	if kind.controller == ipRepairController {
		reason = "ClusterIPAlreadyAllocated"
	}
	for _, rs := range hs {
		if rs == holder {
			continue
		}
		kind.errs.WithLabelValues("duplicate").Inc()
		s.log.Warn("service allocation repair: value assigned to multiple services", "value", value, "service", rs.owner(), "holder", holder.owner())
		s.repairEvent(ctx, rs, kind.controller, reason, kind.action,
			fmt.Sprintf("%s %s was assigned to multiple services; please recreate service", kind.noun, value))
	}
	if allocated {
		return nil
	}
	// Claim the key for the holder, unless the key appeared or the
	// Service changed since the snapshot.
	ok, _, err := s.store.Txn(ctx,
		[]storage.Condition{{Key: holder.key, ModRevision: holder.modRev}, {Key: key}},
		storage.Op{Key: key, Value: []byte(holder.owner())})
	if err != nil {
		kind.failures.Inc()
		return fmt.Errorf("claim %s for %s: %w", key, holder.owner(), err)
	}
	if !ok {
		return nil
	}
	kind.errs.WithLabelValues("repair").Inc()
	s.log.Warn("service allocation repair: value was not allocated; repaired", "value", value, "service", holder.owner())
	reason = "PortNotAllocated"
	if kind.controller == ipRepairController {
		reason = "ClusterIPNotAllocated"
	}
	s.repairEvent(ctx, holder, kind.controller, reason, kind.action, fmt.Sprintf("%s %s is not allocated; repairing", kind.noun, value))
	return nil
}

// releaseLeaks releases the allocation keys no Service holds that the
// previous pass found leaked at the same revision, and remembers the new
// ones.
func (s *Server) releaseLeaks(ctx context.Context, keys map[string]storage.KeyValue, holders map[string][]*repairService) error {
	seen := s.repair.leaks
	next := map[string]int64{}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		if _, held := holders[key]; held {
			continue
		}
		kv := keys[key]
		kind, value := s.describeKey(key)
		if rev, ok := seen[key]; !ok || rev != kv.ModRevision {
			s.log.Info("service allocation repair: value may have leaked; flagging for clean-up", "value", value, "owner", string(kv.Value))
			next[key] = kv.ModRevision
			continue
		}
		ok, _, err := s.store.Txn(ctx, []storage.Condition{{Key: key, ModRevision: kv.ModRevision}}, storage.Op{Key: key, Delete: true})
		if err != nil {
			kind.failures.Inc()
			errs = append(errs, fmt.Errorf("release %s: %w", key, err))
			next[key] = kv.ModRevision
			continue
		}
		if ok {
			kind.errs.WithLabelValues("leak").Inc()
			s.log.Warn("service allocation repair: value leaked; released", "value", value, "owner", string(kv.Value))
			s.leakEvent(ctx, kind.controller, kind.action, kind.noun, value, string(kv.Value))
		}
	}
	s.repair.leaks = next
	return errors.Join(errs...)
}

// repairEvent records a Warning event about rs's Service as kube's events
// recorder would (events.k8s.io fields on a core/v1 Event). The event's
// name is derived from the Service and the message, so the same problem
// found again counts up the existing event's series. Failures are logged:
// an event is not worth failing a repair for.
// leakEvent records a released leak against the Service that last held
// the value (owner is "namespace/name"; it is gone, so the event has no
// uid), in its namespace or, when that is gone too, in default: kube-
// apiserver only logs leaks, but they are what an operator looks for
// after a crash.
func (s *Server) leakEvent(ctx context.Context, controller, action, noun, value, owner string) {
	ns, name, ok := strings.Cut(owner, "/")
	if !ok || ns == "" || name == "" {
		ns, name = metav1.NamespaceDefault, "kubernetes"
	}
	reason := "PortLeaked"
	if controller == ipRepairController {
		reason = "ClusterIPLeaked"
	}
	note := fmt.Sprintf("%s %s was allocated to no Service (last held by %s); released", noun, value, owner)
	rs := &repairService{svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
	err := s.writeRepairEvent(ctx, rs, controller, reason, action, note)
	if apierrors.IsNotFound(err) && ns != metav1.NamespaceDefault {
		rs.svc.Namespace = metav1.NamespaceDefault
		err = s.writeRepairEvent(ctx, rs, controller, reason, action, note)
	}
	if err != nil {
		s.log.Warn("service allocation repair: record event", "service", owner, "reason", reason, "err", err)
	}
}

// repairEvent records a Warning event about a Service, logging a failure.
func (s *Server) repairEvent(ctx context.Context, rs *repairService, controller, reason, action, note string) {
	if err := s.writeRepairEvent(ctx, rs, controller, reason, action, note); err != nil {
		s.log.Warn("service allocation repair: record event", "service", rs.owner(), "reason", reason, "err", err)
	}
}

// writeRepairEvent creates the event, or counts a repeat in its series.
func (s *Server) writeRepairEvent(ctx context.Context, rs *repairService, controller, reason, action, note string) error {
	r := s.resources.lookup(schema.GroupVersion{Version: "v1"}, "events")
	if r == nil {
		return nil
	}
	svc := rs.svc
	sum := sha256.Sum256([]byte(string(svc.UID) + "\x00" + reason + "\x00" + note))
	name := svc.Name + "." + hex.EncodeToString(sum[:8])
	now := metav1.NowMicro()
	ev := &corev1.Event{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: svc.Namespace, Name: svc.Name,
			UID: svc.UID, ResourceVersion: svc.ResourceVersion},
		Reason: reason, Message: note, Type: corev1.EventTypeWarning,
		EventTime: now, Action: action, ReportingController: controller,
		ReportingInstance: controller + "-" + s.hostname,
	}
	req := &request{ctx: ctx, r: r, namespace: svc.Namespace, name: name, verb: "create"}
	_, err := s.createObject(req, ev, false, controller, nil)
	if apierrors.IsAlreadyExists(err) {
		req.verb = "update"
		_, _, err = s.updateObject(req, updateSpec{manager: controller, mutate: func(cur runtime.Object) (runtime.Object, error) {
			e, ok := cur.(*corev1.Event)
			if !ok {
				return nil, fmt.Errorf("event %s/%s is a %T", svc.Namespace, name, cur)
			}
			if e.Series == nil {
				e.Series = &corev1.EventSeries{Count: 1}
			}
			e.Series.Count++
			e.Series.LastObservedTime = now
			return e, nil
		}})
	}
	return err
}
