package controllers

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// Controller is one control loop run by the Manager.
//
// Run blocks until ctx ends, running workers goroutines that process the
// controller's work queue; it waits for the caches it needs to sync before
// processing. It returns nil when ctx ends and an error only when the
// controller cannot run at all. Handlers only enqueue keys: all work happens
// in the workers.
type Controller interface {
	Name() string
	Run(ctx context.Context, workers int) error
}

// Constructor builds a controller from the shared Context. It must register
// the informers it needs on c.Informers (by calling their Informer() or
// Lister() methods) before returning, so that the manager's Start of the
// factory starts them. A constructor that returns (nil, nil) disables the
// controller for this run (for example when an option it needs is unset).
type Constructor func(c *Context) (Controller, error)

// Registration names a controller and how to build it.
type Registration struct {
	// Name is the controller's name as --controllers spells it
	// ("replicaset", "garbagecollector").
	Name string
	// New builds the controller.
	New Constructor
	// DisabledByDefault keeps the controller off under "*"; only naming it
	// explicitly enables it (as kube-controller-manager's bootstrapsigner).
	DisabledByDefault bool
	// Workers is the default number of concurrent syncs; Options.Workers
	// overrides it by name. Zero means DefaultWorkers.
	Workers int
}

// DefaultWorkers is the number of workers a controller runs when neither its
// Registration nor Options.Workers says otherwise.
const DefaultWorkers = 5

// Context is what every controller constructor gets: shared clients,
// informer factories, events, logging, metrics and options. One Context is
// built per Manager.Run; controllers must not keep it past their Run.
type Context struct {
	// Client is the typed clientset.
	Client kubernetes.Interface
	// Metadata is a metadata-only client (PartialObjectMetadata) for
	// resources the controller does not need typed: the garbage collector
	// and the namespace controller use it with discovery. Nil when the
	// Manager was built without a RESTConfig and without a metadata client.
	Metadata metadata.Interface
	// Dynamic is a dynamic client (unstructured objects), for informers
	// over resources found by discovery. Nil like Metadata.
	Dynamic dynamic.Interface
	// RESTConfig is the configuration the clients were built from, nil when
	// the Manager was given clients directly (unit tests).
	RESTConfig *rest.Config

	// Informers is the shared typed informer factory. The manager starts it
	// after every enabled controller is constructed and shuts it down when
	// Run returns.
	Informers informers.SharedInformerFactory

	// Logger is the manager's logger with a "controller" attribute set to
	// the controller's name.
	Logger *slog.Logger
	// Metrics is where the controller registers its Prometheus collectors;
	// they are unregistered when Run returns, so a Manager may Run again
	// (a new leadership term) with the same registry.
	Metrics prometheus.Registerer

	// Options are the manager-wide settings.
	Options Options

	// InformersStarted is closed once the manager has started the informer
	// factory. Controllers that create informers lazily (the garbage
	// collector's per-resource monitors) start them themselves after it.
	InformersStarted <-chan struct{}

	recorders func(component string) record.EventRecorder
}

// EventRecorder returns a recorder that writes core/v1 Events with the given
// source component ("replicaset-controller"), through the manager's shared
// broadcaster (with client-go's spam filter and aggregation).
func (c *Context) EventRecorder(component string) record.EventRecorder {
	return c.recorders(component)
}

// Options are the manager-wide settings controllers read.
type Options struct {
	// Workers overrides the number of workers per controller name.
	Workers map[string]int
	// ResyncPeriod is the shared informers' resync period; zero disables
	// periodic resyncs (the default: controllers are level-triggered on
	// events and requeue themselves when they wait for time to pass).
	ResyncPeriod time.Duration
	// GCIgnoredResources are extra "group/resource" names the garbage
	// collector does not watch (besides events, which it never watches).
	GCIgnoredResources []string
	// Network are the options of the network controllers (network.go).
	Network NetworkOptions
}
