// Package nodelifecycle holds the node lifecycle controller and the taint
// eviction controller, the two halves of kube-controller-manager's node
// lifecycle handling.
//
// The lifecycle controller (Controller) watches each node's heartbeats: the
// renewTime of its Lease in kube-node-lease and the lastHeartbeatTime of its
// Ready condition. A node seen alive neither way for NodeMonitorGracePeriod
// (NodeStartupGracePeriod for one that never posted status) gets its Ready,
// MemoryPressure, DiskPressure and PIDPressure conditions set to Unknown
// with reason NodeStatusUnknown ("Kubelet stopped posting node status.").
// Timestamps are taken from this controller's clock when it sees a change,
// never from the node's clock, as upstream does. It keeps the node's taints
// in line with its conditions: node.kubernetes.io/unreachable (Ready
// Unknown) or node.kubernetes.io/not-ready (Ready False) with effects
// NoSchedule and NoExecute, the NoSchedule pressure/network/unschedulable
// taints, all removed when the node recovers. Pods on a node that is not
// Ready get their Ready condition set to False (upstream's MarkPodsNotReady)
// so that EndpointSlices drop them at once.
//
// Adding a NoExecute taint to a node that had none is rate limited
// (EvictionRate nodes per second, burst 1, as upstream's
// --node-eviction-rate), and when every node is not Ready (full disruption:
// the control plane is more likely cut off than the whole cluster down) no
// NoExecute taints are kept, as upstream. Per-zone disruption states
// (--secondary-node-eviction-rate, --unhealthy-zone-threshold) are not
// implemented: the whole cluster is treated as one zone.
//
// The eviction controller (EvictionController) deletes pods from nodes with
// NoExecute taints they do not tolerate; see eviction.go.
package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/controlplane/controllers/endpointslice"
	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

const (
	// Name is the lifecycle controller's name in the controller manager.
	Name = "nodelifecycle"

	DefaultNodeMonitorGracePeriod = 50 * time.Second
	DefaultNodeStartupGracePeriod = 60 * time.Second
	DefaultNodeMonitorPeriod      = 5 * time.Second
	DefaultEvictionRate           = 0.1

	// NodeLeaseNamespace holds the nodes' heartbeat Leases.
	NodeLeaseNamespace = corev1.NamespaceNodeLease

	reasonUnknown       = "NodeStatusUnknown"
	messageUnknown      = "Kubelet stopped posting node status."
	reasonNeverUpdated  = "NodeStatusNeverUpdated"
	messageNeverUpdated = "Kubelet never posted node status."

	maxRetries = 15
)

// Options configure the lifecycle controller.
type Options struct {
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat
	// before its conditions become Unknown (--node-monitor-grace-period).
	NodeMonitorGracePeriod time.Duration
	// NodeStartupGracePeriod applies instead to a node that never posted
	// status (--node-startup-grace-period).
	NodeStartupGracePeriod time.Duration
	// NodeMonitorPeriod is how often a node is checked at most when nothing
	// happens (--node-monitor-period).
	NodeMonitorPeriod time.Duration
	// EvictionRate is how many nodes per second may get a NoExecute taint
	// (--node-eviction-rate); negative means unlimited, zero the default.
	EvictionRate float64
	// Clock is for tests; nil means the real clock.
	Clock clock.WithTicker
}

func (o *Options) complete() error {
	if o.NodeMonitorGracePeriod == 0 {
		o.NodeMonitorGracePeriod = DefaultNodeMonitorGracePeriod
	}
	if o.NodeStartupGracePeriod == 0 {
		o.NodeStartupGracePeriod = DefaultNodeStartupGracePeriod
	}
	if o.NodeMonitorPeriod == 0 {
		o.NodeMonitorPeriod = DefaultNodeMonitorPeriod
	}
	if o.EvictionRate == 0 {
		o.EvictionRate = DefaultEvictionRate
	}
	if o.NodeMonitorGracePeriod < 0 || o.NodeStartupGracePeriod < 0 || o.NodeMonitorPeriod < 0 {
		return errors.New("nodelifecycle: negative period")
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return nil
}

// health is what the controller has observed of one node.
type health struct {
	// probe is when the node was last seen alive, on this controller's
	// clock.
	probe time.Time
	// ready is the Ready condition last seen.
	ready *corev1.NodeCondition
	// leaseRenew is the Lease renewTime last seen.
	leaseRenew time.Time
}

// Controller is the node lifecycle controller.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	leases   coordinationlisters.LeaseLister
	podIndex cache.Indexer
	synced   []cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	opts     Options
	clock    clock.WithTicker
	limiter  *rate.Limiter

	mu     sync.Mutex
	health map[string]*health

	unhealthy prometheus.Gauge
	taints    *prometheus.CounterVec
}

