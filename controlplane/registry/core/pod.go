package core

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
)

// Built-in priority classes. Skiff serves no PriorityClass resource, so
// these two (which kube-apiserver creates at start-up) and the empty name
// are the only ones a pod may name.
const (
	SystemClusterCritical         = "system-cluster-critical"
	SystemNodeCritical            = "system-node-critical"
	systemClusterCriticalPriority = int32(2000000000)
	systemNodeCriticalPriority    = int32(2000001000)
)

// DefaultTolerationSeconds is the default of kube-apiserver's
// --default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds (the DefaultTolerationSeconds
// admission plugin).
const DefaultTolerationSeconds = int64(300)

// PodStrategy holds the rules of pods (pkg/registry/core/pod/strategy.go).
// Besides the Strategy methods it implements the status strategy, graceful
// deletion and the pods/binding subresource.
type PodStrategy struct {
	// NotReadyTolerationSeconds and UnreachableTolerationSeconds are the
	// tolerationSeconds of the node.kubernetes.io/not-ready and
	// node.kubernetes.io/unreachable NoExecute tolerations added to pods
	// that have none (kube-apiserver's
	// --default-not-ready-toleration-seconds and
	// --default-unreachable-toleration-seconds). Nil is
	// DefaultTolerationSeconds; labs shorten them so that pods leave a
	// lost node sooner.
	NotReadyTolerationSeconds    *int64
	UnreachableTolerationSeconds *int64
}

// tolerationSeconds returns the configured seconds of the two default
// tolerations.
func (s PodStrategy) tolerationSeconds() (notReady, unreachable int64) {
	notReady, unreachable = DefaultTolerationSeconds, DefaultTolerationSeconds
	if s.NotReadyTolerationSeconds != nil {
		notReady = *s.NotReadyTolerationSeconds
	}
	if s.UnreachableTolerationSeconds != nil {
		unreachable = *s.UnreachableTolerationSeconds
	}
	return notReady, unreachable
}

// Default applies the pod defaults.
func (PodStrategy) Default(obj runtime.Object) { DefaultPod(obj.(*corev1.Pod)) }

// PrepareForCreate sets generation 1, resets status to phase Pending with
// the pod's QoS class, and does what kube-apiserver's admission chain would:
// the priority from the priority class (Priority plugin) and the
// not-ready/unreachable tolerations (DefaultTolerationSeconds plugin).
func (s PodStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	pod.Generation = 1
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	applySchedulingGatedCondition(pod)
	admitPriority(pod)
	addDefaultTolerations(pod, s)
	pod.Status.QOSClass = PodQOS(pod)
}

// admitPriority fills spec.priority and spec.preemptionPolicy from the
// priority class, as the Priority admission plugin does. A priority the
// client set that disagrees is left for validation to reject.
func admitPriority(pod *corev1.Pod) {
	priority, ok := priorityOf(pod.Spec.PriorityClassName)
	if !ok {
		return
	}
	if pod.Spec.Priority == nil {
		pod.Spec.Priority = &priority
	}
	if pod.Spec.PreemptionPolicy == nil {
		policy := corev1.PreemptLowerPriority
		pod.Spec.PreemptionPolicy = &policy
	}
}

func priorityOf(class string) (int32, bool) {
	switch class {
	case "":
		return 0, true
	case SystemClusterCritical:
		return systemClusterCriticalPriority, true
	case SystemNodeCritical:
		return systemNodeCriticalPriority, true
	}
	return 0, false
}

// addDefaultTolerations adds the node.kubernetes.io/not-ready and
// node.kubernetes.io/unreachable NoExecute tolerations for the strategy's
// seconds unless the pod already tolerates those taints.
func addDefaultTolerations(pod *corev1.Pod, s PodStrategy) {
	notReadySeconds, unreachableSeconds := s.tolerationSeconds()
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		noExecute := t.Effect == corev1.TaintEffectNoExecute || t.Effect == ""
		if (t.Key == corev1.TaintNodeNotReady || t.Key == "") && noExecute {
			notReady = true
		}
		if (t.Key == corev1.TaintNodeUnreachable || t.Key == "") && noExecute {
			unreachable = true
		}
	}
	for _, add := range []struct {
		key     string
		present bool
		seconds int64
	}{{corev1.TaintNodeNotReady, notReady, notReadySeconds}, {corev1.TaintNodeUnreachable, unreachable, unreachableSeconds}} {
		if add.present {
			continue
		}
		seconds := add.seconds
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key: add.key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &seconds,
		})
	}
}

