package apps

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// ReplicaSetStrategy holds the rules of replicasets
// (pkg/registry/apps/replicaset), with the status and scale subresources.
type ReplicaSetStrategy struct{}

// Default applies the replicaset defaults.
func (ReplicaSetStrategy) Default(obj runtime.Object) { DefaultReplicaSet(obj.(*appsv1.ReplicaSet)) }

// PrepareForCreate clears status and sets generation 1.
func (ReplicaSetStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	rs.Status = appsv1.ReplicaSetStatus{}
	rs.Generation = 1
}

// PrepareForUpdate keeps the old status and bumps generation when the spec
// changed.
func (ReplicaSetStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	rs.Status = oldRS.Status
	rs.Generation = oldRS.Generation
	if specChanged(rs.Spec, oldRS.Spec) {
		rs.Generation = oldRS.Generation + 1
	}
}

// Validate checks a new replicaset.
func (ReplicaSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	allErrs := objectmeta.Validate(&rs.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
}

func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateSelectorAndTemplate(spec.Replicas, spec.Selector, &spec.Template, fldPath)
	return append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
}

// ValidateUpdate checks a replicaset update; the selector is immutable.
func (ReplicaSetStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	allErrs := objectmeta.ValidateUpdate(&rs.ObjectMeta, &oldRS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
	return append(allErrs, apivalidation.ValidateImmutableField(rs.Spec.Selector, oldRS.Spec.Selector, field.NewPath("spec", "selector"))...)
}

// AllowCreateOnUpdate is false for replicasets.
func (ReplicaSetStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields and status.replicas.
func (ReplicaSetStrategy) SelectableFields(obj runtime.Object) fields.Set {
	rs := obj.(*appsv1.ReplicaSet)
	set := fields.Set{"status.replicas": strconv.Itoa(int(rs.Status.Replicas))}
	return objectmeta.AddFields(set, &rs.ObjectMeta, true)
}

// ConvertToTable renders replicasets as kubectl get replicasets prints them.
func (ReplicaSetStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{
			table.NameColumn(),
			table.Column("Desired", "integer", appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"]),
			table.Column("Current", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"]),
			table.Column("Ready", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"]),
			table.AgeColumn(),
			table.Wide("Containers", "string", "Names of each container in the template."),
			table.Wide("Images", "string", "Images referenced by each container in the template."),
			table.Wide("Selector", "string", appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"]),
		},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			rs, ok := obj.(*appsv1.ReplicaSet)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("replicaset table: unexpected object %T", obj)
			}
			var desired int32
			if rs.Spec.Replicas != nil {
				desired = *rs.Spec.Replicas
			}
			names, images := containerCells(rs.Spec.Template.Spec.Containers)
			return metav1.TableRow{Cells: []any{rs.Name, int64(desired), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
				table.Age(rs.CreationTimestamp), names, images, metav1.FormatLabelSelector(rs.Spec.Selector)}}, nil
		},
	}.Convert(obj, opts)
}

// PrepareForStatusUpdate keeps the old spec.
func (ReplicaSetStrategy) PrepareForStatusUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	rs.Spec = oldRS.Spec
	rs.Generation = oldRS.Generation
}

// ValidateStatusUpdate checks a replicasets/status update.
func (ReplicaSetStrategy) ValidateStatusUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	allErrs := objectmeta.ValidateUpdate(&rs.ObjectMeta, &oldRS.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateReplicaSetStatus(&rs.Status, field.NewPath("status"))...)
}

// Scale returns the replicaset's autoscaling/v1 Scale.
func (ReplicaSetStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	rs := obj.(*appsv1.ReplicaSet)
	return scaleFor(&rs.ObjectMeta, rs.Spec.Replicas, rs.Status.Replicas, rs.Spec.Selector)
}

// ValidateScale checks a Scale written to replicasets/scale.
func (ReplicaSetStrategy) ValidateScale(s *autoscalingv1.Scale) field.ErrorList {
	return validateScale(s)
}

// ApplyScale sets spec.replicas from s.
func (ReplicaSetStrategy) ApplyScale(obj runtime.Object, s *autoscalingv1.Scale) {
	replicas := s.Spec.Replicas
	obj.(*appsv1.ReplicaSet).Spec.Replicas = &replicas
}
