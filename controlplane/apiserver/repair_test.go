package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

type tlog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// hookStore lets a test act between the repair's reads and writes.
type hookStore struct {
	storage.Interface
	mu sync.Mutex
	// beforeList runs (once) before a List of the prefix.
	beforeList map[string]func()
	// beforeTxn runs (once) before a Txn that writes key.
	beforeTxn map[string]func()
}

func (h *hookStore) take(m map[string]func(), key string) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := m[key]
	delete(m, key)
	return f
}

func (h *hookStore) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	if f := h.take(h.beforeList, prefix); f != nil {
		f()
	}
	return h.Interface.List(ctx, prefix, opts)
}

func (h *hookStore) Txn(ctx context.Context, conds []storage.Condition, ops ...storage.Op) (bool, int64, error) {
	for _, op := range ops {
		if f := h.take(h.beforeTxn, op.Key); f != nil {
			f()
		}
	}
	return h.Interface.Txn(ctx, conds, ops...)
}

// repairEnv is a bootstrapped server on a real etcd whose repair loop is
// off, so that a test runs the passes itself.
type repairEnv struct {
	t      *testing.T
	ctx    context.Context
	store  *storage.Store
	hooks  *hookStore
	server *Server
	client kubernetes.Interface
}

func newRepairEnv(t *testing.T) *repairEnv {
	t.Helper()
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: t.TempDir(), ClientURL: "http://127.0.0.1:0",
		PeerURL: "http://127.0.0.1:0", UnsafeNoFsync: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := storage.NewClient(ctx, storage.ClientConfig{Endpoints: []string{e.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := storage.NewStore(cli, log, nil)
	hooks := &hookStore{Interface: st, beforeList: map[string]func(){}, beforeTxn: map[string]func(){}}
	_, cidr, _ := net.ParseCIDR("10.96.0.0/24")
	s, err := New(Config{Store: hooks, Resources: registry.Resources(), Log: log, ServiceCIDR: cidr,
		NodePortBase: 30000, NodePortSize: 100, RepairInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &repairEnv{t: t, ctx: ctx, store: st, hooks: hooks, server: s, client: client}
}

func (e *repairEnv) pass() {
	e.t.Helper()
	if err := e.server.repairAllocations(e.ctx); err != nil {
		e.t.Fatalf("repair pass: %v", err)
	}
}

// key returns the value of an allocation key, or "" when it is absent.
func (e *repairEnv) key(key string) string {
	e.t.Helper()
	kv, err := e.store.Get(e.ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return string(kv.Value)
}

func (e *repairEnv) put(key, value string) {
	e.t.Helper()
	if _, _, err := e.store.Txn(e.ctx, nil, storage.Op{Key: key, Value: []byte(value)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *repairEnv) del(key string) {
	e.t.Helper()
	if _, _, err := e.store.Txn(e.ctx, nil, storage.Op{Key: key, Delete: true}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *repairEnv) nodePortService(name string) *corev1.Service {
	e.t.Helper()
	svc, err := e.client.CoreV1().Services("default").Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// writeService stores svc directly, as an etcd restore or a direct write
// would, bypassing allocation.
func (e *repairEnv) writeService(svc *corev1.Service) {
	e.t.Helper()
	svc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	svc.ResourceVersion = ""
	data, err := json.Marshal(svc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.put("/registry/services/"+svc.Namespace+"/"+svc.Name, string(data))
}

// events returns the reasons of the events about a Service, with their
// series counts (1 without a series).
func (e *repairEnv) events(service string) map[string]int32 {
	e.t.Helper()
	list, err := e.client.CoreV1().Events("default").List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + service})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int32{}
	for _, ev := range list.Items {
		n := int32(1)
		if ev.Series != nil {
			n = ev.Series.Count
		}
		out[ev.Reason] = n
		if ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.Kind != "Service" || ev.ReportingController == "" || ev.Action == "" {
			e.t.Errorf("event %s: got type %s kind %s controller %q action %q, want a Warning about the Service with controller and action",
				ev.Name, ev.Type, ev.InvolvedObject.Kind, ev.ReportingController, ev.Action)
		}
	}
	return out
}

func TestRepairReleasesLeaksOnTheSecondPass(t *testing.T) {
	e := newRepairEnv(t)
	const ipLeak, portLeak = ipKeyPrefix + "10.96.0.77", portKeyPrefix + "tcp-30077"
	e.put(ipLeak, "default/gone")
	e.put(portLeak, "default/gone")
	// A holder whose namespace is gone too: its event goes to default.
	const orphanLeak = ipKeyPrefix + "10.96.0.78"
	e.put(orphanLeak, "nowhere/lost")
	// The kubernetes Service's address is held: never a leak.
	kubernetesIP := ipKeyPrefix + "10.96.0.1"

	e.pass()
	for _, k := range []string{ipLeak, portLeak, kubernetesIP} {
		if e.key(k) == "" {
			t.Errorf("after one pass: got %s released, want it kept until the next pass", k)
		}
	}
	e.pass()
	for _, k := range []string{ipLeak, portLeak} {
		if v := e.key(k); v != "" {
			t.Errorf("after two passes: got %s = %q, want it released", k, v)
		}
	}
	if e.key(kubernetesIP) != "default/kubernetes" {
		t.Errorf("after two passes: got %s = %q, want default/kubernetes", kubernetesIP, e.key(kubernetesIP))
	}
	// Each release is reported against the Service that last held it.
	if ev := e.events("gone"); ev["ClusterIPLeaked"] != 1 || ev["PortLeaked"] != 1 {
		t.Errorf("events about default/gone: got %v, want ClusterIPLeaked and PortLeaked once each", ev)
	}
	if ev := e.events("lost"); ev["ClusterIPLeaked"] != 1 {
		t.Errorf("events about nowhere/lost (in default): got %v, want ClusterIPLeaked once", ev)
	}

	// A leak rewritten between passes is a new one: it waits a pass more.
	e.put(ipLeak, "default/gone")
	e.pass()
	e.put(ipLeak, "default/gone-again")
	e.pass()
	if e.key(ipLeak) == "" {
		t.Errorf("leak rewritten between passes: got it released, want it kept for one more pass")
	}
	e.pass()
	if e.key(ipLeak) != "" {
		t.Errorf("leak rewritten between passes: got it kept after a third pass, want it released")
	}

	// A leak that a Service holds again by the next pass is kept.
	svc := e.nodePortService("back")
	ipKey, nodePortKey := ipKeyPrefix+svc.Spec.ClusterIP, portKeyPrefix+"tcp-"+itoa(svc.Spec.Ports[0].NodePort)
	stored, err := e.store.Get(e.ctx, "/registry/services/default/back")
	if err != nil {
		t.Fatal(err)
	}
	e.del("/registry/services/default/back")
	e.pass() // both keys flagged
	e.put("/registry/services/default/back", string(stored.Value))
	e.pass()
	e.pass()
	if e.key(ipKey) != "default/back" || e.key(nodePortKey) != "default/back" {
		t.Errorf("keys held again: got %q and %q, want both kept for default/back", e.key(ipKey), e.key(nodePortKey))
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestRepairRestoresMissingKeys(t *testing.T) {
	e := newRepairEnv(t)
	svc := e.nodePortService("web")
	ipKey, nodePortKey := ipKeyPrefix+svc.Spec.ClusterIP, portKeyPrefix+"tcp-"+itoa(svc.Spec.Ports[0].NodePort)
	e.del(ipKey)
	e.del(nodePortKey)
	e.pass()
	for _, k := range []string{ipKey, nodePortKey} {
		if v := e.key(k); v != "default/web" {
			t.Errorf("after a pass: got %s = %q, want default/web", k, v)
		}
	}
	got := e.events("web")
	for _, reason := range []string{"ClusterIPNotAllocated", "PortNotAllocated"} {
		if got[reason] != 1 {
			t.Errorf("events: got %v, want one %s", got, reason)
		}
	}
	// Repaired: a second pass finds nothing to report.
	e.pass()
	if again := e.events("web"); len(again) != 2 || again["ClusterIPNotAllocated"] != 1 || again["PortNotAllocated"] != 1 {
		t.Errorf("events after a second pass: got %v, want the same two, once each", again)
	}
	// With its key back the address cannot be given to another Service.
	_, err := e.client.CoreV1().Services("default").Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "thief"},
		Spec: corev1.ServiceSpec{ClusterIP: svc.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "already allocated") {
		t.Errorf("create with the repaired address: got %v, want already allocated", err)
	}
}

func TestRepairReportsDuplicatesAndOutOfRange(t *testing.T) {
	e := newRepairEnv(t)
	a := e.nodePortService("a")
	// b, written directly (as after an etcd restore), holds a's address
	// and node port.
	b := a.DeepCopy()
	b.Name, b.UID = "b", types.UID("b-uid")
	b.CreationTimestamp = metav1.NewTime(a.CreationTimestamp.Add(time.Hour))
	e.writeService(b)
	// c holds values outside the ranges.
	c := a.DeepCopy()
	c.Name, c.UID = "c", types.UID("c-uid")
	c.Spec.ClusterIP, c.Spec.ClusterIPs = "192.168.7.7", []string{"192.168.7.7"}
	c.Spec.Ports[0].NodePort = 20000
	e.writeService(c)
	// d's key names d, though a is older: the key's owner keeps it.
	d := a.DeepCopy()
	d.Name, d.UID = "d", types.UID("d-uid")
	d.Spec.ClusterIP, d.Spec.ClusterIPs = "10.96.0.200", []string{"10.96.0.200"}
	d.Spec.Ports = nil
	d.CreationTimestamp = metav1.NewTime(a.CreationTimestamp.Add(2 * time.Hour))
	e.writeService(d)
	e.put(ipKeyPrefix+"10.96.0.200", "default/d")
	a2 := d.DeepCopy()
	a2.Name, a2.UID = "e", types.UID("e-uid")
	a2.CreationTimestamp = a.CreationTimestamp
	e.writeService(a2)

	e.pass()
	tests := []struct {
		service string
		want    map[string]int32
	}{
		{"a", map[string]int32{}},
		{"b", map[string]int32{"ClusterIPAlreadyAllocated": 1, "PortAlreadyAllocated": 1}},
		{"c", map[string]int32{"ClusterIPOutOfRange": 1, "PortOutOfRange": 1}},
		{"d", map[string]int32{}},
		{"e", map[string]int32{"ClusterIPAlreadyAllocated": 1}},
	}
	for _, tc := range tests {
		if got := e.events(tc.service); !equalCounts(got, tc.want) {
			t.Errorf("events about %s after a pass: got %v, want %v", tc.service, got, tc.want)
		}
	}
	if v := e.key(ipKeyPrefix + "192.168.7.7"); v != "" {
		t.Errorf("out-of-range address: got a key for %q, want none", v)
	}
	if v := e.key(ipKeyPrefix + a.Spec.ClusterIP); v != "default/a" {
		t.Errorf("duplicated address: got its key owned by %q, want default/a", v)
	}
	// Found again, the same problems count up the same events.
	e.pass()
	if got := e.events("b"); !equalCounts(got, map[string]int32{"ClusterIPAlreadyAllocated": 2, "PortAlreadyAllocated": 2}) {
		t.Errorf("events about b after two passes: got %v, want each with series count 2", got)
	}
}

func equalCounts(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRepairNeverUndoesAConcurrentCreate: a release is conditioned on the
// revision the pass saw, and the snapshot is one revision, so a Service
// created while a pass runs keeps its allocation.
func TestRepairNeverUndoesAConcurrentCreate(t *testing.T) {
	e := newRepairEnv(t)
	const addr = "10.96.0.99"
	leak := ipKeyPrefix + addr
	e.put(leak, "default/gone")
	e.pass() // flagged

	// While the second pass decides to release the leak, another server
	// releases it and a create takes the address.
	e.hooks.beforeTxn[leak] = func() {
		e.del(leak)
		if _, err := e.client.CoreV1().Services("default").Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "racer"},
			Spec: corev1.ServiceSpec{ClusterIP: addr, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("concurrent create: %v", err)
		}
	}
	e.pass()
	if v := e.key(leak); v != "default/racer" {
		t.Errorf("after the racing create: got %s = %q, want default/racer", leak, v)
	}

	// A create between the pass's list of Services and its list of keys
	// is in neither (one revision), so it is not even flagged.
	e.hooks.beforeList[ipKeyPrefix] = func() {
		if _, err := e.client.CoreV1().Services("default").Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "late"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("create during the snapshot: %v", err)
		}
	}
	e.pass()
	if len(e.server.repair.leaks) != 0 {
		t.Errorf("create during the snapshot: got leaks flagged %v, want none", e.server.repair.leaks)
	}
	late, err := e.client.CoreV1().Services("default").Get(e.ctx, "late", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.pass()
	for _, k := range []string{ipKeyPrefix + late.Spec.ClusterIP, portKeyPrefix + "tcp-" + itoa(late.Spec.Ports[0].NodePort)} {
		if v := e.key(k); v != "default/late" {
			t.Errorf("after more passes: got %s = %q, want default/late", k, v)
		}
	}
}

func TestRepairLoopStartsAndStopsWithTheServer(t *testing.T) {
	e := newRepairEnv(t)
	const leak = ipKeyPrefix + "10.96.0.88"
	e.put(leak, "default/gone")
	// A second server on the same etcd with a short interval: its loop,
	// started by Bootstrap, releases the leak.
	s, err := New(Config{Store: e.store, Resources: registry.Resources(), ServiceCIDR: e.server.cfg.ServiceCIDR,
		NodePortBase: 30000, NodePortSize: 100, RepairInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(e.ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.key(leak) != "" {
		if time.Now().After(deadline) {
			t.Fatal("the repair loop never released the leak")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	s.repair.mu.Lock()
	done := s.repair.done
	s.repair.mu.Unlock()
	select {
	case <-done:
	default:
		t.Fatal("Close returned before the repair loop ended")
	}
}
