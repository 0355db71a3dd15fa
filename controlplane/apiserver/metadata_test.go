package apiserver_test

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// richPod has every kind of metadata the garbage collector and the
// namespace controller read.
func richPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "meta"}, Annotations: map[string]string{"note": "x"},
			Finalizers: []string{"skiff.dev/hold"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "11111111-2222-3333-4444-555555555555",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// TestPartialObjectMetadataCarriesAllMetadata: GET, LIST and WATCH as
// PartialObjectMetadata(List) answer the whole ObjectMeta (owner
// references, finalizers, deletion timestamp, generation, managed
// fields...), and a client-go metadata informer over pods sees owner
// references and finalizers.
func TestPartialObjectMetadataCarriesAllMetadata(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	pods := srv.Client().CoreV1().Pods("default")

	mc := metadata.NewForConfigOrDie(srv.RESTConfig())
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	inf := startMetadataInformer(t, srv, gvr)
	list, err := mc.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := mc.Resource(gvr).Namespace("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	if _, err := pods.Create(ctx, richPod("rich"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Deleting it sets deletionTimestamp; the finalizer keeps it.
	if err := pods.Delete(ctx, "rich", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	full, err := pods.Get(ctx, "rich", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if full.DeletionTimestamp == nil || len(full.ManagedFields) == 0 || full.Generation == 0 {
		t.Fatalf("pod: got deletionTimestamp %v managedFields %d generation %d, want all set", full.DeletionTimestamp, len(full.ManagedFields), full.Generation)
	}
	want := full.ObjectMeta

	check := func(what string, got metav1.ObjectMeta) {
		t.Helper()
		if !apiequality.Semantic.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Errorf("%s: got metadata %s, want %s", what, g, wj)
		}
	}
	pm, err := mc.Resource(gvr).Namespace("default").Get(ctx, "rich", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check("GET as PartialObjectMetadata", pm.ObjectMeta)
	pl, err := mc.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{LabelSelector: "app=meta"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Items) != 1 {
		t.Fatalf("LIST as PartialObjectMetadataList: got %d items, want 1", len(pl.Items))
	}
	check("LIST as PartialObjectMetadataList", pl.Items[0].ObjectMeta)
	// The watch's last event is the delete's update.
	var last *metav1.PartialObjectMetadata
	for last == nil || last.DeletionTimestamp == nil {
		ev := nextEvent(t, w)
		if ev.Type != watch.Added && ev.Type != watch.Modified {
			t.Fatalf("metadata watch: got %s, want ADDED then MODIFIED", ev.Type)
		}
		last = ev.Object.(*metav1.PartialObjectMetadata)
	}
	check("WATCH as PartialObjectMetadata", last.ObjectMeta)

	deadline := time.Now().Add(30 * time.Second)
	for {
		o, ok, _ := inf.GetStore().GetByKey("default/rich")
		if ok {
			m := o.(*metav1.PartialObjectMetadata)
			if m.DeletionTimestamp != nil {
				if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Name != "rs" || len(m.Finalizers) != 1 || m.Finalizers[0] != "skiff.dev/hold" {
					t.Errorf("metadata informer: got ownerReferences %v finalizers %v, want rs and skiff.dev/hold", m.OwnerReferences, m.Finalizers)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("metadata informer never saw the deleted pod")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Table rows with includeObject=Metadata carry it too.
	rc := newRawClient(t, srv)
	code, _, body := rc.do("GET", "/api/v1/namespaces/default/pods/rich?includeObject=Metadata", "", nil, "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	var tbl struct {
		Rows []struct {
			Object metav1.PartialObjectMetadata `json:"object"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &tbl); code != 200 || err != nil || len(tbl.Rows) != 1 {
		t.Fatalf("table: got %d %s, want one row", code, body)
	}
	check("table row object", tbl.Rows[0].Object.ObjectMeta)
}
