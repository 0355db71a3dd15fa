package apiserver

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

func podResource(t *testing.T) *resource {
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

// TestSparsePod: the sparse decode of a stored pod yields the same
// selectable fields and labels as the full one, so a selector cannot
// tell them apart. A field added to PodStrategy.SelectableFields without
// adding it to sparsePod fails here (set it in fullPod).
func TestSparsePod(t *testing.T) {
	r := podResource(t)
	full := fullPod()
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var sp sparsePod
	if err := json.Unmarshal(data, &sp); err != nil {
		t.Fatal(err)
	}
	got, want := r.Strategy.SelectableFields(sp.pod()), r.Strategy.SelectableFields(full)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sparse fields %v, full %v", got, want)
	}
	for k, v := range want {
		if v == "" || v == "false" {
			t.Errorf("fullPod leaves selectable field %s at its zero value %q: the test cannot tell", k, v)
		}
	}
	if !reflect.DeepEqual(sp.pod().Labels, full.Labels) {
		t.Errorf("sparse labels %v, full %v", sp.pod().Labels, full.Labels)
	}
}

// TestSparseWatchEvent: the sparse path makes the decisions of the full
// one (watchEvent) for every transition.
func TestSparseWatchEvent(t *testing.T) {
	r := podResource(t)
	enc := func(mod func(*corev1.Pod)) []byte {
		p := fullPod()
		mod(p)
		data, err := json.Marshal(p)
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
	sels := map[string]selector{
		"spec.nodeName=n1":        sel("", "spec.nodeName=n1"),
		"app=web":                 sel("app=web", ""),
		"both":                    sel("app=web", "status.phase=Running,spec.nodeName!=n2"),
		"metadata.name and podIP": sel("", "metadata.name=p,status.podIP=10.0.0.5"),
	}
	events := map[string]storage.Event{
		"created matching":   {Type: storage.EventPut, Created: true, Value: onN1, Revision: 5},
		"created elsewhere":  {Type: storage.EventPut, Created: true, Value: onN2, Revision: 5},
		"modified matching":  {Type: storage.EventPut, Value: onN1, PrevValue: onN1, Revision: 6},
		"entering":           {Type: storage.EventPut, Value: onN1, PrevValue: onN2, Revision: 7},
		"leaving":            {Type: storage.EventPut, Value: onN2, PrevValue: onN1, Revision: 8},
		"leaving by label":   {Type: storage.EventPut, Value: relabelled, PrevValue: onN1, Revision: 9},
		"deleted matching":   {Type: storage.EventDelete, PrevValue: onN1, Revision: 10},
		"deleted elsewhere":  {Type: storage.EventDelete, PrevValue: onN2, Revision: 10},
		"modified elsewhere": {Type: storage.EventPut, Value: onN2, PrevValue: onN2, Revision: 11},
	}
	s := &Server{}
	for sn, sl := range sels {
		for en, ev := range events {
			typ, data, ok := sparseWatchEvent(r, sl, ev)
			if !ok {
				t.Fatalf("%s, %s: sparse path refused", sn, en)
			}
			wtyp, wobj, err := s.watchEvent(&request{r: r}, sl, ev)
			if err != nil {
				t.Fatal(err)
			}
			if typ != wtyp || (data == nil) != (wobj == nil) {
				t.Errorf("%s, %s: sparse %q (object %v), full %q (object %v)", sn, en, typ, data != nil, wtyp, wobj != nil)
				continue
			}
			if data == nil {
				continue
			}
			var got corev1.Pod
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			want := wobj.(*corev1.Pod)
			if got.ResourceVersion != want.ResourceVersion || got.Spec.NodeName != want.Spec.NodeName || !reflect.DeepEqual(got.Labels, want.Labels) {
				t.Errorf("%s, %s: sparse sent rv %s node %s labels %v; full rv %s node %s labels %v", sn, en,
					got.ResourceVersion, got.Spec.NodeName, got.Labels, want.ResourceVersion, want.Spec.NodeName, want.Labels)
			}
		}
	}
}

// BenchmarkWatchEventSelector: one pod event through a spec.nodeName
// selector, on the sparse path and on the full one (decode, match, the
// object for encoding).
func BenchmarkWatchEventSelector(b *testing.B) {
	res := registry.Find(registry.Resources(), corev1.SchemeGroupVersion.WithResource("pods"))
	r := &resource{Resource: res, owner: res}
	p := fullPod()
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	data, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	ev := storage.Event{Type: storage.EventPut, Value: data, PrevValue: data, Revision: 7}
	sel := selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("spec.nodeName", "n1")}
	b.Run("sparse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, d, ok := sparseWatchEvent(r, sel, ev); !ok || d == nil {
				b.Fatal("no event")
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		s := &Server{}
		for b.Loop() {
			if _, o, err := s.watchEvent(&request{r: r}, sel, ev); err != nil || o == nil {
				b.Fatal("no event")
			}
		}
	})
}
