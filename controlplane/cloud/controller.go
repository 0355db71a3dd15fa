// Package cloud is Skiff's cloud controller: it plays the part a cloud
// provider's service controller plays for Services of type LoadBalancer,
// with addresses from a configured pool (--lb-pool) instead of a cloud API,
// as MetalLB, kube-vip or k3s' servicelb do on bare metal. The node agents
// program the addresses into XDP; this package only allocates them.
//
// A LoadBalancer Service without a loadBalancerClass, or with Skiff's class
// (Options.Class), gets one address per IP family it has (and the pool
// offers), or the address in its spec.loadBalancerIP (deprecated, still
// honoured), written to status.loadBalancer.ingress[].ip with ipMode VIP
// through the services/status subresource. The address is released when the
// Service is deleted or stops being a LoadBalancer. The finalizer
// service.kubernetes.io/load-balancer-cleanup (upstream's) makes the
// deletion wait until the address is released.
//
// Allocations live in the Services' status: at start the controller reads
// every Service's ingress addresses back into the pool before it allocates
// anything, so an address is never handed out twice, across restarts and
// between replicas under leader election alike. A Service the pool cannot
// serve (exhausted, loadBalancerIP outside the pool or taken) stays pending
// with an AllocationFailed Warning event and is retried when an address
// frees up. Events EnsuringLoadBalancer, EnsuredLoadBalancer and
// DeletedLoadBalancer are those of upstream's service controller.
//
// The controller runs in the controller manager like any other (Name
// "service-lb") rather than as a separate cloud-controller-manager: the
// split exists upstream to keep cloud SDKs out of the core, which does not
// apply to a built-in pool, and one leader lease for all controllers is
// simpler to run.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

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
	Name = "service-lb"
	// DefaultClass is the loadBalancerClass Skiff answers to besides none.
	DefaultClass = "skiff.io/lb"
	// Finalizer is upstream's load balancer cleanup finalizer.
	Finalizer = "service.kubernetes.io/load-balancer-cleanup"

	maxRetries = 15
	// pendingRetry is how often a Service waiting for an address is
	// retried even when no address frees up.
	pendingRetry = time.Minute
)

// Options configure the controller.
type Options struct {
	// Pool are the --lb-pool entries (CIDRs or "first-last" ranges).
	Pool []string
	// Class is the loadBalancerClass handled besides none; empty means
	// DefaultClass.
	Class string
}

// Controller allocates LoadBalancer addresses.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	synced   cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	class    string

	mu   sync.Mutex
	pool *Pool

	allocated prometheus.Gauge
	size      prometheus.Gauge
	failures  prometheus.Counter
}

// New builds the controller and registers its informer on factory. reg may
// be nil.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Controller, error) {
	pool, err := ParsePool(opts.Pool)
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	if opts.Class == "" {
		opts.Class = DefaultClass
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svcInf := factory.Core().V1().Services()
	c := &Controller{
		client:   client,
		services: svcInf.Lister(),
		synced:   svcInf.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: recorder,
		log:      log,
		class:    opts.Class,
		pool:     pool,
		allocated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_lb_pool_allocated_addresses",
			Help: "LoadBalancer addresses held by Services.",
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_lb_pool_addresses",
			Help: "Addresses in the LoadBalancer pool.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_lb_pool_allocation_failures_total",
			Help: "LoadBalancer address allocations that failed (pool exhausted, address taken or outside the pool).",
		}),
	}
	c.size.Set(pool.Size())
	if reg != nil {
		for _, col := range []prometheus.Collector{c.allocated, c.size, c.failures} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("cloud: register metrics: %w", err)
			}
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
		return nil, fmt.Errorf("cloud: service handler: %w", err)
	}
	return c, nil
}

// Name implements the controller manager's Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the Service cache, reads the addresses Services hold back
// into the pool, then runs workers until ctx ends. It returns nil.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers, "class", c.class, "poolSize", c.pool.Size())
	l := worker.Loop{Queue: c.queue, Sync: c.sync, Start: c.recover, Log: c.log, Kind: "service", MaxRetries: maxRetries}
	return l.Run(ctx, workers, c.synced)
}

// recover marks the pool addresses in the status of the Services this
// controller serves (or served: they still carry its finalizer) as held by
// them.
// When two Services claim one address the older keeps it; the other is
// given a new one by its sync.
func (c *Controller) recover() error {
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("cloud: list services: %w", err)
	}
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return 0
		}
		if a.CreationTimestamp.Before(&b.CreationTimestamp) {
			return -1
		}
		return 1
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, svc := range svcs {
		// Services of another class keep whatever their controller gave
		// them, even from our range.
		if !c.handles(svc) && !slices.Contains(svc.Finalizers, Finalizer) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		for _, a := range c.statusAddrs(svc) {
			if err := c.pool.AllocateSpecific(key, a); err != nil {
				c.log.Warn("address claimed twice; the younger Service gets a new one", "service", key, "ip", a, "err", err)
				continue
			}
			n++
		}
	}
	c.allocated.Set(float64(c.pool.Allocated()))
	c.log.Info("recovered load balancer addresses", "addresses", n)
	return nil
}

// handles reports whether svc is a LoadBalancer this controller serves.
func (c *Controller) handles(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	return svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == c.class
}

