// Package endpoints is the Endpoints controller: for every Service with a
// selector it keeps the core/v1 Endpoints object of the same name, as
// kube-controller-manager's endpoint controller does, so that older clients
// and `kubectl describe service` (its Endpoints line) see the backends.
//
// Subsets group addresses by port set, ready addresses apart from not-ready
// ones (all are ready for a Service that publishes not-ready addresses);
// terminating pods are left out unless the Service publishes not-ready
// addresses. An object over MaxCapacity (1000) addresses is truncated, ready
// addresses first, and annotated endpoints.kubernetes.io/over-capacity:
// truncated. Labels are the Service's, plus service.kubernetes.io/headless
// for a headless Service and endpoints.kubernetes.io/managed-by.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

const (
	// Name is the controller's name in the controller manager.
	Name = "endpoints"
	// LabelManagedBy and ControllerName mark the Endpoints this controller
	// writes, with upstream's key and value.
	LabelManagedBy = "endpoints.kubernetes.io/managed-by"
	ControllerName = "endpoint-controller"
	// truncated is the value of the over-capacity annotation.
	truncated  = "truncated"
	maxRetries = 15
)

// Controller keeps the Endpoints objects of Services with selectors.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	stale    *staleTracker
	writes   *prometheus.CounterVec
}

// New builds the controller and registers its informers on factory. reg may
// be nil.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer) (*Controller, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	epInf := factory.Core().V1().Endpoints()
	c := &Controller{
		client:    client,
		services:  svcInf.Lister(),
		pods:      podInf.Lister(),
		endpoints: epInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: recorder,
		log:      log,
		stale:    &staleTracker{rv: map[string]string{}},
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_endpoints_controller_writes_total",
			Help: "Endpoints writes by operation (create, update, delete).",
		}, []string{"operation"}),
	}
	if reg != nil {
		if err := reg.Register(c.writes); err != nil {
			return nil, fmt.Errorf("endpoints: register metrics: %w", err)
		}
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("endpoints: service handler: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueuePodServices(obj) },
		UpdateFunc: func(oldObj, newObj any) {
			c.enqueuePodServices(newObj)
			if o, n := oldObj.(*corev1.Pod), newObj.(*corev1.Pod); !labels.Equals(o.Labels, n.Labels) {
				c.enqueuePodServices(oldObj)
			}
		},
		DeleteFunc: func(obj any) { c.enqueuePodServices(obj) },
	}); err != nil {
		return nil, fmt.Errorf("endpoints: pod handler: %w", err)
	}
	if _, err := epInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Repair edits and deletions of the objects this controller owns.
		UpdateFunc: func(_, obj any) {
			if ep, ok := obj.(*corev1.Endpoints); ok && ep.Labels[LabelManagedBy] == ControllerName {
				enqueue(obj)
			}
		},
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("endpoints: endpoints handler: %w", err)
	}
	c.synced = []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, epInf.Informer().HasSynced}
	return c, nil
}

// Name implements the controller manager's Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the caches, queues the Endpoints this controller made for
// Services that are gone (deleted while no controller ran), runs workers
// until ctx ends and returns nil.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers)
	l := worker.Loop{Queue: c.queue, Sync: worker.ErrorOnly(c.sync), Start: c.enqueueOwned,
		Log: c.log, Kind: "service", MaxRetries: maxRetries}
	return l.Run(ctx, workers, c.synced...)
}

// enqueueOwned queues the Endpoints this controller made, so that those of
// Services deleted while no controller ran are removed. It never fails.
func (c *Controller) enqueueOwned() error {
	if eps, err := c.endpoints.List(labels.SelectorFromSet(labels.Set{LabelManagedBy: ControllerName})); err == nil {
		for _, ep := range eps {
			c.queue.Add(ep.Namespace + "/" + ep.Name)
		}
	}
	return nil
}

func (c *Controller) enqueuePodServices(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	svcs, err := c.services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		if s.Spec.Selector != nil && labels.Set(s.Spec.Selector).AsSelectorPreValidated().Matches(labels.Set(pod.Labels)) {
			c.queue.Add(pod.Namespace + "/" + s.Name)
		}
	}
}

// errStale makes a sync retry while the cache still shows an object this
// controller has already replaced.
var errStale = errors.New("endpoints cache is older than the last write")

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The Service is gone: so are its Endpoints (as upstream).
		err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints: %w", err)
		}
		if err == nil {
			c.writes.WithLabelValues("delete").Inc()
		}
		c.stale.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	pods, err := c.pods.Pods(ns).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	subsets := desiredSubsets(svc, pods)

	cur, err := c.endpoints.Endpoints(ns).Get(name)
	exists := err == nil
	switch {
	case apierrors.IsNotFound(err):
		cur = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	case err != nil:
		return err
	case c.stale.isStale(key, cur.ResourceVersion):
		return errStale
	}

	over := truncate(subsets)
	wantLabels := endpointsLabels(svc)
	_, annotated := cur.Annotations[corev1.EndpointsOverCapacity]
	if exists &&
		apiequality.Semantic.DeepEqual(cur.Subsets, subsets) &&
		maps.Equal(cur.Labels, wantLabels) && annotated == over {
		return nil
	}

	next := cur.DeepCopy()
	next.Subsets = subsets
	next.Labels = wantLabels
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	if over {
		next.Annotations[corev1.EndpointsOverCapacity] = truncated
	} else {
		delete(next.Annotations, corev1.EndpointsOverCapacity)
	}
	if len(next.Annotations) == 0 {
		next.Annotations = nil
	}

	if !exists {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, next, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			if apierrors.IsAlreadyExists(err) {
				// Made meanwhile (our earlier write not yet in the cache).
				return err
			}
			c.event(svc, "FailedToCreateEndpoint", "Failed to create endpoint for service %s/%s: %v", ns, name, err)
			return fmt.Errorf("create endpoints: %w", err)
		}
		c.writes.WithLabelValues("create").Inc()
		return nil
	}
	updated, err := c.client.CoreV1().Endpoints(ns).Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsConflict(err) {
			c.event(svc, "FailedToUpdateEndpoint", "Failed to update endpoint %s/%s: %v", ns, name, err)
		}
		return fmt.Errorf("update endpoints: %w", err)
	}
	if updated.ResourceVersion != cur.ResourceVersion {
		c.stale.replaced(key, cur.ResourceVersion)
	}
	c.writes.WithLabelValues("update").Inc()
	return nil
}

func (c *Controller) event(svc *corev1.Service, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, reason, format, args...)
	}
}

// endpointsLabels are the Service's labels with the headless and managed-by
// labels set as upstream does.
func endpointsLabels(svc *corev1.Service) map[string]string {
	l := make(map[string]string, len(svc.Labels)+2)
	for k, v := range svc.Labels {
		l[k] = v
	}
	delete(l, corev1.IsHeadlessService)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	}
	l[LabelManagedBy] = ControllerName
	return l
}

// staleTracker remembers, per Endpoints object, the resourceVersion an
// update replaced: a cache that still shows it is behind our own write.
type staleTracker struct {
	mu sync.Mutex
	rv map[string]string
}

func (s *staleTracker) replaced(key, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv[key] = rv
}

func (s *staleTracker) isStale(key, cachedRV string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.rv[key]
	if !ok {
		return false
	}
	if cachedRV == old {
		return true
	}
	delete(s.rv, key)
	return false
}

func (s *staleTracker) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rv, key)
}
