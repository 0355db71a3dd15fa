// Package discovery holds the rules of discovery.k8s.io/v1 endpointslices:
// port defaulting, validation (pkg/apis/discovery/validation), generation
// tracking and the table kubectl prints.
package discovery

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/core"
	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// Limits of an EndpointSlice (pkg/apis/discovery/validation).
const (
	maxTopologyLabels = 16
	maxAddresses      = 100
	maxPorts          = 20000
	maxEndpoints      = 1000
	maxZoneHints      = 8
	maxNodeHints      = 8
)

var (
	addressTypes = []string{string(discoveryv1.AddressTypeFQDN), string(discoveryv1.AddressTypeIPv4), string(discoveryv1.AddressTypeIPv6)}
	protocols    = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
)

// EndpointSliceStrategy holds the rules of endpointslices.
type EndpointSliceStrategy struct{}

// Default gives every port a name ("") and protocol (TCP).
func (EndpointSliceStrategy) Default(obj runtime.Object) {
	eps := obj.(*discoveryv1.EndpointSlice)
	for i := range eps.Ports {
		p := &eps.Ports[i]
		if p.Name == nil {
			name := ""
			p.Name = &name
		}
		if p.Protocol == nil {
			proto := corev1.ProtocolTCP
			p.Protocol = &proto
		}
	}
}

// PrepareForCreate sets generation 1 and drops deprecatedTopology, which
// the v1 API does not accept writes to.
func (EndpointSliceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	eps := obj.(*discoveryv1.EndpointSlice)
	eps.Generation = 1
	dropTopology(nil, eps)
}

// PrepareForUpdate bumps generation when anything but metadata (labels
// excepted) changed, and drops deprecatedTopology writes.
func (EndpointSliceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	eps, oldEPS := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	a, b := *eps, *oldEPS
	a.ObjectMeta, b.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
	eps.Generation = oldEPS.Generation
	if !apiequality.Semantic.DeepEqual(a, b) || !apiequality.Semantic.DeepEqual(eps.Labels, oldEPS.Labels) {
		eps.Generation = oldEPS.Generation + 1
	}
	dropTopology(oldEPS, eps)
}

// dropTopology clears deprecatedTopology on endpoints that changed, keeping
// a node name recorded there before (dropTopologyOnV1 upstream).
func dropTopology(oldEPS, eps *discoveryv1.EndpointSlice) {
	if oldEPS != nil && apiequality.Semantic.DeepEqual(oldEPS.Endpoints, eps.Endpoints) {
		return
	}
	prev := sets.New[string]()
	if oldEPS != nil {
		for _, ep := range oldEPS.Endpoints {
			if n := ep.DeprecatedTopology[corev1.LabelHostname]; n != "" {
				prev.Insert(n)
			}
		}
	}
	for i := range eps.Endpoints {
		ep := &eps.Endpoints[i]
		if n, ok := ep.DeprecatedTopology[corev1.LabelHostname]; ep.NodeName == nil && ok && prev.Has(n) &&
			len(apivalidation.NameIsDNSSubdomain(n, false)) == 0 {
			ep.NodeName = &n
		}
		ep.DeprecatedTopology = nil
	}
}

// Validate checks a new endpointslice.
func (EndpointSliceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateEndpointSlice(obj.(*discoveryv1.EndpointSlice), nil)
}

// ValidateUpdate checks an endpointslice update; addressType is immutable.
func (EndpointSliceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	eps, oldEPS := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	allErrs := objectmeta.ValidateUpdate(&eps.ObjectMeta, &oldEPS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateEndpointSlice(eps, oldEPS)...)
	return append(allErrs, apivalidation.ValidateImmutableField(eps.AddressType, oldEPS.AddressType, field.NewPath("addressType"))...)
}

