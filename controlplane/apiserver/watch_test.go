package apiserver_test

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// nextEvent waits for one watch event.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatalf("watch closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatalf("no watch event in 30s")
	}
	return watch.Event{}
}

func TestWatchEvents(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	base, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: base.ResourceVersion, LabelSelector: "watched=yes"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"watched": "yes"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"a": "1"}
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Leaving the selector is a DELETED for this watcher.
	cm.Labels = nil
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Labels = map[string]string{"watched": "yes"}
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted, watch.Added, watch.Deleted}
	var last int
	for i, wt := range want {
		ev := nextEvent(t, w)
		if ev.Type != wt {
			t.Fatalf("event %d: got %s, want %s", i, ev.Type, wt)
		}
		o := ev.Object.(*corev1.ConfigMap)
		var rv int
		fmt.Sscan(o.ResourceVersion, &rv)
		if rv <= last {
			t.Errorf("event %d: resourceVersion %d not after %d", i, rv, last)
		}
		last = rv
	}
}

func TestWatchBookmarksAndTimeout(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.WithBookmarkInterval(time.Second))
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	timeout := int64(20)
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	if ev.Type != watch.Bookmark {
		t.Fatalf("got %s, want a BOOKMARK", ev.Type)
	}
	if rv := ev.Object.(*corev1.ConfigMap).ResourceVersion; rv < list.ResourceVersion || rv == "" {
		t.Errorf("bookmark resourceVersion: got %q, want at least %s", rv, list.ResourceVersion)
	}
	short := int64(1)
	w2, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, TimeoutSeconds: &short})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w2.ResultChan():
		if ok {
			t.Errorf("short watch: got an event, want the stream closed by the server's timeout")
		}
	case <-time.After(30 * time.Second):
		t.Errorf("short watch: still open after 30s, want closed after 1s")
	}
}

