package events

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newEvent() *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "web.1", Namespace: "default", ResourceVersion: "1"},
		EventTime:           metav1.NewMicroTime(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)),
		ReportingController: "skiff.dev/agent",
		ReportingInstance:   "node-1",
		Action:              "Pulling",
		Reason:              "Pulling",
		Note:                "pulling nginx",
		Type:                corev1.EventTypeNormal,
		Regarding:           corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default"},
		Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(time.Date(2026, 11, 27, 10, 0, 5, 0, time.UTC))},
	}
}

func TestConversion(t *testing.T) {
	ev := newEvent()
	ev.DeprecatedSource = corev1.EventSource{Component: "c", Host: "h"}
	ev.DeprecatedCount = 3
	ev.DeprecatedFirstTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ev.Related = &corev1.ObjectReference{Kind: "Node", Name: "node-1"}
	c := ToCore(ev)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"message", c.Message, ev.Note},
		{"involvedObject", c.InvolvedObject, ev.Regarding},
		{"source", c.Source, ev.DeprecatedSource},
		{"reportingComponent", c.ReportingController, ev.ReportingController},
		{"firstTimestamp", c.FirstTimestamp, ev.DeprecatedFirstTimestamp},
		{"count", c.Count, int32(3)},
		{"series", c.Series.Count, int32(2)},
		{"related", c.Related.Name, "node-1"},
		{"kind", c.Kind, "Event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	back := FromCore(c)
	ev.TypeMeta = metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"}
	if !reflect.DeepEqual(back, ev) {
		t.Errorf("got round trip %+v, want %+v", back, ev)
	}
	stored, err := ToStorage(&eventsv1.EventList{ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []eventsv1.Event{*ev}})
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	list, ok := stored.(*corev1.EventList)
	if !ok || len(list.Items) != 1 || list.ResourceVersion != "9" || list.Items[0].Message != ev.Note {
		t.Errorf("got %#v, want a core event list with the note as message", stored)
	}
	if _, err := ToStorage(&corev1.Pod{}); err == nil {
		t.Errorf("got no error converting a pod, want one")
	}
	if _, err := FromStorage(&corev1.Pod{}); err == nil {
		t.Errorf("got no error converting a pod back, want one")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*eventsv1.Event)
		want   []string
	}{
		{"valid", func(*eventsv1.Event) {}, nil},
		{"no event time", func(e *eventsv1.Event) { e.EventTime = metav1.MicroTime{} }, []string{"eventTime"}},
		{"bad type", func(e *eventsv1.Event) { e.Type = "Info" }, []string{"type"}},
		{"deprecated fields set", func(e *eventsv1.Event) {
			e.DeprecatedCount = 1
			e.DeprecatedSource = corev1.EventSource{Component: "x"}
		}, []string{"deprecatedCount", "deprecatedSource"}},
		{"no reporting controller", func(e *eventsv1.Event) { e.ReportingController = "" }, []string{"reportingController", "reportingController", "reportingController"}},
		{"series count", func(e *eventsv1.Event) { e.Series.Count = 1 }, []string{"series.count"}},
		{"long note", func(e *eventsv1.Event) { e.Note = string(make([]byte, 1025)) }, []string{"note"}},
		{"regarding namespace", func(e *eventsv1.Event) { e.Regarding.Namespace = ""; e.Namespace = "team" }, []string{"regarding.namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvent()
			tt.mutate(ev)
			var got []string
			for _, e := range (EventStrategy{}).Validate(context.Background(), ev) {
				got = append(got, e.Field)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got error paths %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	old := newEvent()
	ev := old.DeepCopy()
	ev.Series = &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(time.Now())}
	if errs := (EventStrategy{}).ValidateUpdate(context.Background(), ev, old); len(errs) != 0 {
		t.Errorf("got errors %v for a series update, want none", errs)
	}
	ev.Note = "changed"
	errs := EventStrategy{}.ValidateUpdate(context.Background(), ev, old)
	if len(errs) != 1 || errs[0].Field != "note" {
		t.Errorf("got errors %v, want note immutable", errs)
	}
}

func TestFieldsAndTable(t *testing.T) {
	ev := newEvent()
	f := EventStrategy{}.SelectableFields(ev)
	for k, v := range map[string]string{"regarding.kind": "Pod", "regarding.name": "web", "reportingController": "skiff.dev/agent", "type": "Normal", "reason": "Pulling", "metadata.namespace": "default", "metadata.name": "web.1"} {
		if f.Get(k) != v {
			t.Errorf("got %s=%q, want %q", k, f.Get(k), v)
		}
	}
	if f.Has("involvedObject.kind") || f.Has("source") {
		t.Errorf("got core/v1 field names %v, want only events.k8s.io ones", f)
	}
	tbl, err := EventStrategy{}.ConvertToTable(context.Background(), &eventsv1.EventList{Items: []eventsv1.Event{*ev}}, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	cells := tbl.Rows[0].Cells
	if cells[1] != "Normal" || cells[3] != "pod/web" || cells[5] != "skiff.dev/agent, node-1" || cells[6] != "pulling nginx" || cells[8] != int64(2) {
		t.Errorf("got cells %v, want type, object, source, note and series count", cells)
	}
	if _, ok := tbl.Rows[0].Object.Object.(*eventsv1.Event); !ok {
		t.Errorf("got row object %T, want the events.k8s.io event", tbl.Rows[0].Object.Object)
	}
}
