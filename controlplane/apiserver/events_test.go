package apiserver_test

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// TestEventsThroughBothVersions: events.k8s.io/v1 and core/v1 events are
// one stored object. Every verb works through either version, and what
// one writes the other reads with the fields mapped (note/message,
// regarding/involvedObject, reportingController/reportingComponent,
// deprecatedSource/source, series).
func TestEventsThroughBothVersions(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	ev1, core := c.EventsV1().Events("default"), c.CoreV1().Events("default")

	list, err := ev1.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w1, err := ev1.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	wCore, err := core.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer wCore.Stop()

	now := metav1.NewMicroTime(time.Now().Truncate(time.Microsecond))
	regarding := corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", UID: "u1"}
	created, err := ev1.Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "new"}, EventTime: now,
		ReportingController: "skiff.dev/test", ReportingInstance: "test-1", Action: "Pulling", Reason: "Pulling",
		Regarding: regarding, Note: "pulling image", Type: corev1.EventTypeNormal}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create events.k8s.io/v1: %v", err)
	}
	if created.Note != "pulling image" || created.Regarding.Name != "web" || created.ReportingController != "skiff.dev/test" {
		t.Errorf("create answer: got note %q regarding %q controller %q, want the event as sent", created.Note, created.Regarding.Name, created.ReportingController)
	}
	got1, err := ev1.Get(ctx, "new", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got1.Note != "pulling image" || got1.Action != "Pulling" || !got1.EventTime.Equal(&now) || got1.ResourceVersion != created.ResourceVersion {
		t.Errorf("get events.k8s.io/v1: got %+v, want the created event", got1)
	}
	gotCore, err := core.Get(ctx, "new", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gotCore.Message != "pulling image" || gotCore.InvolvedObject != regarding || gotCore.ReportingController != "skiff.dev/test" ||
		gotCore.ReportingInstance != "test-1" || gotCore.Action != "Pulling" {
		t.Errorf("get core/v1 of an events.k8s.io/v1 event: got %+v, want message, involvedObject and reporting fields mapped", gotCore)
	}

	// Both watches see it, each in its own version.
	if e := nextEvent(t, w1); e.Type != watch.Added || e.Object.(*eventsv1.Event).Note != "pulling image" {
		t.Errorf("events.k8s.io/v1 watch: got %s %+v, want ADDED with the note", e.Type, e.Object)
	}
	if e := nextEvent(t, wCore); e.Type != watch.Added || e.Object.(*corev1.Event).Message != "pulling image" {
		t.Errorf("core/v1 watch: got %s %+v, want ADDED with the message", e.Type, e.Object)
	}

	// Update and patch through events.k8s.io/v1: a series may change,
	// the note may not.
	got1.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: now}
	updated, err := ev1.Update(ctx, got1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update events.k8s.io/v1 series: %v", err)
	}
	if updated.Series == nil || updated.Series.Count != 2 {
		t.Errorf("update: got series %+v, want count 2", updated.Series)
	}
	bad := updated.DeepCopy()
	bad.Note = "changed"
	if _, err := ev1.Update(ctx, bad, metav1.UpdateOptions{}); err == nil || causeFields(err)[0] != "note" {
		t.Errorf("update of the note: got %v (fields %v), want Invalid on note", err, causeFields(err))
	}
	patched, err := ev1.Patch(ctx, "new", types.MergePatchType, []byte(`{"series":{"count":3}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("merge patch events.k8s.io/v1: %v", err)
	}
	if patched.Series == nil || patched.Series.Count != 3 || patched.Note != "pulling image" {
		t.Errorf("merge patch: got series %+v note %q, want count 3 and the note kept", patched.Series, patched.Note)
	}
	if _, err := ev1.Patch(ctx, "new", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("strategic patch events.k8s.io/v1: %v", err)
	}
	applied, err := ev1.Patch(ctx, "new", types.ApplyPatchType, []byte(`{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"new","annotations":{"a":"b"}}}`),
		metav1.PatchOptions{FieldManager: "applier"})
	if err != nil {
		t.Fatalf("apply events.k8s.io/v1: %v", err)
	}
	if applied.Annotations["a"] != "b" || applied.Labels["x"] != "y" || applied.Series.Count != 3 {
		t.Errorf("apply: got annotations %v labels %v series %+v, want a=b, x=y, count 3", applied.Annotations, applied.Labels, applied.Series)
	}
	if gotCore, err = core.Get(ctx, "new", metav1.GetOptions{}); err != nil || gotCore.Series == nil || gotCore.Series.Count != 3 {
		t.Errorf("core/v1 after events.k8s.io/v1 writes: got %+v %v, want series count 3", gotCore, err)
	}
	for _, w := range []watch.Interface{w1, wCore} {
		if e := nextEvent(t, w); e.Type != watch.Modified {
			t.Errorf("watch after update: got %s, want MODIFIED", e.Type)
		}
	}
	if e := nextEvent(t, w1); e.Type != watch.Modified || e.Object.(*eventsv1.Event).Series.Count != 3 {
		t.Errorf("events.k8s.io/v1 watch after patch: got %s %+v, want MODIFIED with series count 3", e.Type, e.Object)
	}

	// A core/v1 event reads back as events.k8s.io/v1.
	first := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	if _, err := core.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "old"}, InvolvedObject: regarding,
		Reason: "Started", Message: "started container", Type: corev1.EventTypeWarning, Count: 4, FirstTimestamp: first, LastTimestamp: first,
		Source: corev1.EventSource{Component: "kubelet", Host: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create core/v1: %v", err)
	}
	old, err := ev1.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if old.Note != "started container" || old.Regarding != regarding || old.DeprecatedSource.Component != "kubelet" || old.DeprecatedSource.Host != "node-a" ||
		old.DeprecatedCount != 4 || !old.DeprecatedFirstTimestamp.Equal(&first) || old.Type != corev1.EventTypeWarning || old.Reason != "Started" {
		t.Errorf("core/v1 event read as events.k8s.io/v1: got %+v, want note, regarding, deprecated source, count and first timestamp mapped", old)
	}
	// core/v1 updates it (core events are mutable) and events.k8s.io/v1
	// sees the change.
	oc, err := core.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oc.Count = 5
	if _, err := core.Update(ctx, oc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update core/v1: %v", err)
	}
	if old, err = ev1.Get(ctx, "old", metav1.GetOptions{}); err != nil || old.DeprecatedCount != 5 {
		t.Errorf("events.k8s.io/v1 after a core/v1 update: got count %d %v, want 5", old.DeprecatedCount, err)
	}

	// Lists and field selectors in each version's names.
	l1, err := ev1.List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=web,reportingController=skiff.dev/test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l1.Items) != 1 || l1.Items[0].Name != "new" || l1.Items[0].Note != "pulling image" {
		t.Errorf("events.k8s.io/v1 list by regarding.name and reportingController: got %+v, want just new", l1.Items)
	}
	lc, err := core.List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Items) != 2 {
		t.Errorf("core/v1 list by involvedObject.name: got %d items, want 2", len(lc.Items))
	}
	all, err := ev1.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 2 || all.Items[0].Note == "" || all.Items[1].Note == "" {
		t.Errorf("events.k8s.io/v1 list: got %+v, want both events with notes", all.Items)
	}

	// Tables (kubectl get events.v1.events.k8s.io) render converted
	// objects.
	rc := newRawClient(t, srv)
	code, _, body := rc.do("GET", "/apis/events.k8s.io/v1/namespaces/default/events/old", "", nil, "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	var tbl metav1.Table
	if err := json.Unmarshal(body, &tbl); code != 200 || err != nil || len(tbl.Rows) != 1 {
		t.Fatalf("table of an events.k8s.io/v1 event: got %d %s, want one row", code, body)
	}
	row := tbl.Rows[0].Cells
	found := false
	for _, cell := range row {
		found = found || cell == "started container"
	}
	if !found {
		t.Errorf("table row: got %v, want the note among the cells", row)
	}
}