func validateEndpointSlice(eps, oldEPS *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := objectmeta.Validate(&eps.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	switch eps.AddressType {
	case "":
		allErrs = append(allErrs, field.Required(field.NewPath("addressType"), ""))
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		allErrs = append(allErrs, field.NotSupported(field.NewPath("addressType"), eps.AddressType, addressTypes))
	}
	allErrs = append(allErrs, validatePorts(eps.Ports, field.NewPath("ports"))...)
	epErrs := validateEndpoints(eps.Endpoints, eps.AddressType, field.NewPath("endpoints"))
	if len(epErrs) != 0 && oldEPS != nil && apiequality.Semantic.DeepEqual(oldEPS.Endpoints, eps.Endpoints) {
		epErrs = nil
	}
	return append(allErrs, epErrs...)
}

func validateEndpoints(endpoints []discoveryv1.Endpoint, addrType discoveryv1.AddressType, fldPath *field.Path) field.ErrorList {
	if len(endpoints) > maxEndpoints {
		return field.ErrorList{field.TooMany(fldPath, len(endpoints), maxEndpoints)}
	}
	var allErrs field.ErrorList
	for i, ep := range endpoints {
		p := fldPath.Index(i)
		addrPath := p.Child("addresses")
		if len(ep.Addresses) == 0 {
			allErrs = append(allErrs, field.Required(addrPath, "must contain at least 1 address"))
		} else if len(ep.Addresses) > maxAddresses {
			allErrs = append(allErrs, field.TooMany(addrPath, len(ep.Addresses), maxAddresses))
		}
		for j, addr := range ep.Addresses {
			switch addrType {
			case discoveryv1.AddressTypeIPv4:
				if errs := validation.IsValidIPForLegacyField(addrPath.Index(j), addr, true, nil); len(errs) > 0 {
					allErrs = append(allErrs, errs...)
				} else {
					if net.ParseIP(addr).To4() == nil {
						allErrs = append(allErrs, field.Invalid(addrPath, addr, "must be an IPv4 address"))
					}
					allErrs = append(allErrs, core.ValidateEndpointIP(addr, addrPath.Index(j))...)
				}
			case discoveryv1.AddressTypeIPv6:
				if errs := validation.IsValidIP(addrPath.Index(j), addr); len(errs) > 0 {
					allErrs = append(allErrs, errs...)
				} else {
					if net.ParseIP(addr).To4() != nil {
						allErrs = append(allErrs, field.Invalid(addrPath, addr, "must be an IPv6 address"))
					}
					allErrs = append(allErrs, core.ValidateEndpointIP(addr, addrPath.Index(j))...)
				}
			case discoveryv1.AddressTypeFQDN:
				allErrs = append(allErrs, validation.IsFullyQualifiedDomainName(addrPath.Index(j), addr)...)
			}
		}
		if ep.NodeName != nil {
			for _, msg := range apivalidation.NameIsDNSSubdomain(*ep.NodeName, false) {
				allErrs = append(allErrs, field.Invalid(p.Child("nodeName"), *ep.NodeName, msg))
			}
		}
		topoPath := p.Child("deprecatedTopology")
		if len(ep.DeprecatedTopology) > maxTopologyLabels {
			allErrs = append(allErrs, field.TooMany(topoPath, len(ep.DeprecatedTopology), maxTopologyLabels))
		}
		allErrs = append(allErrs, metav1validation.ValidateLabels(ep.DeprecatedTopology, topoPath)...)
		if ep.Hostname != nil {
			for _, msg := range validation.IsDNS1123Label(*ep.Hostname) {
				allErrs = append(allErrs, field.Invalid(p.Child("hostname"), *ep.Hostname, msg))
			}
		}
		if ep.Hints != nil {
			allErrs = append(allErrs, validateHints(ep.Hints, p.Child("hints"))...)
		}
	}
	return allErrs
}

func validateHints(h *discoveryv1.EndpointHints, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	zp := fldPath.Child("forZones")
	if len(h.ForZones) > maxZoneHints {
		return field.ErrorList{field.TooMany(zp, len(h.ForZones), maxZoneHints)}
	}
	zones := sets.New[string]()
	for i, z := range h.ForZones {
		p := zp.Index(i).Child("name")
		if zones.Has(z.Name) {
			allErrs = append(allErrs, field.Duplicate(p, z.Name))
		} else {
			zones.Insert(z.Name)
		}
		for _, msg := range validation.IsValidLabelValue(z.Name) {
			allErrs = append(allErrs, field.Invalid(p, z.Name, msg))
		}
	}
	np := fldPath.Child("forNodes")
	if len(h.ForNodes) > maxNodeHints {
		return append(allErrs, field.TooMany(np, len(h.ForNodes), maxNodeHints))
	}
	nodes := sets.New[string]()
	for i, n := range h.ForNodes {
		p := np.Index(i).Child("name")
		if nodes.Has(n.Name) {
			allErrs = append(allErrs, field.Duplicate(p, n.Name))
		} else {
			nodes.Insert(n.Name)
		}
		for _, msg := range apivalidation.NameIsDNSSubdomain(n.Name, false) {
			allErrs = append(allErrs, field.Invalid(p, n.Name, msg))
		}
	}
	return allErrs
}

func validatePorts(ports []discoveryv1.EndpointPort, fldPath *field.Path) field.ErrorList {
	if len(ports) > maxPorts {
		return field.ErrorList{field.TooMany(fldPath, len(ports), maxPorts)}
	}
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		p := fldPath.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			for _, msg := range validation.IsDNS1123Label(name) {
				allErrs = append(allErrs, field.Invalid(p.Child("name"), name, msg))
			}
		}
		if names.Has(name) {
			allErrs = append(allErrs, field.Duplicate(p.Child("name"), name))
		} else {
			names.Insert(name)
		}
		switch {
		case port.Protocol == nil:
			allErrs = append(allErrs, field.Required(p.Child("protocol"), ""))
		case *port.Protocol != corev1.ProtocolTCP && *port.Protocol != corev1.ProtocolUDP && *port.Protocol != corev1.ProtocolSCTP:
			allErrs = append(allErrs, field.NotSupported(p.Child("protocol"), *port.Protocol, protocols))
		}
		if port.AppProtocol != nil {
			for _, msg := range validation.IsQualifiedName(*port.AppProtocol) {
				allErrs = append(allErrs, field.Invalid(p.Child("appProtocol"), *port.AppProtocol, msg))
			}
		}
	}
	return allErrs
}