// New builds the lifecycle controller and registers its informers on
// factory. reg may be nil.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Controller, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	if err := endpointslice.AddPodNodeIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	limit := rate.Inf
	if opts.EvictionRate > 0 {
		limit = rate.Limit(opts.EvictionRate)
	}
	c := &Controller{
		client:   client,
		nodes:    nodeInf.Lister(),
		leases:   leaseInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name, Clock: opts.Clock}),
		recorder: recorder,
		log:      log,
		opts:     opts,
		clock:    opts.Clock,
		limiter:  rate.NewLimiter(limit, 1),
		health:   map[string]*health{},
		unhealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_node_lifecycle_unhealthy_nodes",
			Help: "Nodes whose Ready condition is not True.",
		}),
		taints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_node_lifecycle_taint_changes_total",
			Help: "Node taint updates made by the lifecycle controller, by effect of the change (NoExecute, NoSchedule).",
		}, []string{"effect"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.unhealthy, c.taints} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("nodelifecycle: register metrics: %w", err)
			}
		}
	}
	enqueueNode := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueNode,
		UpdateFunc: func(_, obj any) { enqueueNode(obj) },
		DeleteFunc: enqueueNode,
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: node handler: %w", err)
	}
	leaseChanged := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Namespace == NodeLeaseNamespace {
			c.queue.Add(l.Name)
		}
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    leaseChanged,
		UpdateFunc: func(_, obj any) { leaseChanged(obj) },
		DeleteFunc: leaseChanged,
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: lease handler: %w", err)
	}
	// A pod that turns ready on a node that is not: mark it not ready.
	podChanged := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" || !podReady(pod) {
			return
		}
		if n, err := c.nodes.Get(pod.Spec.NodeName); err == nil && !nodeReady(n) {
			c.queue.Add(n.Name)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podChanged,
		UpdateFunc: func(_, obj any) { podChanged(obj) },
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: pod handler: %w", err)
	}
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced}
	return c, nil
}

// Name implements the controller manager's Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the caches, runs workers until ctx ends and returns nil.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers, "gracePeriod", c.opts.NodeMonitorGracePeriod,
		"startupGracePeriod", c.opts.NodeStartupGracePeriod, "evictionRate", c.opts.EvictionRate)
	// A node that keeps failing is still watched: its heartbeats may stop.
	l := worker.Loop{Queue: c.queue, Sync: c.sync, Log: c.log, Kind: "node",
		MaxRetries: maxRetries, RequeueDropped: c.opts.NodeMonitorPeriod}
	return l.Run(ctx, workers, c.synced...)
}

// sync checks one node's health, sets its conditions to Unknown when its
// heartbeats stopped, fixes its taints and marks its pods not ready when the
// node is not. It returns when to check the node again.
func (c *Controller) sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.health, name)
		c.mu.Unlock()
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := c.clock.Now()
	h, grace, wasReady, first := c.observe(node, now)
	if first {
		c.nodeEvent(node, corev1.EventTypeNormal, "RegisteredNode", fmt.Sprintf("Node %s event: Registered Node %s in Controller", node.Name, node.Name))
	}

	next := c.opts.NodeMonitorPeriod
	if deadline := h.probe.Add(grace); now.After(deadline) {
		node, err = c.markUnknown(ctx, node, now)
		if err != nil {
			return 0, err
		}
	} else if d := deadline.Sub(now) + time.Millisecond; d < next {
		next = d
	}

	ready := condition(node, corev1.NodeReady)
	c.mu.Lock()
	if ready != nil {
		cp := *ready
		h.ready = &cp
	}
	c.mu.Unlock()
	if ready != nil && ready.Status != corev1.ConditionTrue && wasReady {
		c.nodeEvent(node, corev1.EventTypeNormal, "NodeNotReady", fmt.Sprintf("Node %s status is now: NodeNotReady", node.Name))
	}

	wait, err := c.syncTaints(ctx, node, now)
	if err != nil {
		return 0, err
	}
	if wait > 0 && wait < next {
		next = wait
	}
	if ready != nil && ready.Status != corev1.ConditionTrue {
		if err := c.markPodsNotReady(ctx, node, now); err != nil {
			return 0, err
		}
	}
	c.updateUnhealthyGauge()
	return next, nil
}

// observe updates the node's health record from its Ready condition and
// Lease and returns it with the grace period that applies, whether the node
// was Ready when last seen, and whether this is the first sight of it.
func (c *Controller) observe(node *corev1.Node, now time.Time) (*health, time.Duration, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := condition(node, corev1.NodeReady)
	grace := c.opts.NodeMonitorGracePeriod
	if cur == nil {
		grace = c.opts.NodeStartupGracePeriod
	}
	h, ok := c.health[node.Name]
	first := !ok
	wasReady := ok && h.ready != nil && h.ready.Status == corev1.ConditionTrue
	switch {
	case !ok && cur == nil:
		// Never posted status: count from its creation.
		h = &health{probe: node.CreationTimestamp.Time}
		if h.probe.IsZero() || h.probe.After(now) {
			h.probe = now
		}
	case !ok:
		// First sight (for example after a restart or a new leader): a
		// full grace period from now, as upstream.
		h = &health{probe: now}
	case cur != nil && (h.ready == nil || !h.ready.LastHeartbeatTime.Equal(&cur.LastHeartbeatTime)):
		h.probe = now
	}
	if lease, err := c.leases.Leases(NodeLeaseNamespace).Get(node.Name); err == nil && lease.Spec.RenewTime != nil {
		// A renewed (or first seen) lease means alive now.
		if rt := lease.Spec.RenewTime.Time; h.leaseRenew.IsZero() || rt.After(h.leaseRenew) {
			h.probe = now
			h.leaseRenew = rt
		}
	}
	c.health[node.Name] = h
	return h, grace, wasReady, first
}