// applySchedulingGatedCondition adds PodScheduled=False/SchedulingGated to a
// pod created with scheduling gates.
func applySchedulingGatedCondition(pod *corev1.Pod) {
	if len(pod.Spec.SchedulingGates) == 0 {
		return
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type:    corev1.PodScheduled,
		Status:  corev1.ConditionFalse,
		Reason:  corev1.PodReasonSchedulingGated,
		Message: "Scheduling is blocked due to non-empty scheduling gates",
	})
}

// PrepareForUpdate keeps the old status and bumps generation when the spec
// changed. Priority and the default tolerations are carried over as the
// admission plugins do on update.
func (s PodStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newPod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	newPod.Status = oldPod.Status
	if newPod.Spec.Priority == nil {
		newPod.Spec.Priority = oldPod.Spec.Priority
	}
	if newPod.Spec.PreemptionPolicy == nil {
		newPod.Spec.PreemptionPolicy = oldPod.Spec.PreemptionPolicy
	}
	addDefaultTolerations(newPod, s)
	if !apiequality.Semantic.DeepEqual(newPod.Spec, oldPod.Spec) {
		newPod.Generation = oldPod.Generation + 1
	} else {
		newPod.Generation = oldPod.Generation
	}
}

// Validate checks a new pod.
func (PodStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	allErrs := validatePodCreate(pod)
	return append(allErrs, validatePriority(pod)...)
}

// validatePriority stands in for the Priority admission plugin's checks.
func validatePriority(pod *corev1.Pod) field.ErrorList {
	fldPath := field.NewPath("spec")
	priority, ok := priorityOf(pod.Spec.PriorityClassName)
	if !ok {
		return field.ErrorList{field.NotFound(fldPath.Child("priorityClassName"), pod.Spec.PriorityClassName)}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return field.ErrorList{field.Forbidden(fldPath.Child("priority"), fmt.Sprintf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, priority))}
	}
	return nil
}

