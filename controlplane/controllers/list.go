package controllers

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/controlplane/controllers/deployment"
	"github.com/skiff-project/skiff/controlplane/controllers/garbagecollector"
	"github.com/skiff-project/skiff/controlplane/controllers/namespace"
	"github.com/skiff-project/skiff/controlplane/controllers/replicaset"
)

// DefaultRegistrations is the controller table: every controller Skiff can
// run, in start order. Each entry wraps a subpackage constructor, passing it
// what it needs from the Context. Owners of controllers add their entries
// here (the network controllers' owner edits the block marked for them).
func DefaultRegistrations() []Registration {
	regs := workloadRegistrations()
	// Network controllers (endpointslice, endpoints, nodelifecycle,
	// nodeipam, cloud): append their registrations below.
	regs = append(regs, networkRegistrations()...)
	return regs
}

// workloadRegistrations are the replicaset, deployment, garbage collector
// and namespace controllers.
func workloadRegistrations() []Registration {
	return []Registration{
		{Name: replicaset.Name, New: func(c *Context) (Controller, error) {
			return replicaset.New(replicaset.Config{
				Client:      c.Client,
				ReplicaSets: c.Informers.Apps().V1().ReplicaSets(),
				Pods:        c.Informers.Core().V1().Pods(),
				Recorder:    c.EventRecorder("replicaset-controller"),
				Logger:      c.Logger,
				Metrics:     c.Metrics,
			})
		}},
		{Name: deployment.Name, New: func(c *Context) (Controller, error) {
			return deployment.New(deployment.Config{
				Client:      c.Client,
				Deployments: c.Informers.Apps().V1().Deployments(),
				ReplicaSets: c.Informers.Apps().V1().ReplicaSets(),
				Pods:        c.Informers.Core().V1().Pods(),
				Recorder:    c.EventRecorder("deployment-controller"),
				Logger:      c.Logger,
				Metrics:     c.Metrics,
			})
		}},
		{Name: garbagecollector.Name, Workers: 20, New: func(c *Context) (Controller, error) {
			if c.Metadata == nil || c.Dynamic == nil {
				return nil, nil // needs metadata and dynamic clients (a real server)
			}
			var ignored []schema.GroupResource
			for _, s := range c.Options.GCIgnoredResources {
				ignored = append(ignored, schema.ParseGroupResource(s))
			}
			return garbagecollector.New(garbagecollector.Config{
				Metadata:  c.Metadata,
				Dynamic:   c.Dynamic,
				Discovery: c.Client.Discovery(),
				Logger:    c.Logger,
				Metrics:   c.Metrics,
				Ignored:   ignored,
			})
		}},
		{Name: namespace.Name, Workers: 10, New: func(c *Context) (Controller, error) {
			if c.Metadata == nil {
				return nil, nil // needs a metadata client (a real server)
			}
			return namespace.New(namespace.Config{
				Client:     c.Client,
				Metadata:   c.Metadata,
				Discovery:  c.Client.Discovery(),
				Namespaces: c.Informers.Core().V1().Namespaces(),
				Logger:     c.Logger,
				Metrics:    c.Metrics,
			})
		}},
	}
}
