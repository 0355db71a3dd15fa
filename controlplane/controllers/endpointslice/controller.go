// Package endpointslice is the EndpointSlice controller: for every Service
// with a selector it keeps discovery.k8s.io/v1 EndpointSlices listing the
// matching pods, as kube-controller-manager's endpointslice controller does.
//
// Endpoints carry the ready, serving and terminating conditions, the pod's
// node, zone (topology.kubernetes.io/zone of the node) and hostname (for a
// pod whose subdomain is the Service), and a targetRef to the pod. Named
// target ports are resolved per pod; pods that resolve to different port
// numbers (or lack a named port) land in different slices, one port set per
// slice. A slice holds at most MaxEndpointsPerSlice endpoints (100). Slices
// are labelled kubernetes.io/service-name and
// endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io and
// controlled by the Service (ownerReference), and are packed to keep churn
// low (see reconciler). Services without a selector are left to whoever
// writes their slices; the controller only removes slices it made itself.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

const (
	// Name is the controller's name in the controller manager.
	Name = "endpointslice"
	// ControllerName is the value of the managed-by label on the slices this
	// controller owns (upstream's, so that tools recognise them).
	ControllerName = "endpointslice-controller.k8s.io"
	// DefaultMaxEndpointsPerSlice is upstream's --max-endpoints-per-slice.
	DefaultMaxEndpointsPerSlice = 100
	// maxRetries bounds the rate-limited retries of one Service before it
	// waits for the next change.
	maxRetries = 15
)

// Options configure the controller.
type Options struct {
	// MaxEndpointsPerSlice caps the endpoints of one slice (1..1000);
	// zero means DefaultMaxEndpointsPerSlice.
	MaxEndpointsPerSlice int
}

// Controller keeps the EndpointSlices of Services with selectors.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	podIndex cache.Indexer
	nodes    corelisters.NodeLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	r        reconciler
	tracker  *tracker
	metrics  *metrics
}

// New builds the controller and registers its informers on factory. reg may
// be nil.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Controller, error) {
	if opts.MaxEndpointsPerSlice == 0 {
		opts.MaxEndpointsPerSlice = DefaultMaxEndpointsPerSlice
	}
	if opts.MaxEndpointsPerSlice < 1 || opts.MaxEndpointsPerSlice > 1000 {
		return nil, fmt.Errorf("endpointslice: max endpoints per slice %d is outside 1..1000", opts.MaxEndpointsPerSlice)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	if err := AddPodNodeIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	c := &Controller{
		client:   client,
		services: svcInf.Lister(),
		pods:     podInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(),
		nodes:    nodeInf.Lister(),
		slices:   sliceInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: recorder,
		log:      log,
		r:        reconciler{maxPerSlice: opts.MaxEndpointsPerSlice},
		tracker:  newTracker(),
		metrics:  m,
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueObject,
		UpdateFunc: func(_, obj any) { c.enqueueObject(obj) },
		DeleteFunc: c.enqueueObject,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: service handler: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podAdded,
		UpdateFunc: c.podUpdated,
		DeleteFunc: c.podDeleted,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: pod handler: %w", err)
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: c.nodeUpdated,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: node handler: %w", err)
	}
	if _, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.sliceChanged,
		UpdateFunc: func(_, obj any) { c.sliceChanged(obj) },
		DeleteFunc: c.sliceDeleted,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: slice handler: %w", err)
	}
	c.synced = []cache.InformerSynced{
		svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
		nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced,
	}
	return c, nil
}

// Name implements the controller manager's Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the caches, runs workers until ctx ends and returns nil.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers, "maxEndpointsPerSlice", c.r.maxPerSlice)
	l := worker.Loop{Queue: c.queue, Sync: worker.ErrorOnly(c.sync), Log: c.log, Kind: "service", MaxRetries: maxRetries,
		Observe: func(err error) { c.metrics.syncs.WithLabelValues(result(err)).Inc() }}
	return l.Run(ctx, workers, c.synced...)
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

// errStaleCache makes a sync retry when the cache misses its own writes.
var errStaleCache = errors.New("endpoint slice cache is older than the last writes")

// sync makes the Service's slices match its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	existing, err := c.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:   ControllerName,
	}))
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Deleted: the garbage collector removes the slices through their
		// ownerReference; delete them here too so that a cluster without it
		// (or a controller restarted meanwhile) does not keep them.
		err := c.deleteAll(ctx, existing)
		if err == nil {
			c.tracker.forget(key)
		}
		return err
	}
	if err != nil {
		return err
	}
	if svc.DeletionTimestamp != nil {
		return nil
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		// No endpoints from this controller; drop the slices it made while
		// the Service had a selector.
		return c.deleteAll(ctx, existing)
	}

	byName := make(map[string]*discoveryv1.EndpointSlice, len(existing))
	for _, s := range existing {
		byName[s.Name] = s
	}
	if c.tracker.stale(key, byName) {
		return errStaleCache
	}

	podList, err := c.pods.Pods(ns).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	p := c.r.reconcile(svc, podList, existing, c.zoneOf)
	if p.empty() {
		return nil
	}
	if err := c.apply(ctx, key, p); err != nil {
		if c.recorder != nil && !apierrors.IsConflict(err) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
				"Error updating Endpoint Slices for Service %s/%s: %v", svc.Namespace, svc.Name, err)
		}
		return err
	}
	return nil
}