// sync makes one Service's address match its spec. It returns when to retry
// a Service left pending.
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if svc.DeletionTimestamp != nil || !c.handles(svc) {
		return 0, c.cleanup(ctx, svc, key)
	}

	if !slices.Contains(svc.Finalizers, Finalizer) {
		s := svc.DeepCopy()
		s.Finalizers = append(s.Finalizers, Finalizer)
		if _, err := c.client.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return 0, fmt.Errorf("add finalizer: %w", err)
		}
		// The update brings the Service back through the queue.
		return 0, nil
	}

	addrs, failure := c.ensure(svc, key)
	if failure != nil {
		c.failures.Inc()
		c.log.Warn("load balancer address allocation failed", "service", key, "err", failure)
		c.event(svc, corev1.EventTypeWarning, "AllocationFailed", "Failed to allocate IP for %q: %v", key, failure)
	}
	want := ingress(addrs)
	if apiequality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, want) {
		if failure != nil {
			return pendingRetry, nil
		}
		return 0, nil
	}
	c.event(svc, corev1.EventTypeNormal, "EnsuringLoadBalancer", "Ensuring load balancer")
	s := svc.DeepCopy()
	s.Status.LoadBalancer.Ingress = want
	if _, err := c.client.CoreV1().Services(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		// The addresses stay held by the Service; the retry writes them.
		return 0, fmt.Errorf("update status: %w", err)
	}
	if len(want) > 0 {
		c.log.Info("load balancer addresses assigned", "service", key, "ips", addrs)
		c.event(svc, corev1.EventTypeNormal, "EnsuredLoadBalancer", "Ensured load balancer")
	}
	if failure != nil {
		return pendingRetry, nil
	}
	return 0, nil
}

// ensure reserves the Service's addresses and returns them (in ipFamilies
// order) with the reason it got fewer than it should, if so.
func (c *Controller) ensure(svc *corev1.Service, key string) ([]netip.Addr, error) {
	c.mu.Lock()
	defer func() {
		c.allocated.Set(float64(c.pool.Allocated()))
		c.mu.Unlock()
	}()
	// Addresses in the status that are ours and free (for example after a
	// conflict at recovery was resolved) are taken back first.
	for _, a := range c.statusAddrs(svc) {
		if c.pool.Owner(a) == "" {
			_ = c.pool.AllocateSpecific(key, a)
		}
	}
	held := c.pool.Held(key)

	if svc.Spec.LoadBalancerIP != "" {
		want, err := netip.ParseAddr(svc.Spec.LoadBalancerIP)
		if err != nil {
			return nil, fmt.Errorf("spec.loadBalancerIP %q: %w", svc.Spec.LoadBalancerIP, err)
		}
		want = want.Unmap()
		for _, a := range held {
			if a != want {
				c.pool.Release(key, a)
			}
		}
		if err := c.pool.AllocateSpecific(key, want); err != nil {
			return nil, fmt.Errorf("requested loadBalancerIP: %w", err)
		}
		return []netip.Addr{want}, nil
	}

	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	var out []netip.Addr
	var errs []error
	for _, f := range families {
		is4 := f != corev1.IPv6Protocol
		i := slices.IndexFunc(held, func(a netip.Addr) bool { return a.Is4() == is4 })
		if i >= 0 {
			out = append(out, held[i])
			held = slices.Delete(held, i, i+1)
			continue
		}
		if !c.pool.HasFamily(is4) {
			if len(families) == 1 {
				errs = append(errs, fmt.Errorf("%s: %w", f, ErrNoFamily))
			}
			continue
		}
		a, err := c.pool.Allocate(key, is4)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, a)
	}
	// Whatever else the Service held (a family it dropped) goes back.
	for _, a := range held {
		c.pool.Release(key, a)
	}
	return out, errors.Join(errs...)
}

// cleanup releases the addresses of a Service that is going away or no
// longer a LoadBalancer of ours, clears the status it got from us and
// removes the finalizer.
func (c *Controller) cleanup(ctx context.Context, svc *corev1.Service, key string) error {
	ours := slices.Contains(svc.Finalizers, Finalizer)
	c.mu.Lock()
	held := len(c.pool.Held(key)) > 0
	c.mu.Unlock()
	if !ours && !held {
		return nil
	}
	if svc.DeletionTimestamp == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
		s := svc.DeepCopy()
		s.Status.LoadBalancer.Ingress = nil
		if _, err := c.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("clear status: %w", err)
		}
	}
	c.release(key)
	if ours {
		s, err := c.client.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get service: %w", err)
		}
		s.Finalizers = slices.DeleteFunc(s.Finalizers, func(f string) bool { return f == Finalizer })
		if _, err := c.client.CoreV1().Services(svc.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove finalizer: %w", err)
		}
		c.event(svc, corev1.EventTypeNormal, "DeletedLoadBalancer", "Deleted load balancer")
	}
	return nil
}

// release frees the Service's addresses and queues the Services waiting for
// one.
func (c *Controller) release(key string) {
	c.mu.Lock()
	freed := c.pool.ReleaseAll(key)
	c.allocated.Set(float64(c.pool.Allocated()))
	c.mu.Unlock()
	if len(freed) == 0 {
		return
	}
	c.log.Info("load balancer addresses released", "service", key, "ips", freed)
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		if c.handles(s) && len(s.Status.LoadBalancer.Ingress) == 0 {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// statusAddrs are the pool addresses in svc's status.
func (c *Controller) statusAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		a, err := netip.ParseAddr(in.IP)
		if err != nil {
			continue
		}
		if a = a.Unmap(); c.pool.Contains(a) {
			out = append(out, a)
		}
	}
	return out
}

func ingress(addrs []netip.Addr) []corev1.LoadBalancerIngress {
	if len(addrs) == 0 {
		return nil
	}
	out := make([]corev1.LoadBalancerIngress, len(addrs))
	for i, a := range addrs {
		mode := corev1.LoadBalancerIPModeVIP
		out[i] = corev1.LoadBalancerIngress{IP: a.String(), IPMode: &mode}
	}
	return out
}

func (c *Controller) event(svc *corev1.Service, typ, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(svc, typ, reason, format, args...)
	}
}
