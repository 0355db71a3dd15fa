package apiserver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

func podResource(t testing.TB) *resource {
	t.Helper()
	res := registry.Find(registry.Resources(), corev1.SchemeGroupVersion.WithResource("pods"))
	if res == nil {
		t.Fatal("no pods resource")
	}
	return &resource{Resource: res, owner: res}
}

// fullPod sets every field a pod selector can read, and more.
func fullPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"a": "b"}, UID: "u1"},
		Spec: corev1.PodSpec{
			NodeName: "n1", RestartPolicy: corev1.RestartPolicyOnFailure, SchedulerName: "custom",
			ServiceAccountName: "sa", HostNetwork: true,
			Containers: []corev1.Container{{Name: "c", Image: "img", Env: []corev1.EnvVar{{Name: "nodeName", Value: "decoy"}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}},
			NominatedNodeName: "n2", HostIP: "192.0.2.1"},
	}
}

// TestProtoResourceVersion: for every resource, splicing a
// resourceVersion into the stored protobuf gives exactly the bytes of
// encoding the object with that resourceVersion, with and without the
// envelope, and the stored bytes decode back to the object.
func TestProtoResourceVersion(t *testing.T) {
	for _, res := range registry.Resources() {
		if res.ToStorage != nil {
			continue // stored as its owner's type, tested there
		}
		r := &resource{Resource: res, owner: res}
		t.Run(res.GroupVersion.String()+"/"+res.Name, func(t *testing.T) {
			obj := r.New()
			m := accessor(obj)
			m.SetName("a-name")
			m.SetNamespace("ns")
			m.SetLabels(map[string]string{"b": "2", "a": "1"})
			m.SetUID("uid-1")
			obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
			stored, err := encodeForStorage(r, obj)
			if err != nil {
				t.Fatal(err)
			}
			if !isProto(stored) {
				t.Fatalf("stored %s is not protobuf: %q", res.Kind, stored)
			}
			m.SetResourceVersion("1234567")
			want, err := encodeProto(obj)
			if err != nil {
				t.Fatal(err)
			}
			if got := protoWithResourceVersion(stored, 1234567); !bytes.Equal(got, want) {
				t.Errorf("spliced\n%q\nencoded\n%q", got, want)
			}
			wantRaw, err := obj.(interface{ Marshal() ([]byte, error) }).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if got := protoRawWithResourceVersion(protoRaw(stored), 1234567); !bytes.Equal(got, wantRaw) {
				t.Errorf("spliced raw\n%q\nencoded\n%q", got, wantRaw)
			}
			if n, ok := protoRawSizeWithResourceVersion(protoRaw(stored), 1234567); !ok || n != len(wantRaw) {
				t.Errorf("spliced raw size %d (%v), want %d", n, ok, len(wantRaw))
			}
			back, err := decodeFromStorage(r, stored, 1234567)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, obj) {
				t.Errorf("decoded %#v\nwant %#v", back, obj)
			}
		})
	}
}

func TestProtoMalformed(t *testing.T) {
	for _, data := range [][]byte{
		[]byte("k8s\x00"), []byte("k8s\x00\x12\x05ab"), []byte("k8s\x00\xff\xff\xff"), []byte(`{"kind":"Pod"}`),
	} {
		if got := protoWithResourceVersion(data, 3); got != nil {
			t.Errorf("%q: spliced %q, want nil", data, got)
		}
		if err := decodeProto(data, "Pod", &corev1.Pod{}); err == nil {
			t.Errorf("%q: decoded", data)
		}
	}
	// Another kind's envelope does not decode as a pod.
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
	data, err := encodeProto(cm)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeProto(data, "Pod", &corev1.Pod{}); err == nil {
		t.Error("a ConfigMap decoded as a Pod")
	}
}

// TestLegacyJSONStorage: values stored as JSON by an older Skiff still
// decode, and are sent as JSON without a decode.
func TestLegacyJSONStorage(t *testing.T) {
	r := podResource(t)
	p := fullPod()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := decodeFromStorage(r, data, 9)
	if err != nil {
		t.Fatal(err)
	}
	p.ResourceVersion = "9"
	if !reflect.DeepEqual(obj, p) {
		t.Errorf("decoded %#v, want %#v", obj, p)
	}
	if wireJSON.fromStored(data, 9) == nil || wireProto.fromStored(data, 9) != nil {
		t.Error("JSON value: want a JSON splice and no protobuf one")
	}
}

