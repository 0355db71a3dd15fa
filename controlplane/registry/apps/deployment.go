package apps

import (
	"context"
	"fmt"

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

// DeploymentStrategy holds the rules of deployments
// (pkg/registry/apps/deployment), with the status and scale subresources.
type DeploymentStrategy struct{}

// Default applies the deployment defaults.
func (DeploymentStrategy) Default(obj runtime.Object) { DefaultDeployment(obj.(*appsv1.Deployment)) }

// PrepareForCreate clears status and sets generation 1.
func (DeploymentStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	d := obj.(*appsv1.Deployment)
	d.Status = appsv1.DeploymentStatus{}
	d.Generation = 1
}

// PrepareForUpdate keeps the old status and bumps generation when the spec
// or the annotations changed (annotations drive rollbacks).
func (DeploymentStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	d.Status = oldD.Status
	d.Generation = oldD.Generation
	if specChanged(d.Spec, oldD.Spec) || specChanged(d.Annotations, oldD.Annotations) {
		d.Generation = oldD.Generation + 1
	}
}

// Validate checks a new deployment.
func (DeploymentStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	d := obj.(*appsv1.Deployment)
	allErrs := objectmeta.Validate(&d.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateDeploymentSpec(&d.Spec, field.NewPath("spec"))...)
}

// ValidateUpdate checks a deployment update; the selector is immutable.
func (DeploymentStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	allErrs := objectmeta.ValidateUpdate(&d.ObjectMeta, &oldD.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateDeploymentSpec(&d.Spec, field.NewPath("spec"))...)
	return append(allErrs, apivalidation.ValidateImmutableField(d.Spec.Selector, oldD.Spec.Selector, field.NewPath("spec", "selector"))...)
}

// AllowCreateOnUpdate is false for deployments.
func (DeploymentStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields.
func (DeploymentStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return objectmeta.Fields(&obj.(*appsv1.Deployment).ObjectMeta, true)
}

// ConvertToTable renders deployments as kubectl get deployments prints them.
func (DeploymentStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{
			table.NameColumn(),
			table.Column("Ready", "string", "Number of the pod with ready state"),
			table.Column("Up-to-date", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"]),
			table.Column("Available", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"]),
			table.AgeColumn(),
			table.Wide("Containers", "string", "Names of each container in the template."),
			table.Wide("Images", "string", "Images referenced by each container in the template."),
			table.Wide("Selector", "string", appsv1.DeploymentSpec{}.SwaggerDoc()["selector"]),
		},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			d, ok := obj.(*appsv1.Deployment)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("deployment table: unexpected object %T", obj)
			}
			var desired int32
			if d.Spec.Replicas != nil {
				desired = *d.Spec.Replicas
			}
			selector := "<invalid>"
			if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
				selector = sel.String()
			}
			names, images := containerCells(d.Spec.Template.Spec.Containers)
			return metav1.TableRow{Cells: []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, desired),
				int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), table.Age(d.CreationTimestamp),
				names, images, selector}}, nil
		},
	}.Convert(obj, opts)
}

// PrepareForStatusUpdate keeps the old spec and labels.
func (DeploymentStrategy) PrepareForStatusUpdate(_ context.Context, obj, old runtime.Object) {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	d.Spec = oldD.Spec
	d.Labels = oldD.Labels
	d.Generation = oldD.Generation
}

// ValidateStatusUpdate checks a deployments/status update.
func (DeploymentStrategy) ValidateStatusUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	allErrs := objectmeta.ValidateUpdate(&d.ObjectMeta, &oldD.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateDeploymentStatus(&d.Status, field.NewPath("status"))...)
	if decremented(d.Status.CollisionCount, oldD.Status.CollisionCount) {
		var v int32
		if d.Status.CollisionCount != nil {
			v = *d.Status.CollisionCount
		}
		allErrs = append(allErrs, field.Invalid(field.NewPath("status", "collisionCount"), v, "cannot be decremented"))
	}
	return allErrs
}

func decremented(update, old *int32) bool {
	if update == nil {
		return old != nil
	}
	return old != nil && *update < *old
}

// Scale returns the deployment's autoscaling/v1 Scale.
func (DeploymentStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	d := obj.(*appsv1.Deployment)
	return scaleFor(&d.ObjectMeta, d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector)
}

// ValidateScale checks a Scale written to deployments/scale.
func (DeploymentStrategy) ValidateScale(s *autoscalingv1.Scale) field.ErrorList {
	return validateScale(s)
}

// ApplyScale sets spec.replicas from s; the server then runs the update
// path (PrepareForUpdate, ValidateUpdate) on the result.
func (DeploymentStrategy) ApplyScale(obj runtime.Object, s *autoscalingv1.Scale) {
	replicas := s.Spec.Replicas
	obj.(*appsv1.Deployment).Spec.Replicas = &replicas
}