// ValidateUpdate checks a pod update: the spec is immutable but for images,
// activeDeadlineSeconds, added tolerations and removed scheduling gates.
func (PodStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// AllowCreateOnUpdate is false for pods.
func (PodStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the pod fields a field selector may name.
func (PodStrategy) SelectableFields(obj runtime.Object) fields.Set {
	pod := obj.(*corev1.Pod)
	podIP := ""
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	set := fields.Set{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}
	return objectmeta.AddFields(set, &pod.ObjectMeta, true)
}

// ConvertToTable renders pods as kubectl get pods prints them.
func (PodStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return podPrinter().Convert(obj, opts)
}

// PrepareForStatusUpdate keeps the old spec, owner references and deletion
// timestamp; the QoS class cannot be cleared.
func (PodStrategy) PrepareForStatusUpdate(_ context.Context, obj, old runtime.Object) {
	newPod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	newPod.Spec = oldPod.Spec
	newPod.DeletionTimestamp = oldPod.DeletionTimestamp
	newPod.OwnerReferences = oldPod.OwnerReferences
	newPod.Generation = oldPod.Generation
	if newPod.Status.QOSClass == "" {
		newPod.Status.QOSClass = oldPod.Status.QOSClass
	}
	if newPod.Status.ObservedGeneration == 0 {
		newPod.Status.ObservedGeneration = oldPod.Status.ObservedGeneration
	}
}

// ValidateStatusUpdate checks a pods/status update.
func (PodStrategy) ValidateStatusUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validatePodStatusUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// GracePeriod implements graceful deletion as CheckGracefulDelete does: the
// requested period, else spec.terminationGracePeriodSeconds; zero for a pod
// that is not scheduled or has finished; a negative period becomes 1.
func (PodStrategy) GracePeriod(obj runtime.Object, requested *int64) (int64, bool) {
	pod := obj.(*corev1.Pod)
	period := int64(0)
	if requested != nil {
		period = *requested
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" {
		period = 0
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	return period, period > 0
}

// NewBinding returns an empty Binding for a pods/binding request body.
func (PodStrategy) NewBinding() runtime.Object { return &corev1.Binding{} }

// ValidateBinding checks a Binding (ValidatePodBinding upstream).
func (PodStrategy) ValidateBinding(_ context.Context, obj runtime.Object) field.ErrorList {
	b := obj.(*corev1.Binding)
	var allErrs field.ErrorList
	target := field.NewPath("target")
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		allErrs = append(allErrs, field.NotSupported(target.Child("kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		allErrs = append(allErrs, field.Required(target.Child("name"), ""))
	} else if b.Target.Kind == "" || b.Target.Kind == "Node" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(b.Target.Name, false) {
			allErrs = append(allErrs, field.Invalid(target.Child("name"), b.Target.Name, msg))
		}
	}
	return allErrs
}

// ApplyBinding assigns pod to the binding's node: it sets spec.nodeName,
// merges the binding's annotations and sets the PodScheduled condition. It
// returns a Conflict error when the pod is being deleted, already assigned
// or still has scheduling gates, as kube-apiserver's BindingREST does.
func (PodStrategy) ApplyBinding(_ context.Context, podObj, bindingObj runtime.Object) error {
	pod, b := podObj.(*corev1.Pod), bindingObj.(*corev1.Binding)
	gr := corev1.Resource("pods/binding")
	switch {
	case pod.DeletionTimestamp != nil:
		return apierrors.NewConflict(gr, pod.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
	case pod.Spec.NodeName != "":
		return apierrors.NewConflict(gr, pod.Name, fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName))
	case len(pod.Spec.SchedulingGates) != 0:
		return apierrors.NewConflict(gr, pod.Name, fmt.Errorf("pod %v has non-empty .spec.schedulingGates", pod.Name))
	}
	pod.Spec.NodeName = b.Target.Name
	pod.Status.NominatedNodeName = ""
	if len(b.Annotations) > 0 && pod.Annotations == nil {
		pod.Annotations = make(map[string]string, len(b.Annotations))
	}
	for k, v := range b.Annotations {
		pod.Annotations[k] = v
	}
	setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	return nil
}

// setPodCondition adds or updates a condition, moving lastTransitionTime
// only when the status changes (podutil.UpdatePodCondition).
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	now := metav1.Now()
	for i := range st.Conditions {
		old := &st.Conditions[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status != c.Status {
			old.LastTransitionTime = now
		}
		old.Status, old.Reason, old.Message = c.Status, c.Reason, c.Message
		old.LastProbeTime = c.LastProbeTime
		return
	}
	c.LastTransitionTime = now
	st.Conditions = append(st.Conditions, c)
}

// PodQOS computes a pod's QoS class from its containers' requests and
// limits of cpu and memory (qos.ComputePodQOS upstream).
func PodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	if r := pod.Spec.Resources; r != nil && (len(r.Requests) > 0 || len(r.Limits) > 0) {
		return requirementsQOS(r)
	}
	var podQOS corev1.PodQOSClass
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range all {
		q := requirementsQOS(&all[i].Resources)
		switch {
		case q == corev1.PodQOSBurstable:
			return q
		case podQOS == "":
			podQOS = q
		case podQOS != q:
			return corev1.PodQOSBurstable
		}
	}
	if podQOS == "" {
		return corev1.PodQOSBestEffort
	}
	return podQOS
}

func requirementsQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var qos corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		var q corev1.PodQOSClass
		switch {
		case !req.Equal(lim):
			q = corev1.PodQOSBurstable
		case req.IsZero():
			q = corev1.PodQOSBestEffort
		default:
			q = corev1.PodQOSGuaranteed
		}
		switch {
		case q == corev1.PodQOSBurstable:
			return q
		case qos == "":
			qos = q
		case qos != q:
			return corev1.PodQOSBurstable
		}
	}
	return qos
}