// TestProtoListWriter: the buffered list is what the protobuf serializer
// makes of the list object.
func TestProtoListWriter(t *testing.T) {
	r := podResource(t)
	var objs []runtime.Object
	l := protoListWriter{apiVersion: "v1", kind: "PodList"}
	for _, name := range []string{"a", "b", "c"} {
		p := fullPod()
		p.Name, p.ResourceVersion = name, "7"
		p.TypeMeta = metav1.TypeMeta{}
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		l.add(raw)
		objs = append(objs, p)
	}
	rem := int64(4)
	lm := metav1.ListMeta{ResourceVersion: "8", Continue: "tok", RemainingItemCount: &rem}
	got, err := l.bytes(&lm)
	if err != nil {
		t.Fatal(err)
	}
	list := r.NewList()
	if err := meta.SetList(list, objs); err != nil {
		t.Fatal(err)
	}
	list.(*corev1.PodList).ListMeta = lm
	list.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	var want bytes.Buffer
	if err := protobuf.NewSerializer(nil, nil).EncodeWithAllocator(list, &want, &runtime.SimpleAllocator{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("list\n%q\nserializer\n%q", got, want.Bytes())
	}
}

// TestWatchEvent: what a watcher sees of each storage event through its
// selector (kube's transitions: entering is ADDED, leaving DELETED with
// the last state), for protobuf and legacy JSON values alike.
func TestWatchEvent(t *testing.T) {
	r := podResource(t)
	for _, format := range []string{"protobuf", "json"} {
		enc := func(mod func(*corev1.Pod)) []byte {
			p := fullPod()
			mod(p)
			var data []byte
			var err error
			if format == "json" {
				data, err = json.Marshal(p)
			} else {
				data, err = encodeForStorage(r, p)
			}
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
		onN1 := enc(func(*corev1.Pod) {})
		onN2 := enc(func(p *corev1.Pod) { p.Spec.NodeName = "n2" })
		relabelled := enc(func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} })
		sel := func(l, f string) selector {
			t.Helper()
			ls, err := labels.Parse(l)
			if err != nil {
				t.Fatal(err)
			}
			fs, err := fields.ParseSelector(f)
			if err != nil {
				t.Fatal(err)
			}
			return selector{labels: ls, fields: fs}
		}
		nodeN1 := sel("", "spec.nodeName=n1")
		web := sel("app=web", "")
		none := sel("", "")
		tests := []struct {
			name string
			sel  selector
			ev   storage.Event
			typ  watch.EventType
			node string // of the object sent
		}{
			{"created matching", nodeN1, storage.Event{Type: storage.EventPut, Created: true, Value: onN1, Revision: 5}, watch.Added, "n1"},
			{"created elsewhere", nodeN1, storage.Event{Type: storage.EventPut, Created: true, Value: onN2, Revision: 5}, "", ""},
			{"modified matching", nodeN1, storage.Event{Type: storage.EventPut, Value: onN1, PrevValue: onN1, Revision: 6}, watch.Modified, "n1"},
			{"entering", nodeN1, storage.Event{Type: storage.EventPut, Value: onN1, PrevValue: onN2, Revision: 7}, watch.Added, "n1"},
			{"leaving", nodeN1, storage.Event{Type: storage.EventPut, Value: onN2, PrevValue: onN1, Revision: 8}, watch.Deleted, "n1"},
			{"leaving by label", web, storage.Event{Type: storage.EventPut, Value: relabelled, PrevValue: onN1, Revision: 9}, watch.Deleted, "n1"},
			{"deleted matching", nodeN1, storage.Event{Type: storage.EventDelete, PrevValue: onN1, Revision: 10}, watch.Deleted, "n1"},
			{"deleted elsewhere", nodeN1, storage.Event{Type: storage.EventDelete, PrevValue: onN2, Revision: 10}, "", ""},
			{"modified elsewhere", nodeN1, storage.Event{Type: storage.EventPut, Value: onN2, PrevValue: onN2, Revision: 11}, "", ""},
			{"no selector, modified", none, storage.Event{Type: storage.EventPut, Value: onN2, PrevValue: onN1, Revision: 12}, watch.Modified, "n2"},
			{"no selector, deleted", none, storage.Event{Type: storage.EventDelete, PrevValue: onN2, Revision: 13}, watch.Deleted, "n2"},
		}
		for _, tc := range tests {
			for _, decode := range []bool{false, true} {
				typ, val, obj, err := watchEvent(r, tc.sel, tc.ev, decode)
				if err != nil {
					t.Fatal(err)
				}
				if typ != tc.typ {
					t.Errorf("%s, %s, decode %v: got %q, want %q", format, tc.name, decode, typ, tc.typ)
					continue
				}
				if typ == "" {
					continue
				}
				// The protobuf path without decode is sparse: it decodes
				// nothing; the others decode what they decided on.
				sparse := format == "protobuf" && !decode
				if (obj == nil) != (sparse || tc.sel.empty() && !decode) {
					t.Errorf("%s, %s, decode %v: decoded object %v", format, tc.name, decode, obj != nil)
				}
				if obj == nil {
					if obj, err = decodeFromStorage(r, val, tc.ev.Revision); err != nil {
						t.Fatal(err)
					}
				}
				p := obj.(*corev1.Pod)
				if p.Spec.NodeName != tc.node || p.ResourceVersion != strconv.FormatInt(tc.ev.Revision, 10) {
					t.Errorf("%s, %s: sent node %s rv %s, want node %s rv %d", format, tc.name, p.Spec.NodeName, p.ResourceVersion, tc.node, tc.ev.Revision)
				}
			}
		}
	}
}

