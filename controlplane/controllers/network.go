package controllers

import (
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-project/skiff/controlplane/cloud"
	"github.com/skiff-project/skiff/controlplane/controllers/endpoints"
	"github.com/skiff-project/skiff/controlplane/controllers/endpointslice"
	"github.com/skiff-project/skiff/controlplane/controllers/nodeipam"
	"github.com/skiff-project/skiff/controlplane/controllers/nodelifecycle"
)

// NetworkOptions are the settings of the network controllers (endpointslice,
// endpoints, nodelifecycle, nodeipam) and the cloud controller. This file
// belongs to the network controllers: their owner adds fields here. Zero
// values mean the defaults named on each field.
type NetworkOptions struct {
	// ClusterCIDRs are the pod address ranges nodeipam carves node
	// podCIDRs from (--cluster-cidr, default "10.244.0.0/16"; at most one
	// per IP family).
	ClusterCIDRs []string
	// NodeCIDRMaskSize is the prefix length of one node's IPv4 podCIDR
	// (--node-cidr-mask-size, default 24); NodeCIDRMaskSizeIPv6 that of an
	// IPv6 one (default 64).
	NodeCIDRMaskSize     int
	NodeCIDRMaskSizeIPv6 int
	// DisableNodeIPAM turns the node IPAM controller off (nodes get their
	// podCIDRs elsewhere), as --allocate-node-cidrs=false.
	DisableNodeIPAM bool
	// ServiceCIDRs are the ClusterIP ranges.
	ServiceCIDRs []string
	// NodeMonitorGracePeriod is how long a node may go without renewing its
	// lease before it is marked NotReady/Unknown
	// (--node-monitor-grace-period, default 50s).
	NodeMonitorGracePeriod time.Duration
	// NodeStartupGracePeriod applies to a node that never posted status
	// (--node-startup-grace-period, default 60s).
	NodeStartupGracePeriod time.Duration
	// NodeMonitorPeriod is how often node health is checked when nothing
	// happens (--node-monitor-period, default 5s).
	NodeMonitorPeriod time.Duration
	// NodeEvictionRate is how many nodes per second may get a NoExecute
	// taint (--node-eviction-rate, default 0.1); negative is unlimited.
	NodeEvictionRate float64
	// MaxEndpointsPerSlice caps EndpointSlices (--max-endpoints-per-slice,
	// default 100).
	MaxEndpointsPerSlice int
	// LoadBalancerIPPools are the address ranges LoadBalancer Services get
	// their ingress IPs from (--lb-pool: CIDRs or "first-last" ranges). No
	// pool leaves the service-lb controller off.
	LoadBalancerIPPools []string
	// LoadBalancerClass is the loadBalancerClass the service-lb controller
	// serves besides none (default "skiff.io/lb").
	LoadBalancerClass string
}

// networkRegistrations are the endpointslice, endpoints, node lifecycle,
// taint eviction, node IPAM and service load balancer controllers.
func networkRegistrations() []Registration {
	return []Registration{
		{Name: endpointslice.Name, New: func(c *Context) (Controller, error) {
			return endpointslice.New(c.Client, c.Informers, c.EventRecorder("endpointslice-controller"), c.Logger, c.Metrics,
				endpointslice.Options{MaxEndpointsPerSlice: c.Options.Network.MaxEndpointsPerSlice})
		}},
		{Name: endpoints.Name, New: func(c *Context) (Controller, error) {
			return endpoints.New(c.Client, c.Informers, c.EventRecorder("endpoint-controller"), c.Logger, c.Metrics)
		}},
		{Name: nodelifecycle.Name, Workers: 2, New: func(c *Context) (Controller, error) {
			n := c.Options.Network
			return nodelifecycle.New(c.Client, c.Informers, c.EventRecorder("node-controller"), c.Logger, c.Metrics, nodelifecycle.Options{
				NodeMonitorGracePeriod: n.NodeMonitorGracePeriod,
				NodeStartupGracePeriod: n.NodeStartupGracePeriod,
				NodeMonitorPeriod:      n.NodeMonitorPeriod,
				EvictionRate:           n.NodeEvictionRate,
			})
		}},
		{Name: nodelifecycle.EvictionName, New: func(c *Context) (Controller, error) {
			return nodelifecycle.NewEviction(c.Client, c.Informers, c.EventRecorder("taint-eviction-controller"), c.Logger, c.Metrics, nil)
		}},
		{Name: nodeipam.Name, Workers: 1, New: func(c *Context) (Controller, error) {
			n := c.Options.Network
			if n.DisableNodeIPAM {
				return nil, nil
			}
			return nodeipam.New(c.Client, c.Informers, c.EventRecorder("node-ipam-controller"), c.Logger, c.Metrics, nodeipam.Options{
				ClusterCIDRs:     n.ClusterCIDRs,
				NodeMaskSize:     n.NodeCIDRMaskSize,
				NodeMaskSizeIPv6: n.NodeCIDRMaskSizeIPv6,
			})
		}},
		{Name: cloud.Name, Workers: 1, New: func(c *Context) (Controller, error) {
			n := c.Options.Network
			if len(n.LoadBalancerIPPools) == 0 {
				c.Logger.Info("no --lb-pool: LoadBalancer Services stay pending")
				return nil, nil
			}
			return cloud.New(c.Client, c.Informers, c.EventRecorder("service-lb-controller"), c.Logger, c.Metrics, cloud.Options{
				Pool:  n.LoadBalancerIPPools,
				Class: n.LoadBalancerClass,
			})
		}},
	}
}

