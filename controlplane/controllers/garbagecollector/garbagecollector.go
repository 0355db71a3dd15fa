// Package garbagecollector is the garbage collector: it deletes objects
// whose owners are gone, following metadata.ownerReferences as Kubernetes
// does for kubectl delete --cascade=background|foreground|orphan.
//
// Monitors (metadata-only informers, one per resource that can be listed,
// watched and deleted, found by discovery) feed a single graph builder that
// keeps the owner -> dependents graph. Workers then act on it:
//   - attemptToDelete checks an object's owners with live GETs (UID
//     compared, so a re-created owner of the same name does not count) and
//     deletes it when none is left, or drops references to owners that are
//     gone while another owner remains;
//   - an owner deleted in the foreground (deletionTimestamp and the
//     foregroundDeletion finalizer, set by the API server) has its
//     dependents deleted first; once none with blockOwnerDeletion remains,
//     the finalizer is removed and the API server removes the owner;
//   - an owner deleted with the orphan finalizer has the references to it
//     removed from its dependents, then the finalizer removed.
//
// Background deletion needs nothing more: the owner goes at once and its
// dependents are collected when the graph sees it go.
package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/resources"
)

// Name is the controller's name in the manager.
const Name = "garbagecollector"

// DefaultIgnored are resources the collector never watches: events are
// numerous and never own anything.
var DefaultIgnored = []schema.GroupResource{
	{Group: "", Resource: "events"},
	{Group: "events.k8s.io", Resource: "events"},
}

// Config is what the collector needs.
type Config struct {
	// Metadata is kept for callers; the collector reads, patches, deletes
	// and watches through Dynamic (its informers' caches trimmed to
	// metadata).
	Metadata  metadata.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Logger    *slog.Logger
	Metrics   prometheus.Registerer
	// Ignored are resources not to watch, besides DefaultIgnored.
	Ignored []schema.GroupResource
	// DiscoveryPeriod is how often discovery is repeated to watch newly
	// served resources; zero means 30s.
	DiscoveryPeriod time.Duration
}

// Controller is the garbage collector.
type Controller struct {
	md       metadata.Interface
	dyn      dynamic.Interface
	disc     discovery.DiscoveryInterface
	log      *slog.Logger
	ignored  map[schema.GroupResource]bool
	period   time.Duration
	graph    *graph
	absent   *uidCache
	changes  workqueue.TypedInterface[*event]
	toDelete workqueue.TypedRateLimitingInterface[*node]
	toOrphan workqueue.TypedRateLimitingInterface[*node]

	mu        sync.Mutex
	resources *resources.Set
	monitors  map[schema.GroupVersionResource]*monitor

	deletes *prometheus.CounterVec
}

type monitor struct {
	res    resources.Resource
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
}

type eventType int

const (
	addEvent eventType = iota
	updateEvent
	deleteEvent
)

// event is one change the graph builder applies. A virtual delete carries
// only an identity: an object found absent by a worker.
type event struct {
	typ     eventType
	virtual bool
	gvk     schema.GroupVersionKind
	obj     *metav1.PartialObjectMetadata
	old     *metav1.PartialObjectMetadata
	id      identity
}

// New builds the collector.
func New(cfg Config) (*Controller, error) {
	if cfg.Metadata == nil || cfg.Dynamic == nil || cfg.Discovery == nil {
		return nil, errors.New("garbage collector: metadata and dynamic clients and discovery are required")
	}
	c := &Controller{
		md:       cfg.Metadata,
		dyn:      cfg.Dynamic,
		disc:     cfg.Discovery,
		log:      cfg.Logger,
		ignored:  map[schema.GroupResource]bool{},
		period:   cfg.DiscoveryPeriod,
		graph:    newGraph(),
		absent:   newUIDCache(10000),
		changes:  workqueue.NewTyped[*event](),
		toDelete: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[*node](), workqueue.TypedRateLimitingQueueConfig[*node]{Name: "garbage_collector_attempt_to_delete"}),
		toOrphan: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[*node](), workqueue.TypedRateLimitingQueueConfig[*node]{Name: "garbage_collector_attempt_to_orphan"}),
		monitors: map[schema.GroupVersionResource]*monitor{},
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_garbage_collector_deletes_total",
			Help: "Objects deleted by the garbage collector, by propagation policy.",
		}, []string{"policy"}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.period <= 0 {
		c.period = 30 * time.Second
	}
	for _, gr := range append(append([]schema.GroupResource(nil), DefaultIgnored...), cfg.Ignored...) {
		c.ignored[gr] = true
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.deletes); err != nil {
			return nil, fmt.Errorf("register garbage collector metrics: %w", err)
		}
	}
	return c, nil
}

// Name implements controllers.Controller.
func (c *Controller) Name() string { return Name }