// TestSparseFromStored: what the sparse read of a stored object gives a
// selector equals the full decode, for every selectable field of pods and
// the metadata of other resources. A field added to
// PodStrategy.SelectableFields without reading it fails here (set it in
// fullPod).
func TestSparseFromStored(t *testing.T) {
	r := podResource(t)
	full := fullPod()
	data, err := encodeForStorage(r, full)
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := sparseFromStored(r, data)
	if !ok {
		t.Fatal("sparse read failed")
	}
	got, want := r.Strategy.SelectableFields(sp), r.Strategy.SelectableFields(full)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sparse fields %v, full %v", got, want)
	}
	for k, v := range want {
		if v == "" || v == "false" {
			t.Errorf("fullPod leaves selectable field %s at its zero value %q: the test cannot tell", k, v)
		}
	}
	if l := accessor(sp).GetLabels(); !reflect.DeepEqual(l, full.Labels) {
		t.Errorf("sparse labels %v, full %v", l, full.Labels)
	}
	for _, res := range registry.Resources() {
		if res.ToStorage != nil {
			continue
		}
		r := &resource{Resource: res, owner: res}
		obj := r.New()
		m := accessor(obj)
		m.SetName("n")
		m.SetNamespace("ns")
		m.SetLabels(map[string]string{"a": "1", "b": ""})
		obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
		data, err := encodeForStorage(r, obj)
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := sparseFromStored(r, data)
		if !ok {
			t.Fatalf("%s: sparse read failed", res.Name)
		}
		sm := accessor(sp)
		if sm.GetName() != "n" || sm.GetNamespace() != "ns" || !reflect.DeepEqual(sm.GetLabels(), m.GetLabels()) {
			t.Errorf("%s: sparse %s/%s %v", res.Name, sm.GetNamespace(), sm.GetName(), sm.GetLabels())
		}
	}
	if _, ok := sparseFromStored(r, []byte(`{"kind":"Pod"}`)); ok {
		t.Error("JSON read as protobuf")
	}
	// Services' field selectors read their spec: not sparse.
	svcs := &resource{Resource: registry.Find(registry.Resources(), corev1.SchemeGroupVersion.WithResource("services"))}
	svcs.owner = svcs.Resource
	if sparseSelectable(svcs, selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("spec.clusterIP", "1")}) {
		t.Error("a services spec field selector is sparse")
	}
	if !sparseSelectable(svcs, selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("metadata.name", "a")}) {
		t.Error("a metadata.name selector is not sparse")
	}
}

// BenchmarkWatchEventSelector: one pod event through a spec.nodeName
// selector, as a node's watch of its pods sees every pod event: decode,
// match, and the stored bytes with the revision spliced in.
func BenchmarkWatchEventSelector(b *testing.B) {
	r := podResource(b)
	p := fullPod()
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	sel := selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("spec.nodeName", "n1")}
	for _, format := range []string{"protobuf", "json"} {
		var data []byte
		var err error
		var enc wire
		if format == "json" {
			data, err = json.Marshal(p)
		} else {
			data, err = encodeForStorage(r, p)
			enc = wireProto
		}
		if err != nil {
			b.Fatal(err)
		}
		ev := storage.Event{Type: storage.EventPut, Value: data, PrevValue: data, Revision: 7}
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				typ, val, _, err := watchEvent(r, sel, ev, false)
				if err != nil || typ == "" || enc.fromStored(val, ev.Revision) == nil {
					b.Fatal("no event")
				}
			}
		})
	}
}