// AddFlags registers the network controllers' flags on fs, with
// kube-controller-manager's names where it has them, writing into o.
func (o *NetworkOptions) AddFlags(fs *flag.FlagSet) {
	list := func(dst *[]string) func(string) error {
		return func(s string) error {
			*dst = nil
			for _, v := range strings.Split(s, ",") {
				if v = strings.TrimSpace(v); v != "" {
					*dst = append(*dst, v)
				}
			}
			return nil
		}
	}
	if len(o.ClusterCIDRs) == 0 {
		o.ClusterCIDRs = []string{nodeipam.DefaultClusterCIDR}
	}
	fs.Func("cluster-cidr", "pod address ranges to carve node podCIDRs from, comma separated, one per IP family (default "+nodeipam.DefaultClusterCIDR+")", list(&o.ClusterCIDRs))
	fs.IntVar(&o.NodeCIDRMaskSize, "node-cidr-mask-size", nodeipam.DefaultNodeMaskSize, "prefix length of a node's IPv4 podCIDR")
	fs.IntVar(&o.NodeCIDRMaskSizeIPv6, "node-cidr-mask-size-ipv6", nodeipam.DefaultNodeMaskSizeIPv6, "prefix length of a node's IPv6 podCIDR")
	fs.BoolFunc("allocate-node-cidrs", "give nodes podCIDRs from --cluster-cidr (default true)", func(s string) error {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		o.DisableNodeIPAM = !v
		return nil
	})
	fs.DurationVar(&o.NodeMonitorGracePeriod, "node-monitor-grace-period", nodelifecycle.DefaultNodeMonitorGracePeriod, "how long a node may go without a heartbeat before it is marked Unknown")
	fs.DurationVar(&o.NodeStartupGracePeriod, "node-startup-grace-period", nodelifecycle.DefaultNodeStartupGracePeriod, "grace period for a node that never posted status")
	fs.DurationVar(&o.NodeMonitorPeriod, "node-monitor-period", nodelifecycle.DefaultNodeMonitorPeriod, "how often node health is checked when nothing happens")
	fs.Float64Var(&o.NodeEvictionRate, "node-eviction-rate", nodelifecycle.DefaultEvictionRate, "nodes per second that may get a NoExecute taint (negative: unlimited)")
	fs.IntVar(&o.MaxEndpointsPerSlice, "max-endpoints-per-slice", endpointslice.DefaultMaxEndpointsPerSlice, "most endpoints in one EndpointSlice (1-1000)")
	fs.Func("lb-pool", "addresses for LoadBalancer Services: CIDRs or first-last ranges, comma separated (none: LoadBalancer Services stay pending)", list(&o.LoadBalancerIPPools))
	fs.StringVar(&o.LoadBalancerClass, "lb-class", cloud.DefaultClass, "loadBalancerClass served besides none")
}
