// Package controllers is Skiff's controller manager: the counterpart of
// kube-controller-manager. It owns the registry of controllers (a name to
// constructor table, see list.go), the --controllers enablement rules
// ("*", "foo", "-foo"), the shared informer factories and event broadcaster
// every controller gets through a Context, and the lifecycle that starts the
// informers, runs the enabled controllers and stops them.
//
// Controllers live in subpackages (replicaset, deployment, garbagecollector,
// namespace, endpointslice, ...). A subpackage does not import this package:
// its constructor takes the informers and clients it needs, and list.go wraps
// it in a Constructor. Every controller talks to the API server only through
// the API (list+watch informers, REST writes), so several managers may run
// side by side under leader election.
package controllers
