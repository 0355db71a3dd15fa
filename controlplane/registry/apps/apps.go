// Package apps holds the rules of the apps/v1 resources Skiff serves,
// deployments and replicasets: defaulting (pkg/apis/apps/v1/defaults.go and
// the pod template defaults), validation (pkg/apis/apps/validation), the
// status and scale subresources and the tables kubectl prints.
package apps

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/core"
	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
)

func int32Ptr(v int32) *int32 { return &v }

// DefaultDeployment sets replicas 1, the RollingUpdate strategy with 25%
// maxUnavailable and maxSurge, revisionHistoryLimit 10,
// progressDeadlineSeconds 600 and the pod template defaults.
func DefaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = int32Ptr(1)
	}
	s := &d.Spec.Strategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			v := intstr.FromString("25%")
			s.RollingUpdate.MaxUnavailable = &v
		}
		if s.RollingUpdate.MaxSurge == nil {
			v := intstr.FromString("25%")
			s.RollingUpdate.MaxSurge = &v
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = int32Ptr(600)
	}
	core.DefaultPodTemplateSpec(&d.Spec.Template)
}

// DefaultReplicaSet sets replicas 1 and the pod template defaults.
func DefaultReplicaSet(rs *appsv1.ReplicaSet) {
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = int32Ptr(1)
	}
	core.DefaultPodTemplateSpec(&rs.Spec.Template)
}

// validatePositiveIntOrPercent is ValidatePositiveIntOrPercent upstream.
func validatePositiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	switch v.Type {
	case intstr.String:
		var allErrs field.ErrorList
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			allErrs = append(allErrs, field.Invalid(fldPath, v, msg))
		}
		return allErrs
	case intstr.Int:
		return apivalidation.ValidateNonnegativeField(int64(v.IntValue()), fldPath)
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%%')")}
}

func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	return v.IntValue()
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
		return nil
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			return field.ErrorList{field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil")}
		}
		ru, p := s.RollingUpdate, fldPath.Child("rollingUpdate")
		var maxUnavailable, maxSurge intstr.IntOrString
		if ru.MaxUnavailable != nil {
			maxUnavailable = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			maxSurge = *ru.MaxSurge
		}
		allErrs := validatePositiveIntOrPercent(maxUnavailable, p.Child("maxUnavailable"))
		allErrs = append(allErrs, validatePositiveIntOrPercent(maxSurge, p.Child("maxSurge"))...)
		if intOrPercentValue(maxUnavailable) == 0 && intOrPercentValue(maxSurge) == 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		if n, ok := percentValue(maxUnavailable); ok && n > 100 {
			allErrs = append(allErrs, field.Invalid(p.Child("maxUnavailable"), maxUnavailable, "must not be greater than 100%"))
		}
		return allErrs
	}
	return field.ErrorList{field.NotSupported(fldPath, s.Type, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)})}
}

// validateSelectorAndTemplate checks replicas, the selector (required,
// valid, not empty) and the template, which the selector must match.
func validateSelectorAndTemplate(replicas *int32, selector *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if replicas == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("replicas"), ""))
	} else {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*replicas), fldPath.Child("replicas"))...)
	}
	if selector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), selector, "empty selector is invalid for deployment"))
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return append(allErrs, field.Invalid(fldPath.Child("selector"), selector, "invalid label selector"))
	}
	tp := fldPath.Child("template")
	if !sel.Empty() && !sel.Matches(labels.Set(tmpl.Labels)) {
		allErrs = append(allErrs, field.Invalid(tp.Child("metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, core.ValidatePodTemplateSpec(tmpl, tp)...)
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(tp.Child("spec", "restartPolicy"), tmpl.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if tmpl.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(tp.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return allErrs
}

func validateDeploymentSpec(spec *appsv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateSelectorAndTemplate(spec.Replicas, spec.Selector, &spec.Template, fldPath)
	allErrs = append(allErrs, validateDeploymentStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	if p := spec.ProgressDeadlineSeconds; p != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*p), fldPath.Child("progressDeadlineSeconds"))...)
		if *p <= spec.MinReadySeconds {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *p, "must be greater than minReadySeconds"))
		}
	}
	return allErrs
}

