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
	sel := NewSelection(eps)
	for _, ep := range eps {
		if sel.Cluster(ep) {
			cluster = append(cluster, ep)
		}
		if sel.Local(ep) {
			local = append(local, ep)
		}
	}
	return cluster, local
}

// Selection is SelectEndpoints' decision for one endpoint list in a form
// that builds no lists: a provider that turns endpoints into something
// else (backend ids, rules) asks it about each endpoint as it goes.
type Selection struct {
	// clusterFallback: no endpoint is Ready, so the cluster set is the
	// Serving and Terminating ones; localFallback likewise for the
	// node-local Ready endpoints.
	clusterFallback, localFallback bool
}

// NewSelection looks at eps once to decide which rule applies to each
// set.
func NewSelection(eps []Endpoint) Selection {
	s := Selection{clusterFallback: true, localFallback: true}
	for _, ep := range eps {
		if ep.Ready {
			s.clusterFallback = false
			if ep.Local {
				s.localFallback = false
				break
			}
		}
	}
	return s
}

// Cluster reports whether ep is in SelectEndpoints' cluster set.
func (s Selection) Cluster(ep Endpoint) bool {
	if ep.Ready {
		return true
	}
	return s.clusterFallback && ep.Serving && ep.Terminating
}

// Local reports whether ep is in SelectEndpoints' local set.
func (s Selection) Local(ep Endpoint) bool {
	if !ep.Local {
		return false
	}
	if ep.Ready {
		return true
	}
	return s.localFallback && ep.Serving && ep.Terminating
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
