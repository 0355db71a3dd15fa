package core

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// strategy is the part of registry.Strategy these tests use.
type strategy interface {
	Default(runtime.Object)
	PrepareForCreate(context.Context, runtime.Object)
	PrepareForUpdate(context.Context, runtime.Object, runtime.Object)
	Validate(context.Context, runtime.Object) field.ErrorList
	ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList
}

func create(s strategy, obj runtime.Object) field.ErrorList {
	s.Default(obj)
	s.PrepareForCreate(context.Background(), obj)
	return s.Validate(context.Background(), obj)
}

func update(s strategy, obj, old runtime.Object) field.ErrorList {
	s.Default(obj)
	s.PrepareForUpdate(context.Background(), obj, old)
	return s.ValidateUpdate(context.Background(), obj, old)
}

func om(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"}
}

func TestNamespace(t *testing.T) {
	s := NamespaceStrategy{}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	if errs := create(s, ns); len(errs) != 0 {
		t.Errorf("got errors %v, want none", errs)
	}
	if ns.Status.Phase != corev1.NamespaceActive || len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes || ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("got phase %q finalizers %v labels %v, want Active, [kubernetes], the name label", ns.Status.Phase, ns.Spec.Finalizers, ns.Labels)
	}
	tests := []struct {
		name string
		ns   *corev1.Namespace
		want []wantErr
	}{
		{"dotted name", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team.a"}}, []wantErr{inv("metadata.name")}},
		{"namespace set", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b"}}, []wantErr{forbidden("metadata.namespace")}},
		{"bad finalizer", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"custom"}}}, []wantErr{inv("spec.finalizers")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, create(s, tt.ns), tt.want...) })
	}

	old := ns.DeepCopy()
	old.ResourceVersion = "1"
	upd := old.DeepCopy()
	upd.Spec.Finalizers = nil
	upd.Status.Phase = corev1.NamespaceTerminating
	if errs := update(s, upd, old); len(errs) != 0 || len(upd.Spec.Finalizers) != 1 || upd.Status.Phase != corev1.NamespaceActive {
		t.Errorf("got errors %v finalizers %v phase %q, want finalizers and status kept", errs, upd.Spec.Finalizers, upd.Status.Phase)
	}

	fin := old.DeepCopy()
	fin.Spec.Finalizers = nil
	fin.Status.Phase = corev1.NamespaceTerminating
	s.PrepareForFinalizeUpdate(context.Background(), fin, old)
	if errs := s.ValidateFinalizeUpdate(context.Background(), fin, old); len(errs) != 0 || len(fin.Spec.Finalizers) != 0 || fin.Status.Phase != corev1.NamespaceActive {
		t.Errorf("got errors %v finalizers %v phase %q, want finalizers cleared and status kept", errs, fin.Spec.Finalizers, fin.Status.Phase)
	}

	st := old.DeepCopy()
	st.Status.Phase = corev1.NamespaceTerminating
	s.PrepareForStatusUpdate(context.Background(), st, old)
	checkErrors(t, s.ValidateStatusUpdate(context.Background(), st, old), inv("status.Phase"))
	now := metav1.Now()
	st.DeletionTimestamp = &now
	old.DeletionTimestamp = &now
	checkErrors(t, s.ValidateStatusUpdate(context.Background(), st, old))

	f := s.SelectableFields(ns)
	if f.Get("status.phase") != "Active" || f.Get("name") != "team-a" || f.Has("metadata.namespace") {
		t.Errorf("got fields %v, want status.phase, name and no metadata.namespace", f)
	}
}

func TestNode(t *testing.T) {
	s := NodeStrategy{}
	newNode := func() *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: "1"},
			Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24"},
			Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourcePods: resource.MustParse("110")},
				Phase: corev1.NodeRunning},
		}
	}
	n := newNode()
	if errs := create(s, n); len(errs) != 0 {
		t.Fatalf("got errors %v, want none", errs)
	}
	if len(n.Spec.PodCIDRs) != 1 || n.Status.Allocatable.Cpu().String() != "2" || n.Status.Phase != corev1.NodeRunning {
		t.Errorf("got podCIDRs %v allocatable %v phase %q, want podCIDRs from podCIDR, allocatable from capacity, status kept", n.Spec.PodCIDRs, n.Status.Allocatable, n.Status.Phase)
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Node)
		want   []wantErr
	}{
		{"taints", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Effect: corev1.TaintEffectNoSchedule}, {Key: "b"}, {Key: "c", Effect: "Never"}}
		}, []wantErr{dup("metadata.taints[1]"), req("metadata.taints[2].effect"), notSup("metadata.taints[3].effect")}},
		{"pod CIDR", func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "", []string{"10.244.1.0/33"} }, []wantErr{inv("spec.podCIDRs[0]")}},
		{"pods not integer", func(n *corev1.Node) { n.Status.Capacity[corev1.ResourcePods] = resource.MustParse("1500m") },
			[]wantErr{inv("status.capacity.pods"), inv("status.allocatable.pods")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode()
			tt.mutate(n)
			checkErrors(t, create(s, n), tt.want...)
		})
	}

	old := newNode()
	create(s, old)
	changed := old.DeepCopy()
	changed.Spec.PodCIDR, changed.Spec.PodCIDRs = "10.244.2.0/24", []string{"10.244.2.0/24"}
	changed.Spec.Unschedulable = true
	changed.Status.Capacity = nil
	checkErrors(t, update(s, changed, old), forbidden("spec.podCIDRs"))
	if changed.Status.Capacity == nil {
		t.Errorf("got status replaced by a main-resource update, want it kept")
	}
	if got := s.SelectableFields(changed).Get("spec.unschedulable"); got != "true" {
		t.Errorf("got spec.unschedulable=%q, want true", got)
	}
	fresh := newNode()
	fresh.Spec.PodCIDR = ""
	create(s, fresh)
	set := fresh.DeepCopy()
	set.Spec.PodCIDRs = []string{"10.244.3.0/24"}
	checkErrors(t, update(s, set, fresh))
}

