package dataplane

import (
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultAffinityTimeoutSeconds is the sessionAffinity ClientIP timeout
// when the Service does not set one (Kubernetes' default, 3 hours).
const DefaultAffinityTimeoutSeconds = 10800

// ExternallyAccessible reports whether the port is reachable other than by
// its ClusterIP: on a NodePort, a LoadBalancer ingress IP or an external IP.
func (sp *ServicePort) ExternallyAccessible() bool {
	return sp.NodePort != 0 || len(sp.LoadBalancerIPs) > 0 || len(sp.ExternalIPs) > 0
}

// UsesClusterEndpoints reports whether some traffic to the port is sent to
// endpoints by the Cluster traffic policy: ClusterIP traffic when
// internalTrafficPolicy is Cluster, and any externally accessible port
// (even with externalTrafficPolicy Local, traffic from the node itself and
// from local pods to an external frontend uses the Cluster endpoints).
func (sp *ServicePort) UsesClusterEndpoints() bool {
	return !sp.InternalPolicyLocal || sp.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether some traffic to the port is sent to
// node-local endpoints only (internalTrafficPolicy Local, or
// externalTrafficPolicy Local on an externally accessible port).
func (sp *ServicePort) UsesLocalEndpoints() bool {
	return sp.InternalPolicyLocal || (sp.ExternalPolicyLocal && sp.ExternallyAccessible())
}

// Equal reports whether two ServicePorts program the same frontends.
func (sp *ServicePort) Equal(o *ServicePort) bool {
	if sp == nil || o == nil {
		return sp == o
	}
	return sp.Name == o.Name &&
		sp.Protocol == o.Protocol &&
		sp.Port == o.Port &&
		sp.NodePort == o.NodePort &&
		slices.Equal(sp.ClusterIPs, o.ClusterIPs) &&
		slices.Equal(sp.ExternalIPs, o.ExternalIPs) &&
		slices.Equal(sp.LoadBalancerIPs, o.LoadBalancerIPs) &&
		sp.AffinityTimeoutSeconds == o.AffinityTimeoutSeconds &&
		sp.ExternalPolicyLocal == o.ExternalPolicyLocal &&
		sp.InternalPolicyLocal == o.InternalPolicyLocal
}

// ServicePorts converts a Service into the ServicePorts a node programs,
// following kube-proxy (pkg/proxy/serviceport.go, single-stack IPv4):
//
//   - Services that are not proxied give none: type ExternalName, headless
//     Services (clusterIP "None" or unset) and Services without an IPv4
//     ClusterIP. Such a Service has no frontend at all, not even NodePorts.
//   - Only the IPv4 entries of spec.clusterIPs (or spec.clusterIP),
//     spec.externalIPs and status.loadBalancer.ingress[].ip are kept. An
//     ingress IP is used only in VIP mode (ipMode unset or VIP); ingress
//     entries with a hostname only are ignored.
//   - Ports with a protocol other than TCP or UDP (SCTP) are skipped. An
//     empty protocol means TCP, the API default.
//   - sessionAffinity ClientIP gives AffinityTimeoutSeconds from
//     sessionAffinityConfig.clientIP.timeoutSeconds, default 10800.
//   - externalTrafficPolicy Local counts only on an externally accessible
//     Service (type NodePort or LoadBalancer, or any type with
//     externalIPs), as kube-proxy's ExternalPolicyLocal does.
//
// The second result says, in words, what was ignored (for logging).
func ServicePorts(svc *v1.Service) (map[ServicePortName]*ServicePort, []string) {
	if svc == nil {
		return nil, nil
	}
	var ignored []string
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return nil, nil
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone {
		return nil, nil
	}
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	var clusterIP netip.Addr
	for _, s := range clusterIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("clusterIP %q is not an IP address", s))
			continue
		}
		if ip.Is4() {
			clusterIP = ip
			break
		}
		ignored = append(ignored, fmt.Sprintf("clusterIP %s is not IPv4", ip))
	}
	if !clusterIP.IsValid() {
		return nil, append(ignored, "no IPv4 clusterIP: Service not proxied")
	}

	externalIPs, ign := parseIPv4s("externalIP", svc.Spec.ExternalIPs)
	ignored = append(ignored, ign...)
	var lbIPs []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue
		}
		if ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP {
			ignored = append(ignored, fmt.Sprintf("loadBalancer ingress %s has ipMode %s, not VIP", ing.IP, *ing.IPMode))
			continue
		}
		ips, ign := parseIPv4s("loadBalancer ingress IP", []string{ing.IP})
		ignored = append(ignored, ign...)
		lbIPs = append(lbIPs, ips...)
	}

	var affinity uint32
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		affinity = DefaultAffinityTimeoutSeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			affinity = uint32(*c.ClientIP.TimeoutSeconds)
		}
	}
	externallyAccessible := svc.Spec.Type == v1.ServiceTypeLoadBalancer ||
		svc.Spec.Type == v1.ServiceTypeNodePort ||
		len(svc.Spec.ExternalIPs) > 0
	etpLocal := externallyAccessible && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	itpLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal

	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	ports := make(map[ServicePortName]*ServicePort, len(svc.Spec.Ports))
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		if proto != v1.ProtocolTCP && proto != v1.ProtocolUDP {
			ignored = append(ignored, fmt.Sprintf("port %q: protocol %s not supported", p.Name, proto))
			continue
		}
		if p.Port <= 0 || p.Port > 65535 {
			ignored = append(ignored, fmt.Sprintf("port %q: port %d out of range", p.Name, p.Port))
			continue
		}
		var nodePort uint16
		if p.NodePort > 0 && p.NodePort <= 65535 {
			nodePort = uint16(p.NodePort)
		}
		name := ServicePortName{NamespacedName: nn, Port: p.Name, Protocol: proto}
		ports[name] = &ServicePort{
			Name:                   name,
			Protocol:               proto,
			Port:                   uint16(p.Port),
			NodePort:               nodePort,
			ClusterIPs:             []netip.Addr{clusterIP},
			ExternalIPs:            externalIPs,
			LoadBalancerIPs:        lbIPs,
			AffinityTimeoutSeconds: affinity,
			ExternalPolicyLocal:    etpLocal,
			InternalPolicyLocal:    itpLocal,
		}
	}
	return ports, ignored
}

func parseIPv4s(what string, ss []string) ([]netip.Addr, []string) {
	var ips []netip.Addr
	var ignored []string
	for _, s := range ss {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("%s %q is not an IP address", what, s))
			continue
		}
		if !ip.Is4() {
			if ip.Is4In6() {
				ip = ip.Unmap()
			} else {
				ignored = append(ignored, fmt.Sprintf("%s %s is not IPv4", what, ip))
				continue
			}
		}
		if !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	return ips, ignored
}
