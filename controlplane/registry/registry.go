// Package registry describes the API resources Skiff serves and the rules of
// each: its scope, names, defaulting, validation, which fields a client may
// change through which endpoint, field selectors and the table kubectl prints.
//
// The API server (controlplane/apiserver) is generic: it decodes, calls the
// resource's Strategy, stores and encodes. Everything that differs from one
// resource to another lives behind Strategy, in the subpackages here, one per
// API group. The names follow kube-apiserver's rest strategies
// (k8s.io/apiserver/pkg/registry/rest) so that readers of either find their
// way in the other.
package registry

import (
	"context"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one served API resource.
type Resource struct {
	// GroupVersion and Kind of the objects as clients see them.
	GroupVersion schema.GroupVersion
	Kind         string
	// Name is the plural resource name used in paths ("pods").
	Name         string
	SingularName string
	ShortNames   []string
	Categories   []string
	Namespaced   bool
	// Verbs as discovery lists them ("create", "delete", "deletecollection",
	// "get", "list", "patch", "update", "watch").
	Verbs []string
	// Subresources served besides the main resource ("status", "scale",
	// "binding", "finalize").
	Subresources []string

	// StorageResource is the etcd key segment
	// (/registry/<StorageResource>/...). It is Name unless two API versions
	// share storage: events.k8s.io/v1 events are stored as core/v1 events,
	// and ToStorage/FromStorage convert between the two.
	StorageResource string
	ToStorage       func(runtime.Object) (runtime.Object, error)
	FromStorage     func(runtime.Object) (runtime.Object, error)

	// New and NewList return empty typed objects (&corev1.Pod{},
	// &corev1.PodList{}).
	New     func() runtime.Object
	NewList func() runtime.Object

	Strategy Strategy
}

// GroupVersionKind of the resource's objects.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion.WithKind(r.Kind)
}

// GroupVersionResource of the resource.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return r.GroupVersion.WithResource(r.Name)
}

// HasSubresource reports whether sub is served for this resource.
func (r *Resource) HasSubresource(sub string) bool {
	for _, s := range r.Subresources {
		if s == sub {
			return true
		}
	}
	return false
}

// Strategy holds the resource-specific rules the generic API server applies.
// Generic metadata handling (uid, creationTimestamp, generateName,
// resourceVersion, finalizers, managedFields) is the server's; Strategy sees
// objects whose ObjectMeta the server has already filled.
type Strategy interface {
	// Default sets unset fields to their Kubernetes defaults. It is called on
	// every object decoded from a client request, for create and update
	// alike, before PrepareFor* and validation.
	Default(obj runtime.Object)

	// PrepareForCreate clears what a client may not set on create (status,
	// for resources with a status subresource) and sets metadata.generation
	// to 1 for resources that track it.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate carries over from old what an update of the main
	// resource may not change (status, for resources with a status
	// subresource) and bumps metadata.generation when the spec changed.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)

	// Validate checks a new object. Field paths follow the JSON names
	// (field.NewPath("spec").Child("containers").Index(0).Child("image")).
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update, including immutable fields.
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList

	// AllowCreateOnUpdate reports whether a PUT of a missing object creates
	// it (true for endpoints, leases and events in Kubernetes).
	AllowCreateOnUpdate() bool

	// SelectableFields returns the fields a fieldSelector may name, with
	// their values for obj. Every resource has metadata.name and, when
	// namespaced, metadata.namespace. A selector naming another field is
	// rejected with 400.
	SelectableFields(obj runtime.Object) fields.Set

	// ConvertToTable renders obj (a single object or a list) as the table
	// kubectl get prints, with the columns kube-apiserver uses for the
	// resource. Column priority 1 marks the -o wide columns.
	ConvertToTable(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error)
}

// StatusStrategy is implemented by resources with a status subresource.
type StatusStrategy interface {
	// PrepareForStatusUpdate carries over from old everything but status
	// (and metadata a status update may not change).
	PrepareForStatusUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateStatusUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

// GracefulDeleter is implemented by resources whose delete may be deferred
// (pods): the object is marked with deletionTimestamp and
// deletionGracePeriodSeconds and removed later by its owner (the kubelet, or
// here the node agent) or once the period is zero.
type GracefulDeleter interface {
	// GracePeriod returns the grace period to use for deleting obj given the
	// client's requested period (nil when none was given), and whether the
	// delete is graceful at all. A pod that was never scheduled or has
	// finished is deleted at once.
	GracePeriod(obj runtime.Object, requested *int64) (seconds int64, graceful bool)
}

// FinalizeStrategy is implemented by namespaces for namespaces/finalize,
// which changes only spec.finalizers.
type FinalizeStrategy interface {
	// PrepareForFinalizeUpdate carries over from old everything but
	// spec.finalizers.
	PrepareForFinalizeUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateFinalizeUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

// Binder is implemented by pods for pods/binding (a create of a
// corev1.Binding named after the pod). The server decodes the body into
// NewBinding, validates it, reads the pod, calls ApplyBinding and writes the
// pod back (with the binding's resourceVersion/uid as preconditions when
// set), answering 201 with a Success Status as kube-apiserver does.
type Binder interface {
	NewBinding() runtime.Object
	ValidateBinding(ctx context.Context, binding runtime.Object) field.ErrorList
	// ApplyBinding sets the pod's node from the binding. It returns an
	// *errors.StatusError (409 Conflict) when the pod cannot be bound: being
	// deleted, already bound, or still gated.
	ApplyBinding(ctx context.Context, pod, binding runtime.Object) error
}

// Scaler is implemented by resources with a scale subresource
// (deployments, replicasets). GET .../scale answers Scale(obj); PUT or PATCH
// decodes an autoscaling/v1 Scale, checks it with ValidateScale, then
// ApplyScale on the current object and runs the normal update path
// (PrepareForUpdate, ValidateUpdate) before storing, and answers with
// Scale(updated).
type Scaler interface {
	Scale(obj runtime.Object) (*autoscalingv1.Scale, error)
	ValidateScale(scale *autoscalingv1.Scale) field.ErrorList
	ApplyScale(obj runtime.Object, scale *autoscalingv1.Scale)
}

// Find returns the served resource with the given group, version and
// plural name, or nil.
func Find(resources []*Resource, gvr schema.GroupVersionResource) *Resource {
	for _, r := range resources {
		if r.GroupVersionResource() == gvr {
			return r
		}
	}
	return nil
}
