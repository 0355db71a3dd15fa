package core

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// NamespaceStrategy holds the rules of namespaces
// (pkg/registry/core/namespace/strategy.go), including the status and
// finalize subresources.
type NamespaceStrategy struct{}

// Default applies the namespace defaults.
func (NamespaceStrategy) Default(obj runtime.Object) { DefaultNamespace(obj.(*corev1.Namespace)) }

// PrepareForCreate sets status.phase Active and makes sure spec.finalizers
// holds "kubernetes".
func (NamespaceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return
		}
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
}

// PrepareForUpdate keeps the old finalizers and status: they change only
// through the finalize and status subresources.
func (NamespaceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec.Finalizers = oldNs.Spec.Finalizers
	ns.Status = oldNs.Status
}

// Validate checks a new namespace: a DNS-1123 label name and valid
// finalizer names.
func (NamespaceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ns := obj.(*corev1.Namespace)
	allErrs := objectmeta.Validate(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName, field.NewPath("metadata"))
	for _, f := range ns.Spec.Finalizers {
		// kube-apiserver reports these without the index.
		allErrs = append(allErrs, validateNamespaceFinalizerName(string(f), field.NewPath("spec", "finalizers"))...)
	}
	return allErrs
}

func validateNamespaceFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateFinalizerName(name, fldPath)
	return append(allErrs, objectmeta.ValidateFinalizerName(name, fldPath)...)
}

// ValidateUpdate checks a namespace update.
func (NamespaceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	return objectmeta.ValidateUpdate(&ns.ObjectMeta, &oldNs.ObjectMeta, field.NewPath("metadata"))
}

// AllowCreateOnUpdate is false for namespaces.
func (NamespaceStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns metadata.name, status.phase and the legacy
// "name" field kube-apiserver still accepts.
func (NamespaceStrategy) SelectableFields(obj runtime.Object) fields.Set {
	ns := obj.(*corev1.Namespace)
	set := fields.Set{"status.phase": string(ns.Status.Phase), "name": ns.Name}
	return objectmeta.AddFields(set, &ns.ObjectMeta, false)
}

// ConvertToTable renders namespaces as kubectl get namespaces prints them.
func (NamespaceStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.Column("Status", "string", "The status of the namespace"), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			ns, ok := obj.(*corev1.Namespace)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("namespace table: unexpected object %T", obj)
			}
			return metav1.TableRow{Cells: []any{ns.Name, string(ns.Status.Phase), table.Age(ns.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}

// PrepareForStatusUpdate keeps the old spec.
func (NamespaceStrategy) PrepareForStatusUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Namespace).Spec = old.(*corev1.Namespace).Spec
}

// ValidateStatusUpdate checks a namespaces/status update: the phase is
// Active until deletion starts, Terminating after.
func (NamespaceStrategy) ValidateStatusUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	allErrs := objectmeta.ValidateUpdate(&ns.ObjectMeta, &oldNs.ObjectMeta, field.NewPath("metadata"))
	if ns.DeletionTimestamp.IsZero() {
		if ns.Status.Phase != corev1.NamespaceActive {
			allErrs = append(allErrs, field.Invalid(field.NewPath("status", "Phase"), ns.Status.Phase, "may only be 'Active' if `deletionTimestamp` is empty"))
		}
	} else if ns.Status.Phase != corev1.NamespaceTerminating {
		allErrs = append(allErrs, field.Invalid(field.NewPath("status", "Phase"), ns.Status.Phase, "may only be 'Terminating' if `deletionTimestamp` is not empty"))
	}
	return allErrs
}

// PrepareForFinalizeUpdate keeps the old status: namespaces/finalize changes
// only spec.finalizers.
func (NamespaceStrategy) PrepareForFinalizeUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Namespace).Status = old.(*corev1.Namespace).Status
}

// ValidateFinalizeUpdate checks a namespaces/finalize update.
func (NamespaceStrategy) ValidateFinalizeUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	allErrs := objectmeta.ValidateUpdate(&ns.ObjectMeta, &oldNs.ObjectMeta, field.NewPath("metadata"))
	for i, f := range ns.Spec.Finalizers {
		allErrs = append(allErrs, validateNamespaceFinalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	return allErrs
}
