// Package events holds the rules of events.k8s.io/v1 events. They are
// stored as core/v1 events, so a client can write an event through one API
// and read it through the other: ToCore and FromCore convert between the
// two as kube-apiserver's pkg/apis/events/v1 conversion does (note/message,
// regarding/involvedObject, deprecatedSource/source,
// reportingController/reportingComponent, deprecatedFirstTimestamp,
// deprecatedLastTimestamp and deprecatedCount). Validation is the core
// event validation in its stricter events.k8s.io mode.
package events

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/core"
)

// ToCore converts an events.k8s.io/v1 event to the core/v1 event it is
// stored as.
func ToCore(in *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:          *in.ObjectMeta.DeepCopy(),
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		r := *in.Related
		out.Related = &r
	}
	return out
}

// FromCore converts a stored core/v1 event to events.k8s.io/v1.
func FromCore(in *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
		ObjectMeta:               *in.ObjectMeta.DeepCopy(),
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		r := *in.Related
		out.Related = &r
	}
	return out
}

// ToStorage converts an *eventsv1.Event (or list) to its stored core/v1
// form; it is the Resource's ToStorage.
func ToStorage(obj runtime.Object) (runtime.Object, error) {
	switch o := obj.(type) {
	case *eventsv1.Event:
		return ToCore(o), nil
	case *eventsv1.EventList:
		out := &corev1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"}, ListMeta: o.ListMeta}
		for i := range o.Items {
			out.Items = append(out.Items, *ToCore(&o.Items[i]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("convert %T to core/v1 event: unexpected type", obj)
}

// FromStorage converts a stored *corev1.Event (or list) to
// events.k8s.io/v1; it is the Resource's FromStorage.
func FromStorage(obj runtime.Object) (runtime.Object, error) {
	switch o := obj.(type) {
	case *corev1.Event:
		return FromCore(o), nil
	case *corev1.EventList:
		out := &eventsv1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "EventList"}, ListMeta: o.ListMeta}
		for i := range o.Items {
			out.Items = append(out.Items, *FromCore(&o.Items[i]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("convert %T to events.k8s.io/v1 event: unexpected type", obj)
}

// fieldLabels maps events.k8s.io field selector names to the core/v1 ones
// (AddFieldLabelConversionsForEvent upstream).
var fieldLabels = map[string]string{
	"regarding.kind":            "involvedObject.kind",
	"regarding.namespace":       "involvedObject.namespace",
	"regarding.name":            "involvedObject.name",
	"regarding.uid":             "involvedObject.uid",
	"regarding.apiVersion":      "involvedObject.apiVersion",
	"regarding.resourceVersion": "involvedObject.resourceVersion",
	"regarding.fieldPath":       "involvedObject.fieldPath",
	"reportingController":       "reportingComponent",
	"reason":                    "reason",
	"type":                      "type",
	"metadata.namespace":        "metadata.namespace",
	"metadata.name":             "metadata.name",
}

// EventStrategy holds the rules of events.k8s.io/v1 events. It works on
// *eventsv1.Event objects, converting to core/v1 where the rules are shared.
type EventStrategy struct{}

// Default does nothing: events.k8s.io/v1 events have no defaults.
func (EventStrategy) Default(runtime.Object) {}

// PrepareForCreate does nothing: events have no status.
func (EventStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate does nothing: events have no status.
func (EventStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// Validate checks a new event with the events.k8s.io rules (eventTime,
// reportingController, reportingInstance, action and reason required; the
// deprecated fields unset).
func (EventStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return renamePaths(core.ValidateEvent(ToCore(obj.(*eventsv1.Event)), true))
}

// ValidateUpdate checks an event update: nearly everything is immutable.
func (EventStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return renamePaths(core.ValidateEventUpdate(ToCore(obj.(*eventsv1.Event)), ToCore(old.(*eventsv1.Event)), true))
}

// renamePaths gives errors about fields whose names differ between the two
// APIs their events.k8s.io names, as the client wrote them.
func renamePaths(errs field.ErrorList) field.ErrorList {
	names := map[string]string{
		"involvedObject":           "regarding",
		"involvedObject.namespace": "regarding.namespace",
		"message":                  "note",
		"source":                   "deprecatedSource",
		"firstTimestamp":           "deprecatedFirstTimestamp",
		"lastTimestamp":            "deprecatedLastTimestamp",
		"count":                    "deprecatedCount",
	}
	for _, e := range errs {
		if n, ok := names[e.Field]; ok {
			e.Field = n
		}
	}
	return errs
}

// AllowCreateOnUpdate is true for events.
func (EventStrategy) AllowCreateOnUpdate() bool { return true }

// SelectableFields returns the fields an events.k8s.io field selector may
// name, in their events.k8s.io names (regarding.*, reportingController,
// reason, type and the metadata fields), as kube-apiserver's field label
// conversion allows.
func (EventStrategy) SelectableFields(obj runtime.Object) fields.Set {
	coreFields := core.EventFields(ToCore(obj.(*eventsv1.Event)))
	set := make(fields.Set, len(fieldLabels))
	for v1name, coreName := range fieldLabels {
		set[v1name] = coreFields[coreName]
	}
	return set
}

// ConvertToTable renders events with the same columns as core/v1 events.
func (EventStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return core.EventPrinter(func(obj runtime.Object) (*corev1.Event, error) {
		ev, ok := obj.(*eventsv1.Event)
		if !ok {
			return nil, fmt.Errorf("event table: unexpected object %T", obj)
		}
		return ToCore(ev), nil
	}).Convert(obj, opts)
}
