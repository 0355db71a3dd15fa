// Package dataplane is the node's service load balancer, seen from Go: the
// Provider interface that the eBPF provider (dataplane/ebpf) and the
// kube-proxy-style iptables baseline (dataplane/iptables) both implement, and
// the model they share.
//
// The input is Kubernetes' own: Services and EndpointSlices (k8s.io/api
// types) plus the node's own facts (NodeConfig). Handlers only record
// changes; a single rate-limited sync turns the recorded changes into kernel
// state and touches only what changed, as kube-proxy's change trackers and
// BoundedFrequencyRunner do.
//
// The shared pieces both providers build on:
//
//   - ServicePorts converts a v1.Service into ServicePorts (which Services
//     and frontends are proxied).
//   - ChangeTracker records Service and EndpointSlice events (the six
//     handlers; embed it to get them) and Apply returns an Update: the full
//     state plus the service ports that changed since the previous Apply.
//   - SelectEndpoints and ServicePort.PolicyEndpoints pick the endpoints
//     new connections may use, with kube-proxy's rules.
//   - Runner runs the sync with bounded frequency; SyncMetrics reports it.
package dataplane

import (
	"context"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Provider programs Services into one node's kernel.
//
// The On* handlers are called from informer event handlers; they must only
// record the change and return quickly. Sync applies every change recorded
// so far; SyncLoop calls Sync when changes arrive, at most once per minimum
// interval, and at least once per maximum interval to repair drift.
type Provider interface {
	OnServiceAdd(svc *v1.Service)
	OnServiceUpdate(old, svc *v1.Service)
	OnServiceDelete(svc *v1.Service)
	OnEndpointSliceAdd(slice *discoveryv1.EndpointSlice)
	OnEndpointSliceUpdate(old, slice *discoveryv1.EndpointSlice)
	OnEndpointSliceDelete(slice *discoveryv1.EndpointSlice)

	// Sync applies all recorded changes now.
	Sync() error
	// SyncLoop runs rate-limited syncs until ctx is done.
	SyncLoop(ctx context.Context)
	// Close stops the provider and releases its handles but leaves the
	// programmed kernel state in place, so that traffic keeps flowing while
	// the agent restarts and a new provider can take the state over.
	Close() error
	// Cleanup removes everything the provider programmed on the node.
	Cleanup() error
}

// NodeConfig is what a provider knows about its own node.
type NodeConfig struct {
	// Name is the node's name, compared with EndpointSlice nodeName to find
	// node-local endpoints.
	Name string
	// NodeIPs are the addresses NodePort Services answer on. Empty means
	// every local address except loopback.
	NodeIPs []netip.Addr
	// ClusterCIDRs are the pod address ranges of the whole cluster
	// (kube-proxy's --cluster-cidr, detect-local-mode ClusterCIDR). Traffic
	// to a ClusterIP from a source outside them is masqueraded, and traffic
	// from inside them to an external frontend of an
	// externalTrafficPolicy Local Service is treated as internal. Empty
	// means local traffic is not detected.
	ClusterCIDRs []netip.Prefix
}

// ServicePortName identifies one port of one Service.
type ServicePortName struct {
	types.NamespacedName
	// Port is the Service port's name ("" for a single unnamed port).
	Port     string
	Protocol v1.Protocol
}

// String returns "namespace/name:port/protocol".
func (n ServicePortName) String() string {
	s := n.NamespacedName.String()
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s + "/" + string(n.Protocol)
}

// ServicePort is one port of a Service with every frontend it is reached on.
// Only IPv4 addresses are programmed in this version.
type ServicePort struct {
	Name     ServicePortName
	Protocol v1.Protocol // TCP or UDP
	Port     uint16      // the Service port on ClusterIPs, external and LB IPs
	NodePort uint16      // 0 when the Service has no NodePort

	ClusterIPs      []netip.Addr
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr

	// AffinityTimeoutSeconds is non-zero for sessionAffinity ClientIP.
	AffinityTimeoutSeconds uint32
	// ExternalPolicyLocal is externalTrafficPolicy: Local (NodePort, LB and
	// external IPs use node-local endpoints only and keep the client's IP).
	ExternalPolicyLocal bool
	// InternalPolicyLocal is internalTrafficPolicy: Local (ClusterIP traffic
	// uses node-local endpoints only).
	InternalPolicyLocal bool
}

// Endpoint is one backend of a ServicePort, from an EndpointSlice with its
// target port resolved (named ports included).
type Endpoint struct {
	IP          netip.Addr
	Port        uint16
	Ready       bool
	Serving     bool
	Terminating bool
	NodeName    string
	// Local is NodeName == NodeConfig.Name.
	Local bool
}
