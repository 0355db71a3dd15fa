// Package framework is the scheduler's plugin framework: one small interface
// per extension point (QueueSort, PreEnqueue, PreFilter, Filter, PostFilter,
// PreScore, Score with NormalizeScore, Reserve/Unreserve, Permit, PreBind,
// Bind, PostBind), the Status and CycleState that plugins exchange with the
// framework, and the data plugins read: NodeInfo (a node with its pods,
// requested resources and host ports), PodInfo (a pod with its parsed
// affinity terms and requests) and the snapshot listers.
//
// The types follow the Kubernetes scheduling framework so that its plugins'
// semantics carry over; they are concrete types rather than interfaces where
// that keeps the per-node hot path free of indirection. The runtime that
// runs a profile's plugins lives in framework/runtime.
package framework
