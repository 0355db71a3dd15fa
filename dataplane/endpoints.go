package dataplane

import (
	"cmp"
	"net/netip"
	"strconv"
)

// AddrPort is the endpoint's IP and target port.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.IP, e.Port) }

// String returns "ip:port", the endpoint's identity within a ServicePort.
func (e Endpoint) String() string { return e.IP.String() + ":" + strconv.Itoa(int(e.Port)) }

// CompareEndpoints orders endpoints by IP, then port: the order of
// Update.Endpoints.
func CompareEndpoints(a, b Endpoint) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// SelectEndpoints picks the endpoints that new connections to sp may use,
// with kube-proxy's rules (pkg/proxy/topology.go CategorizeEndpoints,
// without topology hints):
//
//   - cluster is the endpoint set of the Cluster traffic policy: every
//     Ready endpoint in the cluster; if none is Ready, every endpoint that is
//     Serving and Terminating (so a Service whose pods are all shutting down
//     keeps taking connections while they still serve).
//   - local is the endpoint set of the Local traffic policy: the node-local
//     Ready endpoints; if there is no local Ready endpoint, the local Serving
//     and Terminating ones. The fallback is decided independently of
//     cluster: local may hold terminating endpoints while cluster holds
//     Ready remote ones.
//
// Both are always computed, in the order of eps. Which one a frontend uses
// is sp.PolicyEndpoints. Endpoints that are neither Ready nor
// Serving-and-Terminating are never selected; established connections to
// them are left alone (only removal from the EndpointSlice ends them).
//
// A Service "has endpoints" (as opposed to being rejected outright) when
// len(cluster) > 0: with the fallback, cluster is empty only when no
// endpoint anywhere can take a connection.
func SelectEndpoints(sp *ServicePort, eps []Endpoint) (cluster, local []Endpoint) {
	_ = sp // topology hints would use it; kept so the signature can grow
	var clusterTerm, localTerm []Endpoint
	for _, ep := range eps {
		switch {
		case ep.Ready:
			cluster = append(cluster, ep)
			if ep.Local {
				local = append(local, ep)
			}
		case ep.Serving && ep.Terminating:
			clusterTerm = append(clusterTerm, ep)
			if ep.Local {
				localTerm = append(localTerm, ep)
			}
		}
	}
	if len(cluster) == 0 {
		cluster = clusterTerm
	}
	if len(local) == 0 {
		local = localTerm
	}
	return cluster, local
}

// PolicyEndpoints turns SelectEndpoints' result into the endpoint sets of
// the two kinds of traffic:
//
//   - internal is what ClusterIP traffic uses: local when
//     internalTrafficPolicy is Local (empty when the node has no usable
//     endpoint: such traffic is dropped, not sent off-node), else cluster.
//   - external is what NodePort, LoadBalancer IP and external IP traffic
//     coming from outside the node uses: local when externalTrafficPolicy
//     is Local (the client's source IP is then kept), else cluster.
//     Traffic to those frontends from the node itself or from a local pod
//     uses cluster even with the Local policy (kube-proxy's
//     short-circuit), so an externally accessible Service always needs
//     cluster too.
func (sp *ServicePort) PolicyEndpoints(cluster, local []Endpoint) (internal, external []Endpoint) {
	internal, external = cluster, cluster
	if sp.InternalPolicyLocal {
		internal = local
	}
	if sp.ExternalPolicyLocal {
		external = local
	}
	return internal, external
}
