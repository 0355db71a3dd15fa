package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// manifests are minimal valid objects of every served resource.
var manifests = []struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	obj        map[string]any
}{
	{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false, map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "crud-ns"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, false, map[string]any{
		"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "node-a"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, true, map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, true, map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "s"},
		"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, true, map[string]any{
		"apiVersion": "v1", "kind": "Endpoints", "metadata": map[string]any{"name": "e"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true, map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "cm"}, "data": map[string]any{"a": "b"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true, map[string]any{
		"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "sec"}, "stringData": map[string]any{"a": "b"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true, map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "sa"}}},
	{schema.GroupVersionResource{Version: "v1", Resource: "events"}, true, map[string]any{
		"apiVersion": "v1", "kind": "Event", "metadata": map[string]any{"name": "ev"},
		"involvedObject": map[string]any{"kind": "Pod", "name": "p", "namespace": "default"},
		"reason":         "Test", "message": "m", "type": "Normal", "source": map[string]any{"component": "test"}}},
	{schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"}, true, map[string]any{
		"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": map[string]any{"name": "ev2"},
		"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "skiff.dev/test", "reportingInstance": "i",
		"action": "Test", "reason": "Test", "type": "Normal", "regarding": map[string]any{"kind": "Pod", "name": "p", "namespace": "default"}}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true, map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "d"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "d"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}}}}}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, true, map[string]any{
		"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": map[string]any{"name": "rs"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "rs"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "rs"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}}}}}},
	{schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, true, map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": map[string]any{"name": "es"},
		"addressType": "IPv4", "endpoints": []any{map[string]any{"addresses": []any{"10.0.0.1"}}}}},
	{schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, true, map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": map[string]any{"name": "l"},
		"spec": map[string]any{"holderIdentity": "me"}}},
}

func resourceClient(dc dynamic.Interface, gvr schema.GroupVersionResource, namespaced bool) dynamic.ResourceInterface {
	if namespaced {
		return dc.Resource(gvr).Namespace("default")
	}
	return dc.Resource(gvr)
}

func TestCRUDEveryResource(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	dc := dynamic.NewForConfigOrDie(srv.RESTConfig())
	for _, m := range manifests {
		t.Run(m.gvr.Resource+"."+m.gvr.Group, func(t *testing.T) {
			rc := resourceClient(dc, m.gvr, m.namespaced)
			obj := &unstructured.Unstructured{Object: m.obj}
			name := obj.GetName()
			created, err := rc.Create(ctx, obj.DeepCopy(), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if created.GetUID() == "" || created.GetResourceVersion() == "" || created.GetCreationTimestamp().Time.IsZero() {
				t.Errorf("create: got uid %q rv %q created %v, want all set", created.GetUID(), created.GetResourceVersion(), created.GetCreationTimestamp())
			}
			if m.namespaced && created.GetNamespace() != "default" {
				t.Errorf("create: got namespace %q, want default", created.GetNamespace())
			}
			if _, err := rc.Create(ctx, obj.DeepCopy(), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
				t.Errorf("second create: got %v, want AlreadyExists", err)
			}
			got, err := rc.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if got.GetResourceVersion() != created.GetResourceVersion() || got.GetKind() != obj.GetKind() || got.GetAPIVersion() != obj.GetAPIVersion() {
				t.Errorf("get: got rv %s %s %s, want rv %s %s %s", got.GetResourceVersion(), got.GetAPIVersion(), got.GetKind(),
					created.GetResourceVersion(), obj.GetAPIVersion(), obj.GetKind())
			}
			got.SetLabels(map[string]string{"crud": "yes"})
			updated, err := rc.Update(ctx, got, metav1.UpdateOptions{})
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if updated.GetResourceVersion() == created.GetResourceVersion() || updated.GetLabels()["crud"] != "yes" {
				t.Errorf("update: got rv %s labels %v, want a new rv and crud=yes", updated.GetResourceVersion(), updated.GetLabels())
			}
			// A stale resourceVersion is a conflict.
			if _, err := rc.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
				t.Errorf("stale update: got %v, want Conflict", err)
			}
			list, err := rc.List(ctx, metav1.ListOptions{LabelSelector: "crud=yes"})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if len(list.Items) != 1 || list.Items[0].GetName() != name {
				t.Errorf("list crud=yes: got %d items, want just %s", len(list.Items), name)
			}
			if err := rc.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if m.gvr.Resource == "namespaces" {
				// A namespace waits for the namespace controller.
				ns, err := rc.Get(ctx, name, metav1.GetOptions{})
				if err != nil || ns.GetDeletionTimestamp() == nil {
					t.Fatalf("namespace after delete: got %v, want it terminating", err)
				}
				return
			}
			if _, err := rc.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("get after delete: got %v, want NotFound", err)
			}
			if err := rc.Delete(ctx, name, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("second delete: got %v, want NotFound", err)
			}
		})
	}
}

func TestEventsSharedBetweenVersions(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"},
		Reason: "Started", Message: "hello", Type: "Normal", Source: corev1.EventSource{Component: "test"}}
	if _, err := c.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create core event: %v", err)
	}
	got, err := c.EventsV1().Events("default").Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get as events.k8s.io/v1: %v", err)
	}
	if got.Note != "hello" || got.Regarding.Name != "p" || got.Reason != "Started" {
		t.Errorf("events.k8s.io view: got note %q regarding %q reason %q, want hello p Started", got.Note, got.Regarding.Name, got.Reason)
	}
}