// apply writes a plan: creates first, then updates, then deletes, so that
// consumers never see a Service's endpoints shrink on the way.
func (c *Controller) apply(ctx context.Context, key string, p plan) error {
	var errs []error
	for _, s := range p.create {
		got, err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			errs = append(errs, fmt.Errorf("create endpoint slice: %w", err))
			continue
		}
		c.tracker.created(key, got)
		c.metrics.changes.WithLabelValues("create").Inc()
	}
	for _, s := range p.update {
		oldRV := s.ResourceVersion
		got, err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update endpoint slice %s: %w", s.Name, err))
			continue
		}
		c.tracker.updated(key, oldRV, got)
		c.metrics.changes.WithLabelValues("update").Inc()
	}
	if err := c.deleteAll(ctx, p.delete); err != nil {
		errs = append(errs, err)
	} else {
		for _, s := range p.delete {
			c.tracker.deleted(key, s)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) deleteAll(ctx context.Context, ss []*discoveryv1.EndpointSlice) error {
	var errs []error
	for _, s := range ss {
		err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &s.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete endpoint slice %s: %w", s.Name, err))
			continue
		}
		c.metrics.changes.WithLabelValues("delete").Inc()
	}
	return errors.Join(errs...)
}

func (c *Controller) zoneOf(node string) string {
	if node == "" {
		return ""
	}
	n, err := c.nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[corev1.LabelTopologyZone]
}

// Event handlers: they only enqueue Service keys.

func (c *Controller) enqueueObject(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueServicesOf(pod *corev1.Pod) {
	svcs, err := c.services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	set := labels.Set(pod.Labels)
	for _, s := range svcs {
		if s.Spec.Selector == nil {
			continue
		}
		if labels.Set(s.Spec.Selector).AsSelectorPreValidated().Matches(set) {
			c.queue.Add(pod.Namespace + "/" + s.Name)
		}
	}
}

func (c *Controller) podAdded(obj any) {
	if pod, ok := obj.(*corev1.Pod); ok {
		c.enqueueServicesOf(pod)
	}
}

func (c *Controller) podUpdated(oldObj, newObj any) {
	oldPod, ok1 := oldObj.(*corev1.Pod)
	newPod, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	c.enqueueServicesOf(newPod)
	if !labels.Equals(oldPod.Labels, newPod.Labels) {
		c.enqueueServicesOf(oldPod)
	}
}

func (c *Controller) podDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		c.enqueueServicesOf(pod)
	}
}

func (c *Controller) nodeUpdated(oldObj, newObj any) {
	oldNode, ok1 := oldObj.(*corev1.Node)
	newNode, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 || oldNode.Labels[corev1.LabelTopologyZone] == newNode.Labels[corev1.LabelTopologyZone] {
		return
	}
	objs, err := c.podIndex.ByIndex(PodNodeIndex, newNode.Name)
	if err != nil {
		return
	}
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok {
			c.enqueueServicesOf(pod)
		}
	}
}

func (c *Controller) sliceChanged(obj any) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		return
	}
	if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
		c.queue.Add(s.Namespace + "/" + svc)
	}
}

func (c *Controller) sliceDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		return
	}
	if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
		key := s.Namespace + "/" + svc
		c.tracker.observedDelete(key, s.Name)
		c.queue.Add(key)
	}
}

// PodNodeIndex is the name of the pod informer index by spec.nodeName.
const PodNodeIndex = "spec.nodeName"

// AddPodNodeIndex adds the spec.nodeName index to a shared pod informer,
// tolerating that another controller added it already.
func AddPodNodeIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[PodNodeIndex]; ok {
		return nil
	}
	err := inf.AddIndexers(cache.Indexers{PodNodeIndex: func(obj any) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return nil, nil
		}
		return []string{pod.Spec.NodeName}, nil
	}})
	if err != nil {
		if _, ok := inf.GetIndexer().GetIndexers()[PodNodeIndex]; ok {
			return nil
		}
		return fmt.Errorf("add pod index %s: %w", PodNodeIndex, err)
	}
	return nil
}

type metrics struct {
	changes *prometheus.CounterVec
	syncs   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_endpointslice_controller_changes_total",
			Help: "EndpointSlice writes by operation (create, update, delete).",
		}, []string{"operation"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_endpointslice_controller_syncs_total",
			Help: "Service syncs by result (success, error).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.changes, m.syncs} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("endpointslice: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