func TestConfigMap(t *testing.T) {
	s := ConfigMapStrategy{}
	immutable := true
	tests := []struct {
		name string
		cm   *corev1.ConfigMap
		want []wantErr
	}{
		{"valid", &corev1.ConfigMap{ObjectMeta: om("c"), Data: map[string]string{"a.conf": "x"}, BinaryData: map[string][]byte{"b": {1}}}, nil},
		{"bad key", &corev1.ConfigMap{ObjectMeta: om("c"), Data: map[string]string{"a/b": "x"}}, []wantErr{inv("data[a/b]")}},
		{"key in both", &corev1.ConfigMap{ObjectMeta: om("c"), Data: map[string]string{"a": "x"}, BinaryData: map[string][]byte{"a": {1}}}, []wantErr{inv("data[a]")}},
		{"too big", &corev1.ConfigMap{ObjectMeta: om("c"), Data: map[string]string{"a": strings.Repeat("x", MaxSecretSize), "b": "y"}}, []wantErr{tooLong("[]")}},
		{"bad name", &corev1.ConfigMap{ObjectMeta: om("C")}, []wantErr{inv("metadata.name")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, create(s, tt.cm), tt.want...) })
	}
	old := &corev1.ConfigMap{ObjectMeta: om("c"), Data: map[string]string{"a": "1"}, Immutable: &immutable}
	create(s, old)
	upd := old.DeepCopy()
	upd.Data["a"] = "2"
	upd.Immutable = nil
	checkErrors(t, update(s, upd, old), forbidden("data"), forbidden("immutable"))
	empty := &corev1.ConfigMap{ObjectMeta: om("c")}
	create(s, empty)
	if empty.Data == nil {
		t.Errorf("got nil data, want an empty map")
	}
}