func TestWatchListInitialEvents(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	for i := range 3 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("i", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	send := true
	w, err := cms.Watch(ctx, metav1.ListOptions{SendInitialEvents: &send, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	added := 0
	for {
		ev := nextEvent(t, w)
		if ev.Type == watch.Added {
			added++
			continue
		}
		if ev.Type != watch.Bookmark {
			t.Fatalf("got %s, want ADDED events then a BOOKMARK", ev.Type)
		}
		if ev.Object.(*corev1.ConfigMap).Annotations[metav1.InitialEventsAnnotationKey] != "true" {
			t.Errorf("bookmark: got annotations %v, want %s=true", ev.Object.(*corev1.ConfigMap).Annotations, metav1.InitialEventsAnnotationKey)
		}
		break
	}
	if added != 3 {
		t.Errorf("initial events: got %d ADDED, want 3", added)
	}
	// A watch without resourceVersion starts with the current state too.
	plain, err := cms.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Stop()
	for i := range 3 {
		if ev := nextEvent(t, plain); ev.Type != watch.Added {
			t.Fatalf("plain watch event %d: got %s, want ADDED", i, ev.Type)
		}
	}
}

// TestInformerStaysInSync drives 1,000 updates through an informer and
// checks that its cache ends exactly equal to the server's state.
func TestInformerStaysInSync(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	cms := c.CoreV1().ConfigMaps("default")
	const objects, updates = 10, 1000
	for i := range objects {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("inf-", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	for u := range updates {
		name := fmt.Sprint("inf-", u%objects)
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = map[string]string{"n": fmt.Sprint(u)}
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update %d: %v", u, err)
		}
	}
	// Delete one and add one so the cache sees every event type.
	if err := cms.Delete(ctx, "inf-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "inf-new"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRV := map[string]string{}
	for _, cm := range want.Items {
		wantRV[cm.Name] = cm.ResourceVersion
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]string{}
		for _, o := range inf.GetStore().List() {
			cm := o.(*corev1.ConfigMap)
			got[cm.Name] = cm.ResourceVersion
		}
		if fmt.Sprint(sortedPairs(got)) == fmt.Sprint(sortedPairs(wantRV)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer cache: got %v, want %v", sortedPairs(got), sortedPairs(wantRV))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"@"+v)
	}
	sort.Strings(out)
	return out
}

// TestWatchResumesAcrossRestart watches up to a revision, restarts the
// server (changes happen before and after the restart) and resumes the
// watch from the last seen revision: every change arrives once, in order.
func TestWatchResumesAcrossRestart(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "r"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := cm.ResourceVersion
	var want []string
	update := func(c kubernetes.Interface, v string) {
		t.Helper()
		cur, err := c.CoreV1().ConfigMaps("default").Get(ctx, "r", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data = map[string]string{"v": v}
		out, err := c.CoreV1().ConfigMaps("default").Update(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, v+"@"+out.ResourceVersion)
	}
	update(srv.Client(), "before-1")
	update(srv.Client(), "before-2")
	srv.Restart(t)
	update(srv.Client(), "after-1")
	update(srv.Client(), "after-2")

	w, err := srv.Client().CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: last})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []string
	for range want {
		ev := nextEvent(t, w)
		o := ev.Object.(*corev1.ConfigMap)
		got = append(got, o.Data["v"]+"@"+o.ResourceVersion)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed watch: got %v, want %v", got, want)
	}
	select {
	case ev := <-w.ResultChan():
		t.Fatalf("resumed watch: got extra event %s, want none", ev.Type)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestGoneAfterCompaction(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	var first string
	for i := range 5 {
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("g", i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = cm.ResourceVersion
		}
	}
	page, err := cms.List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Compact(t)

	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	st, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("watch from compacted revision: got %s %+v, want ERROR with 410 Expired", ev.Type, ev.Object)
	}
	_, err = cms.List(ctx, metav1.ListOptions{ResourceVersion: first, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("list at compacted revision: got %v, want 410", err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: page.Continue})
	if !apierrors.IsResourceExpired(err) {
		t.Errorf("continue after compaction: got %v, want 410 Expired", err)
	}
	// A list that is not too old still works.
	if _, err := cms.List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list after compaction: %v", err)
	}
}

// TestMetadataInformer runs a metadata-only informer (as the garbage
// collector does): lists and watches of PartialObjectMetadata.
func TestMetadataInformer(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.WithBookmarkInterval(time.Second))
	ctx := testCtx(t)
	mc := metadata.NewForConfigOrDie(srv.RESTConfig())
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	inf := startMetadataInformer(t, srv, gvr)
	cm, err := srv.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "meta",
		Labels: map[string]string{"a": "b"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, ok, _ := inf.GetStore().GetByKey("default/meta")
		if ok {
			pm := o.(*metav1.PartialObjectMetadata)
			if pm.ResourceVersion != cm.ResourceVersion || pm.Labels["a"] != "b" {
				t.Fatalf("metadata informer: got rv %s labels %v, want rv %s a=b", pm.ResourceVersion, pm.Labels, cm.ResourceVersion)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("metadata informer never saw the configmap")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bookmarks on a metadata watch decode as PartialObjectMetadata.
	list, err := mc.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := mc.Resource(gvr).Namespace("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := nextEvent(t, w); ev.Type != watch.Bookmark {
		t.Fatalf("metadata watch: got %s %v, want a BOOKMARK", ev.Type, ev.Object)
	}
}

// startMetadataInformer runs a metadata-only informer over gvr (as the
// garbage collector does) until the test ends, synced.
func startMetadataInformer(t *testing.T, srv *apiservertest.Server, gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	t.Helper()
	factory := metadatainformer.NewSharedInformerFactory(metadata.NewForConfigOrDie(srv.RESTConfig()), 0)
	inf := factory.ForResource(gvr).Informer()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("metadata informer did not sync")
	}
	return inf
}
