package core

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// Length limits of event fields (pkg/apis/core/validation/events.go).
const (
	reportingInstanceLengthLimit = 128
	actionLengthLimit            = 128
	reasonLengthLimit            = 128
	noteLengthLimit              = 1024
)

// EventStrategy holds the rules of core/v1 events.
type EventStrategy struct{}

// Default does nothing: core/v1 events have no defaults.
func (EventStrategy) Default(runtime.Object) {}

// PrepareForCreate does nothing: events have no status.
func (EventStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate does nothing: events have no status.
func (EventStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// Validate checks a new core/v1 event.
func (EventStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateEvent(obj.(*corev1.Event), false)
}

// ValidateUpdate checks a core/v1 event update.
func (EventStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateEventUpdate(obj.(*corev1.Event), old.(*corev1.Event), false)
}

// ValidateEvent checks a new event as ValidateEventCreate does. eventsAPI
// selects the stricter rules of events.k8s.io/v1 (the event is then the
// core form of an events.k8s.io object, and field names are those of that
// API). Like kube-apiserver's generic store, it also checks the metadata
// every object must have (a name usable as a path segment).
func ValidateEvent(ev *corev1.Event, eventsAPI bool) field.ErrorList {
	nameFn := path.ValidatePathSegmentName
	if eventsAPI {
		nameFn = apivalidation.NameIsDNSSubdomain
	}
	allErrs := legacyValidateEvent(ev, eventsAPI)
	allErrs = append(allErrs, objectmeta.Validate(&ev.ObjectMeta, true, nameFn, field.NewPath("metadata"))...)
	if !eventsAPI {
		return allErrs
	}
	allErrs = append(allErrs, validateEventSeries(ev)...)
	if ev.EventTime.IsZero() {
		allErrs = append(allErrs, field.Required(field.NewPath("eventTime"), ""))
	}
	if ev.Type != corev1.EventTypeNormal && ev.Type != corev1.EventTypeWarning {
		allErrs = append(allErrs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", ev.Type)))
	}
	if !ev.FirstTimestamp.IsZero() {
		allErrs = append(allErrs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !ev.LastTimestamp.IsZero() {
		allErrs = append(allErrs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if ev.Count != 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if ev.Source.Component != "" || ev.Source.Host != "" {
		allErrs = append(allErrs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return allErrs
}

// ValidateEventUpdate checks an event update (ValidateEventUpdate
// upstream): for events.k8s.io/v1 nearly every field is immutable.
func ValidateEventUpdate(ev, old *corev1.Event, eventsAPI bool) field.ErrorList {
	allErrs := objectmeta.ValidateUpdate(&ev.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, legacyValidateEvent(ev, eventsAPI)...)
	if !eventsAPI {
		return allErrs
	}
	if !apiequality.Semantic.DeepEqual(ev.Series, old.Series) {
		allErrs = append(allErrs, validateEventSeries(ev)...)
	}
	immutable := func(n, o any, name string) {
		allErrs = append(allErrs, apivalidation.ValidateImmutableField(n, o, field.NewPath(name))...)
	}
	immutable(ev.InvolvedObject, old.InvolvedObject, "involvedObject")
	immutable(ev.Reason, old.Reason, "reason")
	immutable(ev.Message, old.Message, "message")
	immutable(ev.Source, old.Source, "source")
	immutable(ev.FirstTimestamp, old.FirstTimestamp, "firstTimestamp")
	immutable(ev.LastTimestamp, old.LastTimestamp, "lastTimestamp")
	immutable(ev.Count, old.Count, "count")
	immutable(ev.Type, old.Type, "type")
	if !ev.EventTime.Truncate(time.Microsecond).UTC().Equal(old.EventTime.Truncate(time.Microsecond).UTC()) {
		immutable(ev.EventTime, old.EventTime, "eventTime")
	}
	immutable(ev.Action, old.Action, "action")
	immutable(ev.Related, old.Related, "related")
	immutable(ev.ReportingController, old.ReportingController, "reportingController")
	immutable(ev.ReportingInstance, old.ReportingInstance, "reportingInstance")
	return allErrs
}

func validateEventSeries(ev *corev1.Event) field.ErrorList {
	if ev.Series == nil {
		return nil
	}
	var allErrs field.ErrorList
	if ev.Series.Count < 2 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
	}
	if ev.Series.LastObservedTime.IsZero() {
		allErrs = append(allErrs, field.Required(field.NewPath("series.lastObservedTime"), ""))
	}
	return allErrs
}

func legacyValidateEvent(ev *corev1.Event, eventsAPI bool) field.ErrorList {
	var allErrs field.ErrorList
	reportingField := "reportingController"
	if !eventsAPI {
		reportingField = "reportingComponent"
	}
	nsPath := field.NewPath("involvedObject", "namespace")
	if ev.EventTime.IsZero() {
		if ev.InvolvedObject.Namespace == "" {
			if ev.Namespace != metav1.NamespaceNone && ev.Namespace != metav1.NamespaceDefault {
				allErrs = append(allErrs, field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace"))
			}
		} else if ev.Namespace != ev.InvolvedObject.Namespace {
			allErrs = append(allErrs, field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace"))
		}
		return allErrs
	}
	if ev.InvolvedObject.Namespace == "" && ev.Namespace != metav1.NamespaceDefault && ev.Namespace != metav1.NamespaceSystem {
		allErrs = append(allErrs, field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	if ev.ReportingController == "" {
		allErrs = append(allErrs, field.Required(field.NewPath(reportingField), ""))
	}
	allErrs = append(allErrs, validateQualifiedName(ev.ReportingController, field.NewPath(reportingField))...)
	if ev.ReportingInstance == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("reportingInstance"), ""))
	}
	if len(ev.ReportingInstance) > reportingInstanceLengthLimit {
		allErrs = append(allErrs, field.Invalid(field.NewPath("reportingInstance"), "", fmt.Sprintf("can have at most %v characters", reportingInstanceLengthLimit)))
	}
	if ev.Action == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("action"), ""))
	}
	if len(ev.Action) > actionLengthLimit {
		allErrs = append(allErrs, field.Invalid(field.NewPath("action"), "", fmt.Sprintf("can have at most %v characters", actionLengthLimit)))
	}
	if ev.Reason == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("reason"), ""))
	}
	if len(ev.Reason) > reasonLengthLimit {
		allErrs = append(allErrs, field.Invalid(field.NewPath("reason"), "", fmt.Sprintf("can have at most %v characters", reasonLengthLimit)))
	}
	if len(ev.Message) > noteLengthLimit {
		allErrs = append(allErrs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", noteLengthLimit)))
	}
	return allErrs
}

// AllowCreateOnUpdate is true for events.
func (EventStrategy) AllowCreateOnUpdate() bool { return true }

// SelectableFields returns the fields of EventFields.
func (EventStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return EventFields(obj.(*corev1.Event))
}

// EventFields returns the fields an event field selector may name
// (ToSelectableFields upstream), in their core/v1 names.
func EventFields(ev *corev1.Event) fields.Set {
	source := ev.Source.Component
	if source == "" {
		source = ev.ReportingController
	}
	set := fields.Set{
		"involvedObject.kind":            ev.InvolvedObject.Kind,
		"involvedObject.namespace":       ev.InvolvedObject.Namespace,
		"involvedObject.name":            ev.InvolvedObject.Name,
		"involvedObject.uid":             string(ev.InvolvedObject.UID),
		"involvedObject.apiVersion":      ev.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": ev.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       ev.InvolvedObject.FieldPath,
		"reason":                         ev.Reason,
		"reportingComponent":             ev.ReportingController,
		"source":                         source,
		"type":                           ev.Type,
	}
	return objectmeta.AddFields(set, &ev.ObjectMeta, true)
}

// ConvertToTable renders events as kubectl get events prints them.
func (EventStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return EventPrinter(func(obj runtime.Object) (*corev1.Event, error) {
		ev, ok := obj.(*corev1.Event)
		if !ok {
			return nil, fmt.Errorf("event table: unexpected object %T", obj)
		}
		return ev, nil
	}).Convert(obj, opts)
}

// EventPrinter is the event table; toCore turns each listed object into a
// core/v1 event (events.k8s.io objects print the same columns).
func EventPrinter(toCore func(runtime.Object) (*corev1.Event, error)) table.Printer {
	doc := corev1.Event{}.SwaggerDoc()
	name := table.NameColumn()
	name.Priority = 1
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{
			table.Column("Last Seen", "string", doc["lastTimestamp"]),
			table.Column("Type", "string", doc["type"]),
			table.Column("Reason", "string", doc["reason"]),
			table.Column("Object", "string", doc["involvedObject"]),
			table.Wide("Subobject", "string", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]),
			table.Wide("Source", "string", doc["source"]),
			table.Column("Message", "string", doc["message"]),
			table.Wide("First Seen", "string", doc["firstTimestamp"]),
			table.Wide("Count", "string", doc["count"]),
			name,
		},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			ev, err := toCore(obj)
			if err != nil {
				return metav1.TableRow{}, err
			}
			return eventRow(ev), nil
		},
	}
}

func eventRow(ev *corev1.Event) metav1.TableRow {
	first := table.Age(ev.FirstTimestamp)
	if ev.FirstTimestamp.IsZero() {
		first = table.MicroAge(ev.EventTime)
	}
	last := table.Age(ev.LastTimestamp)
	if ev.LastTimestamp.IsZero() {
		last = first
	}
	count := ev.Count
	if ev.Series != nil {
		last = table.MicroAge(ev.Series.LastObservedTime)
		count = ev.Series.Count
	} else if count == 0 {
		count = 1
	}
	target := strings.ToLower(ev.InvolvedObject.Kind)
	if ev.InvolvedObject.Name != "" {
		target += "/" + ev.InvolvedObject.Name
	}
	component := ev.Source.Component
	if component == "" {
		component = ev.ReportingController
	}
	instance := ev.Source.Host
	if instance == "" {
		instance = ev.ReportingInstance
	}
	source := component
	if instance != "" {
		source = component + ", " + instance
	}
	return metav1.TableRow{Cells: []any{last, ev.Type, ev.Reason, target, ev.InvolvedObject.FieldPath, source,
		strings.TrimSpace(ev.Message), first, int64(count), ev.Name}}
}
