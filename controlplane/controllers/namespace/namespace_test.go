package namespace

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
)

func partial(apiVersion, kind, ns, name string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiVersion, Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}
}

func TestDeletesPodsFirstThenContentThenFinalizes(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "gone", DeletionTimestamp: &now},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
	client := fake.NewClientset(ns)
	scheme := runtime.NewScheme()
	metav1.AddMetaToScheme(scheme)
	md := metadatafake.NewSimpleMetadataClient(scheme,
		partial("v1", "Pod", "gone", "p1"),
		partial("v1", "ConfigMap", "gone", "c1"),
		partial("v1", "ConfigMap", "other", "keep"),
	)
	// Deleting pods only starts their graceful deletion: the pod stays
	// until its node removes it.
	var collections atomic.Int32
	md.PrependReactor("delete-collection", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		collections.Add(1)
		return true, nil, nil
	})
	disc := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{}}
	all := []string{"create", "delete", "deletecollection", "get", "list", "watch"}
	disc.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, Verbs: []string{"delete", "get", "list"}},
		{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: all},
		{Name: "namespaces", Kind: "Namespace", Namespaced: false, Verbs: all},
	}}}
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Metadata: md, Discovery: disc, Namespaces: factory.Core().V1().Namespaces(), Now: now.Time.Local})
	if err != nil {
		t.Fatal(err)
	}
	factory.Core().V1().Namespaces().Informer().GetIndexer().Add(ns)

	count := func(gvr schema.GroupVersionResource, namespace string) int {
		l, err := md.Resource(gvr).Namespace(namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

	err = c.Sync(context.Background(), "gone")
	var rem *remainingError
	if !errors.As(err, &rem) {
		t.Fatalf("got %v, want content remaining", err)
	}
	if n := count(cms, "gone"); n != 1 {
		t.Errorf("got %d configmaps while a pod remains, want 1 (pods go first)", n)
	}
	got, err := client.CoreV1().Namespaces().Get(context.Background(), "gone", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var remaining *corev1.NamespaceCondition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == corev1.NamespaceContentRemaining {
			remaining = &got.Status.Conditions[i]
		}
	}
	if remaining == nil || remaining.Status != corev1.ConditionTrue || remaining.Reason != "SomeResourcesRemain" || !strings.Contains(remaining.Message, "pods. has 1 resource instances") {
		t.Errorf("got NamespaceContentRemaining %+v, want True SomeResourcesRemain for the pod", remaining)
	}
	if len(got.Status.Conditions) != len(conditionTypes) {
		t.Errorf("got %d conditions, want %d", len(got.Status.Conditions), len(conditionTypes))
	}
	for _, a := range client.Actions() {
		if a.GetSubresource() == "finalize" {
			t.Fatalf("got a finalize while content remains")
		}
	}

	if collections.Load() != 1 {
		t.Errorf("got %d pod collection deletes, want 1", collections.Load())
	}
	// The node finishes the pod.
	if err := md.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace("gone").Delete(context.Background(), "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	factory.Core().V1().Namespaces().Informer().GetIndexer().Update(got)
	if err := c.Sync(context.Background(), "gone"); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if n := count(cms, "gone"); n != 0 {
		t.Errorf("got %d configmaps left, want 0", n)
	}
	if n := count(cms, "other"); n != 1 {
		t.Errorf("got %d configmaps in another namespace, want 1 untouched", n)
	}
	var finalized *corev1.Namespace
	for _, a := range client.Actions() {
		if a.GetSubresource() == "finalize" {
			finalized = a.(k8stesting.CreateAction).GetObject().(*corev1.Namespace)
		}
	}
	if finalized == nil {
		t.Fatal("got no finalize call, want one")
	}
	if len(finalized.Spec.Finalizers) != 0 {
		t.Errorf("got finalizers %v after finalize, want none", finalized.Spec.Finalizers)
	}
}

func TestIgnoresLiveNamespaces(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}}
	client := fake.NewClientset(ns)
	scheme := runtime.NewScheme()
	metav1.AddMetaToScheme(scheme)
	md := metadatafake.NewSimpleMetadataClient(scheme, partial("v1", "Pod", "live", "p1"))
	disc := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{}}
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Metadata: md, Discovery: disc, Namespaces: factory.Core().V1().Namespaces()})
	if err != nil {
		t.Fatal(err)
	}
	factory.Core().V1().Namespaces().Informer().GetIndexer().Add(ns)
	if err := c.Sync(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	if n := len(md.Actions()); n != 0 {
		t.Errorf("got %d metadata actions on a live namespace, want 0", n)
	}
}
