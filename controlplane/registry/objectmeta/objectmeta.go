// Package objectmeta holds the metadata rules that every resource strategy
// shares: ObjectMeta validation on create and update (names, generateName,
// namespace, labels, annotations, owner references, finalizers) and the
// metadata fields every field selector may name. The rules mirror
// k8s.io/kubernetes/pkg/apis/core/validation.ValidateObjectMeta, which wraps
// the apimachinery validation used here and adds the finalizer name check.
package objectmeta

import (
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Path is the field path of an object's metadata.
func Path() *field.Path { return field.NewPath("metadata") }

// Validate checks the metadata of a new object. nameFn checks the name (and
// generateName, with prefix true); namespaced says whether the object must
// have a namespace or must not.
func Validate(m *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(m, namespaced, nameFn, fldPath)
	for i := range m.Finalizers {
		allErrs = append(allErrs, ValidateFinalizerName(m.Finalizers[i], fldPath.Child("finalizers").Index(i))...)
	}
	return allErrs
}

// ValidateUpdate checks an update of metadata: name, namespace, uid,
// creationTimestamp and the deletion fields are immutable, and the new
// metadata must itself be valid.
func ValidateUpdate(newMeta, oldMeta *metav1.ObjectMeta, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(newMeta, oldMeta, fldPath)
	for i := range newMeta.Finalizers {
		allErrs = append(allErrs, ValidateFinalizerName(newMeta.Finalizers[i], fldPath.Child("finalizers").Index(i))...)
	}
	return allErrs
}

// standardFinalizers are the finalizer names that need no domain prefix
// (core helper.IsStandardFinalizerName).
func isStandardFinalizer(name string) bool {
	switch name {
	case "kubernetes", metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents:
		return true
	}
	return false
}

// ValidateFinalizerName rejects a finalizer name without a domain prefix
// unless it is one of the standard ones (kubernetes, orphan,
// foregroundDeletion).
func ValidateFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !isStandardFinalizer(name) {
		return field.ErrorList{field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// Fields returns the metadata fields every resource's field selector
// accepts: metadata.name and, for namespaced resources, metadata.namespace
// (k8s.io/apiserver generic.ObjectMetaFieldsSet).
func Fields(m *metav1.ObjectMeta, namespaced bool) fields.Set {
	return AddFields(make(fields.Set, 2), m, namespaced)
}

// AddFields adds the metadata fields to set and returns it.
func AddFields(set fields.Set, m *metav1.ObjectMeta, namespaced bool) fields.Set {
	set["metadata.name"] = m.Name
	if namespaced {
		set["metadata.namespace"] = m.Namespace
	}
	return set
}