// markUnknown sets the kubelet's conditions to Unknown as upstream does and
// returns the node as written.
func (c *Controller) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	n := node.DeepCopy()
	ts := metav1.NewTime(now)
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		cond := condition(n, t)
		if cond == nil {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
				Type:               t,
				Status:             corev1.ConditionUnknown,
				Reason:             reasonNeverUpdated,
				Message:            messageNeverUpdated,
				LastHeartbeatTime:  n.CreationTimestamp,
				LastTransitionTime: ts,
			})
			continue
		}
		if cond.Status != corev1.ConditionUnknown {
			cond.Status = corev1.ConditionUnknown
			cond.Reason = reasonUnknown
			cond.Message = messageUnknown
			cond.LastTransitionTime = ts
		}
	}
	if apiequality.Semantic.DeepEqual(n.Status.Conditions, node.Status.Conditions) {
		return node, nil
	}
	c.log.Info("node stopped posting status", "node", node.Name, "gracePeriod", c.opts.NodeMonitorGracePeriod)
	updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set node %s conditions unknown: %w", node.Name, err)
	}
	return updated, nil
}

// syncTaints makes the managed taints match the node's conditions. It
// returns how long to wait when the rate limiter held back a NoExecute
// taint.
func (c *Controller) syncTaints(ctx context.Context, node *corev1.Node, now time.Time) (time.Duration, error) {
	want := noScheduleTaints(node)
	var wait time.Duration
	if ne := noExecuteTaint(node); ne != nil && !c.fullDisruption(node) {
		if hasNoExecute(node) {
			// A swap between not-ready and unreachable is not rate
			// limited.
			want = append(want, *ne)
		} else if r := c.limiter.ReserveN(now, 1); r.OK() && r.DelayFrom(now) == 0 {
			want = append(want, *ne)
		} else {
			if r.OK() {
				wait = r.DelayFrom(now)
				r.CancelAt(now)
			}
			// Keep any NoExecute taint the node has; add none yet.
			for _, t := range node.Spec.Taints {
				if t.Effect == corev1.TaintEffectNoExecute && managed(t) {
					want = append(want, t)
				}
			}
		}
	}
	taints, changed := withTaints(node.Spec.Taints, want, now)
	if !changed {
		return wait, nil
	}
	n := node.DeepCopy()
	n.Spec.Taints = taints
	if _, err := c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// The informer brings the new version and a new sync.
			return wait, nil
		}
		return 0, fmt.Errorf("update node %s taints: %w", node.Name, err)
	}
	effect := string(corev1.TaintEffectNoSchedule)
	if hasNoExecute(node) != hasNoExecute(n) {
		effect = string(corev1.TaintEffectNoExecute)
	}
	c.taints.WithLabelValues(effect).Inc()
	c.log.Info("updated node taints", "node", node.Name, "taints", taintStrings(taints))
	return wait, nil
}

// fullDisruption reports whether no node at all is Ready, taking node as it
// is now rather than as the cache may still show it.
func (c *Controller) fullDisruption(node *corev1.Node) bool {
	if nodeReady(node) {
		return false
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.Name != node.Name && nodeReady(n) {
			return false
		}
	}
	return true
}

// markPodsNotReady sets the Ready condition of the node's pods to False.
func (c *Controller) markPodsNotReady(ctx context.Context, node *corev1.Node, now time.Time) error {
	objs, err := c.podIndex.ByIndex(endpointslice.PodNodeIndex, node.Name)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok || pod.Spec.NodeName != node.Name || !podReady(pod) {
			continue
		}
		p := pod.DeepCopy()
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].Status = corev1.ConditionFalse
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			errs = append(errs, fmt.Errorf("mark pod %s/%s not ready: %w", p.Namespace, p.Name, err))
			continue
		}
		if c.recorder != nil {
			c.recorder.Event(pod, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) updateUnhealthyGauge() {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	n := 0
	for _, node := range nodes {
		if !nodeReady(node) {
			n++
		}
	}
	c.unhealthy.Set(float64(n))
}

func (c *Controller) nodeEvent(node *corev1.Node, typ, reason, msg string) {
	if c.recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}
	c.recorder.Event(ref, typ, reason, msg)
}

func nodeReady(n *corev1.Node) bool {
	c := condition(n, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func taintStrings(ts []corev1.Taint) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ToString()
	}
	return out
}