func TestSecret(t *testing.T) {
	s := SecretStrategy{}
	sec := &corev1.Secret{ObjectMeta: om("s"), Data: map[string][]byte{"a": []byte("1")}, StringData: map[string]string{"a": "2", "b": "3"}}
	if errs := create(s, sec); len(errs) != 0 {
		t.Fatalf("got errors %v, want none", errs)
	}
	if sec.Type != corev1.SecretTypeOpaque || string(sec.Data["a"]) != "2" || string(sec.Data["b"]) != "3" || sec.StringData != nil {
		t.Errorf("got type %q data %v stringData %v, want Opaque with stringData merged over data", sec.Type, sec.Data, sec.StringData)
	}
	tests := []struct {
		name string
		sec  *corev1.Secret
		want []wantErr
	}{
		{"tls without key", &corev1.Secret{ObjectMeta: om("s"), Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": {1}}}, []wantErr{req("data[tls.key]")}},
		{"dockerconfigjson not json", &corev1.Secret{ObjectMeta: om("s"), Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": []byte("{")}}, []wantErr{inv("data[.dockerconfigjson]")}},
		{"basic auth", &corev1.Secret{ObjectMeta: om("s"), Type: corev1.SecretTypeBasicAuth}, []wantErr{req("data[username]"), req("data[password]")}},
		{"sa token", &corev1.Secret{ObjectMeta: om("s"), Type: corev1.SecretTypeServiceAccountToken}, []wantErr{req("metadata.annotations[kubernetes.io/service-account.name]")}},
		{"bad key", &corev1.Secret{ObjectMeta: om("s"), Data: map[string][]byte{"..": {1}}}, []wantErr{inv("data[..]")}},
		{"too big", &corev1.Secret{ObjectMeta: om("s"), Data: map[string][]byte{"a": make([]byte, MaxSecretSize+1)}}, []wantErr{tooLong("data")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, create(s, tt.sec), tt.want...) })
	}
	immutable := true
	old := &corev1.Secret{ObjectMeta: om("s"), Data: map[string][]byte{"a": {1}}, Immutable: &immutable}
	create(s, old)
	upd := old.DeepCopy()
	upd.Type = corev1.SecretTypeBasicAuth
	upd.Data["a"] = []byte{2}
	checkErrors(t, update(s, upd, old), inv("type"), forbidden("data"), req("data[username]"), req("data[password]"))
	keep := old.DeepCopy()
	keep.Type = ""
	s.PrepareForUpdate(context.Background(), keep, old)
	if keep.Type != corev1.SecretTypeOpaque {
		t.Errorf("got type %q after an update without type, want the old type", keep.Type)
	}
	if got := s.SelectableFields(old).Get("type"); got != string(corev1.SecretTypeOpaque) {
		t.Errorf("got type field %q, want Opaque", got)
	}
}

func TestServiceAccount(t *testing.T) {
	s := ServiceAccountStrategy{}
	sa := &corev1.ServiceAccount{ObjectMeta: om("builder"), Secrets: []corev1.ObjectReference{{Name: "t", Namespace: "x", UID: "u"}}}
	if errs := create(s, sa); len(errs) != 0 {
		t.Errorf("got errors %v, want none", errs)
	}
	if sa.Secrets[0] != (corev1.ObjectReference{Name: "t"}) {
		t.Errorf("got secret reference %+v, want only its name", sa.Secrets[0])
	}
	checkErrors(t, create(s, &corev1.ServiceAccount{ObjectMeta: om("Builder")}), inv("metadata.name"))
}

func TestEndpoints(t *testing.T) {
	s := EndpointsStrategy{}
	node := "node-1"
	valid := func() *corev1.Endpoints {
		return &corev1.Endpoints{ObjectMeta: om("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.244.1.5", NodeName: &node}},
			Ports:     []corev1.EndpointPort{{Name: "http", Port: 80}, {Name: "https", Port: 443}},
		}}}
	}
	ep := valid()
	if errs := create(s, ep); len(errs) != 0 {
		t.Errorf("got errors %v, want none", errs)
	}
	if ep.Subsets[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("got protocol %q, want TCP", ep.Subsets[0].Ports[0].Protocol)
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Endpoints)
		want   []wantErr
	}{
		{"no addresses", func(e *corev1.Endpoints) { e.Subsets[0].Addresses = nil }, []wantErr{req("subsets[0]")}},
		{"loopback", func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "127.0.0.1" }, []wantErr{inv("subsets[0].addresses[0].ip")}},
		{"not an IP", func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "web" },
			[]wantErr{inv("subsets[0].addresses[0].ip"), inv("subsets[0].addresses[0].ip")}},
		{"port name required", func(e *corev1.Endpoints) { e.Subsets[0].Ports[1].Name = "" }, []wantErr{req("subsets[0].ports[1].name")}},
		{"port range", func(e *corev1.Endpoints) { e.Subsets[0].Ports[0].Port = 0 }, []wantErr{inv("subsets[0].ports[0].port")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.mutate(e)
			checkErrors(t, create(s, e), tt.want...)
		})
	}
}

func TestEvents(t *testing.T) {
	s := EventStrategy{}
	now := metav1.NewMicroTime(time.Now())
	tests := []struct {
		name string
		ev   *corev1.Event
		want []wantErr
	}{
		{"legacy", &corev1.Event{ObjectMeta: om("web.1"), InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default"}, Reason: "Started"}, nil},
		{"legacy namespace mismatch", &corev1.Event{ObjectMeta: om("web.1"), InvolvedObject: corev1.ObjectReference{Namespace: "other"}}, []wantErr{inv("involvedObject.namespace")}},
		{"new style needs reporting fields", &corev1.Event{ObjectMeta: om("web.1"), EventTime: now, InvolvedObject: corev1.ObjectReference{Namespace: "default"}},
			[]wantErr{req("reportingComponent"), inv("reportingComponent"), inv("reportingComponent"), req("reportingInstance"), req("action"), req("reason")}},
		{"name with slash", &corev1.Event{ObjectMeta: om("a/b")}, []wantErr{inv("metadata.name")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, create(s, tt.ev), tt.want...) })
	}
	ev := &corev1.Event{ObjectMeta: om("web.1"), Source: corev1.EventSource{Component: "kubelet"}, ReportingController: "skiff", Type: "Warning",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default", UID: "u"}, Reason: "BackOff"}
	f := s.SelectableFields(ev)
	for k, v := range map[string]string{"involvedObject.kind": "Pod", "involvedObject.name": "web", "involvedObject.uid": "u", "reason": "BackOff", "source": "kubelet", "reportingComponent": "skiff", "type": "Warning", "metadata.namespace": "default"} {
		if f.Get(k) != v {
			t.Errorf("got %s=%q, want %q", k, f.Get(k), v)
		}
	}
}