func TestUpdateWithoutResourceVersionIsUnconditional(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "u"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.ResourceVersion = ""
	cm.Data = map[string]string{"x": "1"}
	out, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if out.Data["x"] != "1" {
		t.Errorf("unconditional update: got data %v, want x=1", out.Data)
	}
	// generateName gives a new name on every create.
	a, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name == b.Name || len(a.Name) != len("gen-")+5 {
		t.Errorf("generateName: got %q and %q, want two different gen-xxxxx names", a.Name, b.Name)
	}
}

func TestSelectors(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	pods := srv.Client().CoreV1().Pods("default")
	mk := func(name, node string, labels map[string]string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	mk("a", "n1", map[string]string{"app": "web", "tier": "fe"})
	mk("b", "n2", map[string]string{"app": "web", "tier": "be"})
	mk("c", "", map[string]string{"app": "db"})
	tests := []struct {
		name          string
		labels, field string
		want          []string
	}{
		{"label equality", "app=web", "", []string{"a", "b"}},
		{"label set", "tier in (fe)", "", []string{"a"}},
		{"label not", "app!=web", "", []string{"c"}},
		{"metadata.name", "", "metadata.name=b", []string{"b"}},
		{"spec.nodeName", "", "spec.nodeName=n1", []string{"a"}},
		{"unscheduled", "", "spec.nodeName=", []string{"c"}},
		{"status.phase", "", "status.phase=Pending", []string{"a", "b", "c"}},
		{"both", "app=web", "spec.nodeName!=n1", []string{"b"}},
		{"namespace", "", "metadata.namespace=default", []string{"a", "b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: tc.labels, FieldSelector: tc.field})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, p := range list.Items {
				got = append(got, p.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// A watch's initial events select the same pods, whole.
			send := true
			w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: tc.labels, FieldSelector: tc.field,
				SendInitialEvents: &send, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
			if err != nil {
				t.Fatalf("watch: %v", err)
			}
			defer w.Stop()
			got = nil
			for ev := nextEvent(t, w); ev.Type != watch.Bookmark; ev = nextEvent(t, w) {
				p, ok := ev.Object.(*corev1.Pod)
				if ev.Type != watch.Added || !ok || p.ResourceVersion == "" || len(p.Spec.Containers) != 1 {
					t.Fatalf("initial event: got %s %+v, want ADDED of a whole pod", ev.Type, ev.Object)
				}
				got = append(got, p.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("watch: got %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"spec.foo=x", "spec.containers=x", "metadata.uid=1"} {
		if _, err := pods.List(ctx, metav1.ListOptions{FieldSelector: bad}); !apierrors.IsBadRequest(err) {
			t.Errorf("field selector %q: got %v, want BadRequest", bad, err)
		}
	}
	if _, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "a b c"}); !apierrors.IsBadRequest(err) {
		t.Errorf("malformed label selector: got %v, want BadRequest", err)
	}
	// All-namespaces list.
	all, err := srv.Client().CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(all.Items) != 2 {
		t.Errorf("all-namespaces list: got %v items, err %v, want 2", len(all.Items), err)
	}
}

func TestPagination(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	for i := range 25 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i),
			Labels: map[string]string{"even": fmt.Sprint(i%2 == 0)}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		selector string
		want     int
	}{
		{"all", "", 25},
		// 13 even ones and the one the "all" case created after its first page.
		{"filtered", "even=true", 14},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			opts := metav1.ListOptions{Limit: 10, LabelSelector: tc.selector}
			first := true
			var rv string
			for {
				page, err := cms.List(ctx, opts)
				if err != nil {
					t.Fatalf("list page: %v", err)
				}
				if len(page.Items) > 10 {
					t.Fatalf("page: got %d items, want at most 10", len(page.Items))
				}
				if first {
					rv = page.ResourceVersion
					if tc.selector == "" && (page.RemainingItemCount == nil || *page.RemainingItemCount != 15) {
						t.Errorf("remainingItemCount: got %v, want 15", page.RemainingItemCount)
					}
					// Changes after the first page do not show in the
					// next ones: the list is a snapshot.
					if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-zz-" + tc.name,
						Labels: map[string]string{"even": "true"}}}, metav1.CreateOptions{}); err != nil {
						t.Fatal(err)
					}
					first = false
				} else if page.ResourceVersion != rv {
					t.Errorf("page resourceVersion: got %s, want the first page's %s", page.ResourceVersion, rv)
				}
				for _, cm := range page.Items {
					names = append(names, cm.Name)
				}
				if page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			if len(names) != tc.want {
				t.Errorf("paged list: got %d names %v, want %d", len(names), names, tc.want)
			}
		})
	}
	if _, err := cms.List(ctx, metav1.ListOptions{Continue: "garbage"}); !apierrors.IsBadRequest(err) {
		t.Errorf("bad continue token: got %v, want BadRequest", err)
	}
}

func TestDeleteCollection(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	for i := range 6 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("dc-", i),
			Labels: map[string]string{"group": fmt.Sprint(i % 2)}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "group=0"}); err != nil {
		t.Fatalf("deletecollection: %v", err)
	}
	left, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "group"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cm := range left.Items {
		names = append(names, cm.Name)
	}
	if fmt.Sprint(names) != "[dc-1 dc-3 dc-5]" {
		t.Errorf("after deletecollection of group=0: got %v, want [dc-1 dc-3 dc-5]", names)
	}
}
