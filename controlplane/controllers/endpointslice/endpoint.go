package endpointslice

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/controlplane/controllers/pods"
)

// PodIncluded reports whether pod is an endpoint candidate at all: it has an
// IP and has not finished. Terminating pods are included only when
// includeTerminating is set (EndpointSlices always include them with the
// terminating condition; the Endpoints controller only for Services that
// publish not-ready addresses). Upstream's ShouldPodBeInEndpoints.
func PodIncluded(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if len(pod.Status.PodIPs) == 0 && pod.Status.PodIP == "" {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

// FindPort resolves a Service port's targetPort on pod: a number is used as
// it is, a name is looked up among the container ports (regular containers,
// then restartable init containers) with the Service port's protocol. An
// unset targetPort means the Service port number.
func FindPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		containers := slices.Clone(pod.Spec.Containers)
		for _, c := range pod.Spec.InitContainers {
			// Sidecars (restartable init containers) serve like containers.
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, c)
			}
		}
		for _, c := range containers {
			for _, p := range c.Ports {
				pp := p.Protocol
				if pp == "" {
					pp = corev1.ProtocolTCP
				}
				if p.Name == tp.StrVal && pp == proto {
					return p.ContainerPort, nil
				}
			}
		}
		return 0, fmt.Errorf("pod %s/%s has no %s container port named %q", pod.Namespace, pod.Name, proto, tp.StrVal)
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return tp.IntVal, nil
	default:
		return sp.Port, nil
	}
}

// AddressTypes are the EndpointSlice address types a Service gets: one per
// IP family it has (from spec.ipFamilies, else from its ClusterIP), IPv4
// when nothing says otherwise.
func AddressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	add := func(t discoveryv1.AddressType) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			add(discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			add(discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) == 0 {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				add(addressTypeOf(a))
			}
		}
	}
	if len(out) == 0 {
		add(discoveryv1.AddressTypeIPv4)
	}
	return out
}

func addressTypeOf(a netip.Addr) discoveryv1.AddressType {
	if a.Is4() || a.Is4In6() {
		return discoveryv1.AddressTypeIPv4
	}
	return discoveryv1.AddressTypeIPv6
}

// PodAddress returns the pod's first IP of the address type, or "".
func PodAddress(pod *corev1.Pod, t discoveryv1.AddressType) string {
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			continue
		}
		if addressTypeOf(a) == t {
			return a.Unmap().String()
		}
	}
	return ""
}

// ShouldSetHostname reports whether pod's hostname is published for svc:
// the pod names the Service as its subdomain (the DNS A records
// <hostname>.<svc>.<ns>.svc).
func ShouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace
}

// podEndpoint builds the endpoint of pod for svc with the given address.
// Conditions follow upstream: serving is the pod's readiness regardless of
// termination; terminating is a set deletionTimestamp; ready is serving and
// not terminating, or always true when the Service publishes not-ready
// addresses.
func podEndpoint(pod *corev1.Pod, svc *corev1.Service, addr, zone string) discoveryv1.Endpoint {
	serving := pods.IsReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses: []string{addr},
		Conditions: discoveryv1.EndpointConditions{
			Ready:       &ready,
			Serving:     &serving,
			Terminating: &terminating,
		},
		TargetRef: &corev1.ObjectReference{
			Kind:      "Pod",
			Namespace: pod.Namespace,
			Name:      pod.Name,
			UID:       pod.UID,
		},
	}
	if pod.Spec.NodeName != "" {
		n := pod.Spec.NodeName
		ep.NodeName = &n
	}
	if zone != "" {
		ep.Zone = &zone
	}
	if ShouldSetHostname(pod, svc) {
		h := pod.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

// podPorts resolves every Service port on pod. Ports whose named target the
// pod lacks are left out, so the pod lands in slices of its own port set.
func podPorts(pod *corev1.Pod, svc *corev1.Service) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(svc.Spec.Ports))
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		num, err := FindPort(pod, sp)
		if err != nil {
			continue
		}
		name, proto := sp.Name, sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, discoveryv1.EndpointPort{
			Name:        &name,
			Protocol:    &proto,
			Port:        &num,
			AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// portsKey identifies a port set independently of its order.
func portsKey(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		var b strings.Builder
		if p.Name != nil {
			b.WriteString(*p.Name)
		}
		b.WriteByte('/')
		if p.Protocol != nil {
			b.WriteString(string(*p.Protocol))
		}
		b.WriteByte('/')
		if p.Port != nil {
			fmt.Fprint(&b, *p.Port)
		}
		b.WriteByte('/')
		if p.AppProtocol != nil {
			b.WriteString(*p.AppProtocol)
		}
		parts = append(parts, b.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// endpointKey identifies an endpoint across syncs: its target and addresses.
func endpointKey(ep *discoveryv1.Endpoint) string {
	var b strings.Builder
	if ep.TargetRef != nil {
		b.WriteString(string(ep.TargetRef.UID))
		b.WriteByte('|')
		b.WriteString(ep.TargetRef.Namespace + "/" + ep.TargetRef.Name)
	}
	b.WriteByte('|')
	b.WriteString(strings.Join(ep.Addresses, ","))
	return b.String()
}
