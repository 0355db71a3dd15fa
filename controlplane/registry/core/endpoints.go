package core

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// EndpointsStrategy holds the rules of endpoints.
type EndpointsStrategy struct{}

// Default sets port protocols to TCP.
func (EndpointsStrategy) Default(obj runtime.Object) { DefaultEndpoints(obj.(*corev1.Endpoints)) }

// PrepareForCreate does nothing: endpoints have no status.
func (EndpointsStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate does nothing: endpoints have no status.
func (EndpointsStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// Validate checks new endpoints.
func (EndpointsStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateEndpoints(obj.(*corev1.Endpoints), nil)
}

// ValidateUpdate checks an endpoints update. Subsets that did not change
// are not checked again, as upstream.
func (EndpointsStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ep, oldEP := obj.(*corev1.Endpoints), old.(*corev1.Endpoints)
	allErrs := objectmeta.ValidateUpdate(&ep.ObjectMeta, &oldEP.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateEndpoints(ep, oldEP)...)
}

func validateEndpoints(ep, oldEP *corev1.Endpoints) field.ErrorList {
	allErrs := objectmeta.Validate(&ep.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	subsetErrs := validateEndpointSubsets(ep.Subsets, field.NewPath("subsets"))
	if len(subsetErrs) != 0 && oldEP != nil && apiequality.Semantic.DeepEqual(oldEP.Subsets, ep.Subsets) {
		subsetErrs = nil
	}
	return append(allErrs, subsetErrs...)
}

func validateEndpointSubsets(subsets []corev1.EndpointSubset, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range subsets {
		ss := &subsets[i]
		p := fldPath.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			allErrs = append(allErrs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for a := range ss.Addresses {
			allErrs = append(allErrs, validateEndpointAddress(&ss.Addresses[a], p.Child("addresses").Index(a))...)
		}
		for a := range ss.NotReadyAddresses {
			allErrs = append(allErrs, validateEndpointAddress(&ss.NotReadyAddresses[a], p.Child("notReadyAddresses").Index(a))...)
		}
		for j := range ss.Ports {
			allErrs = append(allErrs, validateEndpointPort(&ss.Ports[j], len(ss.Ports) > 1, p.Child("ports").Index(j))...)
		}
	}
	return allErrs
}

func validateEndpointAddress(a *corev1.EndpointAddress, fldPath *field.Path) field.ErrorList {
	allErrs := validation.IsValidIPForLegacyField(fldPath.Child("ip"), a.IP, true, nil)
	if a.Hostname != "" {
		allErrs = append(allErrs, validateDNS1123Label(a.Hostname, fldPath.Child("hostname"))...)
	}
	if a.NodeName != nil {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*a.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), *a.NodeName, msg))
		}
	}
	return append(allErrs, ValidateEndpointIP(a.IP, fldPath.Child("ip"))...)
}

func validateEndpointPort(port *corev1.EndpointPort, requireName bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if requireName && port.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	} else if port.Name != "" {
		allErrs = append(allErrs, validateDNS1123Label(port.Name, fldPath.Child("name"))...)
	}
	for _, msg := range validation.IsValidPortNum(int(port.Port)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("port"), port.Port, msg))
	}
	allErrs = append(allErrs, validateProtocol(port.Protocol, fldPath.Child("protocol"))...)
	if port.AppProtocol != nil {
		allErrs = append(allErrs, validateQualifiedName(*port.AppProtocol, fldPath.Child("appProtocol"))...)
	}
	return allErrs
}

// AllowCreateOnUpdate is true for endpoints.
func (EndpointsStrategy) AllowCreateOnUpdate() bool { return true }

// SelectableFields returns the metadata fields.
func (EndpointsStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return objectmeta.Fields(&obj.(*corev1.Endpoints).ObjectMeta, true)
}

// ConvertToTable renders endpoints (NAME, ENDPOINTS, AGE).
func (EndpointsStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.Column("Endpoints", "string", corev1.Endpoints{}.SwaggerDoc()["subsets"]), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			ep, ok := obj.(*corev1.Endpoints)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("endpoints table: unexpected object %T", obj)
			}
			return metav1.TableRow{Cells: []any{ep.Name, formatEndpoints(ep), table.Age(ep.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}

// formatEndpoints lists up to three address:port pairs (formatEndpoints
// upstream).
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	more, count := false, 0
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, a.IP)
			}
			continue
		}
		for _, port := range ss.Ports {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(port.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}