// AllowCreateOnUpdate is false for endpointslices.
func (EndpointSliceStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields.
func (EndpointSliceStrategy) SelectableFields(obj runtime.Object) fields.Set {
	eps := obj.(*discoveryv1.EndpointSlice)
	return objectmeta.Fields(&eps.ObjectMeta, true)
}

// ConvertToTable renders endpointslices (NAME, ADDRESSTYPE, PORTS,
// ENDPOINTS, AGE).
func (EndpointSliceStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	doc := discoveryv1.EndpointSlice{}.SwaggerDoc()
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{
			table.NameColumn(),
			table.Column("AddressType", "string", doc["addressType"]),
			table.Column("Ports", "string", doc["ports"]),
			table.Column("Endpoints", "string", doc["endpoints"]),
			table.AgeColumn(),
		},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			eps, ok := obj.(*discoveryv1.EndpointSlice)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("endpointslice table: unexpected object %T", obj)
			}
			var ports, addrs []string
			for _, p := range eps.Ports {
				switch {
				case p.Port != nil:
					ports = append(ports, strconv.Itoa(int(*p.Port)))
				case p.Name != nil:
					ports = append(ports, *p.Name)
				default:
					ports = append(ports, "*")
				}
			}
			for _, ep := range eps.Endpoints {
				addrs = append(addrs, ep.Addresses...)
			}
			return metav1.TableRow{Cells: []any{eps.Name, string(eps.AddressType), table.ListWithMore(ports, 3),
				table.ListWithMore(addrs, 3), table.Age(eps.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}