func validateDeploymentStatus(st *appsv1.DeploymentStatus, fldPath *field.Path) field.ErrorList {
	nonneg := func(v int64, name string) field.ErrorList {
		return apivalidation.ValidateNonnegativeField(v, fldPath.Child(name))
	}
	allErrs := nonneg(st.ObservedGeneration, "observedGeneration")
	allErrs = append(allErrs, nonneg(int64(st.Replicas), "replicas")...)
	allErrs = append(allErrs, nonneg(int64(st.UpdatedReplicas), "updatedReplicas")...)
	allErrs = append(allErrs, nonneg(int64(st.ReadyReplicas), "readyReplicas")...)
	allErrs = append(allErrs, nonneg(int64(st.AvailableReplicas), "availableReplicas")...)
	allErrs = append(allErrs, nonneg(int64(st.UnavailableReplicas), "unavailableReplicas")...)
	if st.TerminatingReplicas != nil {
		allErrs = append(allErrs, nonneg(int64(*st.TerminatingReplicas), "terminatingReplicas")...)
	}
	if st.CollisionCount != nil {
		allErrs = append(allErrs, nonneg(int64(*st.CollisionCount), "collisionCount")...)
	}
	const msg = "cannot be greater than status.replicas"
	if st.UpdatedReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("updatedReplicas"), st.UpdatedReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return allErrs
}

func validateReplicaSetStatus(st *appsv1.ReplicaSetStatus, fldPath *field.Path) field.ErrorList {
	nonneg := func(v int64, name string) field.ErrorList {
		return apivalidation.ValidateNonnegativeField(v, fldPath.Child(name))
	}
	allErrs := nonneg(int64(st.Replicas), "replicas")
	allErrs = append(allErrs, nonneg(int64(st.FullyLabeledReplicas), "fullyLabeledReplicas")...)
	allErrs = append(allErrs, nonneg(int64(st.ReadyReplicas), "readyReplicas")...)
	allErrs = append(allErrs, nonneg(int64(st.AvailableReplicas), "availableReplicas")...)
	allErrs = append(allErrs, nonneg(st.ObservedGeneration, "observedGeneration")...)
	if st.TerminatingReplicas != nil {
		allErrs = append(allErrs, nonneg(int64(*st.TerminatingReplicas), "terminatingReplicas")...)
	}
	const msg = "cannot be greater than status.replicas"
	if st.FullyLabeledReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("fullyLabeledReplicas"), st.FullyLabeledReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return allErrs
}

// scaleFor builds the autoscaling/v1 Scale of a workload.
func scaleFor(m *metav1.ObjectMeta, replicas *int32, statusReplicas int32, selector *metav1.LabelSelector) (*autoscalingv1.Scale, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("convert selector of %s: %w", m.Name, err)
	}
	var r int32
	if replicas != nil {
		r = *replicas
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID,
			ResourceVersion: m.ResourceVersion, CreationTimestamp: m.CreationTimestamp,
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: r},
		Status: autoscalingv1.ScaleStatus{Replicas: statusReplicas, Selector: sel.String()},
	}, nil
}

// validateScale checks a Scale sent to a scale subresource (ValidateScale
// upstream).
func validateScale(s *autoscalingv1.Scale) field.ErrorList {
	allErrs := objectmeta.Validate(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, apivalidation.ValidateNonnegativeField(int64(s.Spec.Replicas), field.NewPath("spec", "replicas"))...)
}

// containerCells joins container names and images for the -o wide
// CONTAINERS and IMAGES columns.
func containerCells(containers []corev1.Container) (string, string) {
	names := make([]string, len(containers))
	images := make([]string, len(containers))
	for i, c := range containers {
		names[i], images[i] = c.Name, c.Image
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func specChanged(a, b any) bool { return !apiequality.Semantic.DeepEqual(a, b) }
