package core

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// Node role labels kubectl shows in the ROLES column.
const (
	labelNodeRolePrefix = "node-role.kubernetes.io/"
	labelNodeRole       = "kubernetes.io/role"
)

// NodeStrategy holds the rules of nodes (pkg/registry/core/node/strategy.go).
type NodeStrategy struct{}

// Default applies the node defaults and keeps spec.podCIDR and
// spec.podCIDRs in step, as the v1 conversion does.
func (NodeStrategy) Default(obj runtime.Object) {
	node := obj.(*corev1.Node)
	DefaultNode(node)
	switch {
	case node.Spec.PodCIDR != "" && len(node.Spec.PodCIDRs) == 0:
		node.Spec.PodCIDRs = []string{node.Spec.PodCIDR}
	case node.Spec.PodCIDR == "" && len(node.Spec.PodCIDRs) > 0:
		node.Spec.PodCIDR = node.Spec.PodCIDRs[0]
	}
}

// PrepareForCreate keeps everything: the node agent registers its node with
// its status.
func (NodeStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate keeps the old status.
func (NodeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Node).Status = old.(*corev1.Node).Status
}

// Validate checks a new node.
func (NodeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	allErrs := objectmeta.Validate(&node.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, validateNodeTaints(node.Spec.Taints, field.NewPath("metadata", "taints"))...)
	allErrs = append(allErrs, validateNodeResources(node)...)
	allErrs = append(allErrs, validatePodCIDRs(node.Spec.PodCIDRs)...)
	return allErrs
}

func validatePodCIDRs(cidrs []string) field.ErrorList {
	p := field.NewPath("spec", "podCIDRs")
	var allErrs field.ErrorList
	for i, c := range cidrs {
		allErrs = append(allErrs, validation.IsValidCIDRForLegacyField(p.Index(i), c, true, nil)...)
	}
	if len(allErrs) == 0 && len(cidrs) > 1 {
		if len(cidrs) > 2 || ipFamilyOf(cidrs[0]) == ipFamilyOf(cidrs[1]) {
			allErrs = append(allErrs, field.Invalid(p, cidrs, "may specify no more than one CIDR for each IP family"))
		}
	}
	return allErrs
}

func validateNodeResources(node *corev1.Node) field.ErrorList {
	var allErrs field.ErrorList
	for _, name := range sortedResourceNames(node.Status.Capacity) {
		allErrs = append(allErrs, validateResourceQuantity(name, node.Status.Capacity[name], field.NewPath("status", "capacity", string(name)))...)
	}
	for _, name := range sortedResourceNames(node.Status.Allocatable) {
		allErrs = append(allErrs, validateResourceQuantity(name, node.Status.Allocatable[name], field.NewPath("status", "allocatable", string(name)))...)
	}
	return allErrs
}

// validateNodeTaints checks taints; kube-apiserver reports them under
// metadata.taints, and so does Skiff.
func validateNodeTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := map[string]bool{}
	for i, t := range taints {
		p := fldPath.Index(i)
		allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		if errs := validation.IsValidLabelValue(t.Value); len(errs) != 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("value"), t.Value, strings.Join(errs, ";")))
		}
		allErrs = append(allErrs, validateTaintEffect(t.Effect, false, p.Child("effect"))...)
		key := string(t.Effect) + "\x00" + t.Key
		if seen[key] {
			dup := field.Duplicate(p, t)
			dup.Detail = "taints must be unique by key and effect pair"
			allErrs = append(allErrs, dup)
			continue
		}
		seen[key] = true
	}
	return allErrs
}

// ValidateUpdate checks a node update: podCIDRs and providerID may not
// change once set.
func (NodeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	allErrs := validateNodeUpdate(node, oldNode)
	allErrs = append(allErrs, validatePodCIDRs(node.Spec.PodCIDRs)...)
	return allErrs
}

