package controllers

import "time"

// NetworkOptions are the settings of the network controllers (endpointslice,
// endpoints, nodelifecycle, nodeipam) and the cloud controller. This file
// belongs to the network controllers: their owner adds fields here.
type NetworkOptions struct {
	// ClusterCIDRs are the pod address ranges nodeipam carves node
	// podCIDRs from ("10.244.0.0/16").
	ClusterCIDRs []string
	// NodeCIDRMaskSize is the prefix length of one node's podCIDR.
	NodeCIDRMaskSize int
	// ServiceCIDRs are the ClusterIP ranges.
	ServiceCIDRs []string
	// NodeMonitorGracePeriod is how long a node may go without renewing its
	// lease before it is marked NotReady/Unknown.
	NodeMonitorGracePeriod time.Duration
	// LoadBalancerIPPools are the address ranges LoadBalancer Services get
	// their ingress IPs from.
	LoadBalancerIPPools []string
}
