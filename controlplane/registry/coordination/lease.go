// Package coordination holds the rules of coordination.k8s.io/v1 leases,
// which Skiff's components use for leader election and node heartbeats
// (pkg/apis/coordination/validation, pkg/registry/coordination/lease).
package coordination

import (
	"context"
	"fmt"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// LeaseStrategy holds the rules of leases.
type LeaseStrategy struct{}

// Default does nothing: leases have no defaults.
func (LeaseStrategy) Default(runtime.Object) {}

// PrepareForCreate does nothing: leases have no status.
func (LeaseStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate does nothing: leases have no status.
func (LeaseStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// Validate checks a new lease.
func (LeaseStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	l := obj.(*coordinationv1.Lease)
	allErrs := objectmeta.Validate(&l.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateLeaseSpec(&l.Spec, field.NewPath("spec"))...)
}

// ValidateUpdate checks a lease update.
func (LeaseStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	l, oldL := obj.(*coordinationv1.Lease), old.(*coordinationv1.Lease)
	allErrs := objectmeta.ValidateUpdate(&l.ObjectMeta, &oldL.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateLeaseSpec(&l.Spec, field.NewPath("spec"))...)
}

var leaseStrategies = []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}

func validateLeaseSpec(spec *coordinationv1.LeaseSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if d := spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := spec.LeaseTransitions; t != nil && *t < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if s := spec.Strategy; s != nil {
		// kube-apiserver reports these at spec.strategy.strategy.
		p := fldPath.Child("strategy").Child("strategy")
		if !strings.Contains(string(*s), "/") {
			known := false
			for _, v := range leaseStrategies {
				known = known || v == *s
			}
			if !known {
				allErrs = append(allErrs, field.NotSupported(p, *s, leaseStrategies))
			}
		} else {
			for _, msg := range validation.IsQualifiedName(string(*s)) {
				allErrs = append(allErrs, field.Invalid(p, *s, msg))
			}
		}
	}
	if h := spec.PreferredHolder; h != nil && *h != "" && (spec.Strategy == nil || *spec.Strategy == "") {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return allErrs
}

// AllowCreateOnUpdate is true for leases.
func (LeaseStrategy) AllowCreateOnUpdate() bool { return true }

// SelectableFields returns the metadata fields.
func (LeaseStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return objectmeta.Fields(&obj.(*coordinationv1.Lease).ObjectMeta, true)
}

// ConvertToTable renders leases (NAME, HOLDER, AGE).
func (LeaseStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.Column("Holder", "string", coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			l, ok := obj.(*coordinationv1.Lease)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("lease table: unexpected object %T", obj)
			}
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return metav1.TableRow{Cells: []any{l.Name, holder, table.Age(l.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}