func validateNodeUpdate(node, oldNode *corev1.Node) field.ErrorList {
	allErrs := objectmeta.ValidateUpdate(&node.ObjectMeta, &oldNode.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateNodeResources(node)...)
	seen := map[corev1.NodeAddress]bool{}
	for i, a := range node.Status.Addresses {
		if seen[a] {
			allErrs = append(allErrs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		seen[a] = true
	}
	if len(oldNode.Spec.PodCIDRs) > 0 {
		changed := len(oldNode.Spec.PodCIDRs) != len(node.Spec.PodCIDRs)
		for i := 0; !changed && i < len(oldNode.Spec.PodCIDRs); i++ {
			changed = oldNode.Spec.PodCIDRs[i] != node.Spec.PodCIDRs[i]
		}
		if changed {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
		}
	}
	if oldNode.Spec.ProviderID != "" && node.Spec.ProviderID != "" && oldNode.Spec.ProviderID != node.Spec.ProviderID {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "providerID"), nil, "field cannot be modified once set"))
	}
	if oldNode.Spec.ProviderID != "" && node.Spec.ProviderID == "" {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "providerID"), nil, "field cannot be cleared once set"))
	}
	allErrs = append(allErrs, validateNodeTaints(node.Spec.Taints, field.NewPath("metadata", "taints"))...)
	if node.Spec.DoNotUseExternalID != oldNode.Spec.DoNotUseExternalID {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "externalID"), "may not be updated"))
	}
	return allErrs
}

// AllowCreateOnUpdate is false for nodes.
func (NodeStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns metadata.name and spec.unschedulable.
func (NodeStrategy) SelectableFields(obj runtime.Object) fields.Set {
	node := obj.(*corev1.Node)
	set := fields.Set{"spec.unschedulable": fmt.Sprint(node.Spec.Unschedulable)}
	return objectmeta.AddFields(set, &node.ObjectMeta, false)
}

// ConvertToTable renders nodes as kubectl get nodes prints them.
func (NodeStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	info := corev1.NodeSystemInfo{}.SwaggerDoc()
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{
			table.NameColumn(),
			table.Column("Status", "string", "The status of the node"),
			table.Column("Roles", "string", "The roles of the node"),
			table.AgeColumn(),
			table.Column("Version", "string", info["kubeletVersion"]),
			table.Wide("Internal-IP", "string", corev1.NodeStatus{}.SwaggerDoc()["addresses"]),
			table.Wide("External-IP", "string", corev1.NodeStatus{}.SwaggerDoc()["addresses"]),
			table.Wide("OS-Image", "string", info["osImage"]),
			table.Wide("Kernel-Version", "string", info["kernelVersion"]),
			table.Wide("Container-Runtime", "string", info["containerRuntimeVersion"]),
		},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			node, ok := obj.(*corev1.Node)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("node table: unexpected object %T", obj)
			}
			return nodeRow(node), nil
		},
	}.Convert(obj, opts)
}

func nodeRow(node *corev1.Node) metav1.TableRow {
	var status []string
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = append(status, string(c.Type))
		} else {
			status = append(status, "Not"+string(c.Type))
		}
		break
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if node.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	roles := strings.Join(nodeRoles(node), ",")
	if roles == "" {
		roles = "<none>"
	}
	ni := node.Status.NodeInfo
	osImage, kernel, runtimeVersion := ni.OSImage, ni.KernelVersion, ni.ContainerRuntimeVersion
	if osImage == "" {
		osImage = "<unknown>"
	}
	if kernel == "" {
		kernel = "<unknown>"
	}
	if runtimeVersion == "" {
		runtimeVersion = "<unknown>"
	}
	if ni.Architecture != "" {
		kernel += " (" + ni.Architecture + ")"
	}
	return metav1.TableRow{Cells: []any{node.Name, strings.Join(status, ","), roles, table.Age(node.CreationTimestamp), ni.KubeletVersion,
		nodeAddress(node, corev1.NodeInternalIP), nodeAddress(node, corev1.NodeExternalIP), osImage, kernel, runtimeVersion}}
}

// nodeRoles returns the roles from node-role.kubernetes.io/<role> and
// kubernetes.io/role=<role> labels, sorted.
func nodeRoles(node *corev1.Node) []string {
	set := map[string]bool{}
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix):
			if role := strings.TrimPrefix(k, labelNodeRolePrefix); role != "" {
				set[role] = true
			}
		case k == labelNodeRole && v != "":
			set[v] = true
		}
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return roles
}

func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

// PrepareForStatusUpdate keeps the old spec.
func (NodeStrategy) PrepareForStatusUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Node).Spec = old.(*corev1.Node).Spec
}

// ValidateStatusUpdate checks a nodes/status update.
func (NodeStrategy) ValidateStatusUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validateNodeUpdate(obj.(*corev1.Node), old.(*corev1.Node))
}