// Run discovers resources, starts their monitors, builds the graph and runs
// workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer c.changes.ShutDown()
	defer c.toDelete.ShutDown()
	defer c.toOrphan.ShutDown()
	c.log.Info("starting garbage collector")

	var wg sync.WaitGroup
	wg.Go(func() {
		for c.processGraphChange() {
		}
	})
	// Discovery, and the monitors' first sync, before any worker acts:
	// acting on a half-built graph would collect objects whose owners
	// simply were not listed yet.
	for {
		if err := c.resync(ctx); err == nil {
			break
		} else {
			c.log.Warn("garbage collector discovery failed, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			c.stopMonitors()
			c.changes.ShutDown()
			wg.Wait()
			return nil
		case <-time.After(time.Second):
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced()...) {
		c.stopMonitors()
		c.changes.ShutDown()
		wg.Wait()
		return nil
	}
	c.log.Info("garbage collector graph synced", "nodes", c.graph.size())
	for range workers {
		wg.Go(func() {
			for c.processAttemptToDelete(ctx) {
			}
		})
		wg.Go(func() {
			for c.processAttemptToOrphan(ctx) {
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(c.period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.resync(ctx); err != nil {
					c.log.Warn("garbage collector rediscovery", "err", err)
				}
			}
		}
	})
	<-ctx.Done()
	c.stopMonitors()
	c.changes.ShutDown()
	c.toDelete.ShutDown()
	c.toOrphan.ShutDown()
	wg.Wait()
	return nil
}

// resync runs discovery and starts monitors for new resources (and stops
// those of resources no longer served).
func (c *Controller) resync(ctx context.Context) error {
	set, err := resources.Discover(c.disc, "list", "watch", "delete")
	if set == nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resources = set
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range set.List() {
		if c.ignored[r.GVR.GroupResource()] {
			continue
		}
		seen[r.GVR] = true
		if _, ok := c.monitors[r.GVR]; ok {
			continue
		}
		c.monitors[r.GVR] = c.startMonitor(ctx, r)
	}
	for gvr, m := range c.monitors {
		if !seen[gvr] {
			m.cancel()
			delete(c.monitors, gvr)
		}
	}
	return err
}

func (c *Controller) startMonitor(ctx context.Context, r resources.Resource) *monitor {
	// Dynamic informers list and watch full objects; the transform keeps
	// only metadata in the cache, which is all the graph needs.
	inf := dynamicinformer.NewFilteredDynamicInformer(c.dyn, r.GVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	_ = inf.SetTransform(toPartial)
	gvk := r.GVK()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.changes.Add(&event{typ: addEvent, gvk: gvk, obj: m})
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*metav1.PartialObjectMetadata)
			n, ok2 := cur.(*metav1.PartialObjectMetadata)
			if ok1 && ok2 {
				c.changes.Add(&event{typ: updateEvent, gvk: gvk, obj: n, old: o})
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.changes.Add(&event{typ: deleteEvent, gvk: gvk, obj: m})
			}
		},
	})
	mctx, cancel := context.WithCancel(ctx)
	go inf.RunWithContext(mctx)
	return &monitor{res: r, inf: inf, cancel: cancel}
}

func (c *Controller) synced() []cache.InformerSynced {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cache.InformerSynced
	for _, m := range c.monitors {
		out = append(out, m.inf.HasSynced)
	}
	return out
}

func (c *Controller) stopMonitors() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for gvr, m := range c.monitors {
		m.cancel()
		delete(c.monitors, gvr)
	}
}

func (c *Controller) resourceFor(apiVersion, kind string) (resources.Resource, error) {
	c.mu.Lock()
	set := c.resources
	c.mu.Unlock()
	if set == nil {
		return resources.Resource{}, errors.New("resources not discovered yet")
	}
	return set.ForKind(apiVersion, kind)
}

// toPartial trims an informer's object to its metadata.
func toPartial(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()},
		ObjectMeta: metav1.ObjectMeta{
			Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
			ResourceVersion: u.GetResourceVersion(), Generation: u.GetGeneration(),
			DeletionTimestamp: u.GetDeletionTimestamp(), Finalizers: u.GetFinalizers(),
			OwnerReferences: u.GetOwnerReferences(), CreationTimestamp: u.GetCreationTimestamp(),
		},
	}, nil
}

// uidCache remembers UIDs known to be absent (UIDs are never reused).
type uidCache struct {
	mu   sync.Mutex
	max  int
	uids map[types.UID]struct{}
}

func newUIDCache(max int) *uidCache { return &uidCache{max: max, uids: map[types.UID]struct{}{}} }

func (u *uidCache) add(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.uids) >= u.max {
		clear(u.uids)
	}
	u.uids[uid] = struct{}{}
}

func (u *uidCache) has(uid types.UID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.uids[uid]
	return ok
}

func hasFinalizer(m metav1.Object, f string) bool { return slices.Contains(m.GetFinalizers(), f) }
