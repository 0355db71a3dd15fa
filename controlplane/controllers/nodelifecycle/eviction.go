package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/controlplane/controllers/endpointslice"
	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

// EvictionName is the eviction controller's name in the controller manager
// (upstream's taint-eviction-controller).
const EvictionName = "taint-eviction-controller"

// EvictionController deletes pods from nodes with NoExecute taints they do
// not tolerate, as upstream's taint eviction controller:
//
//   - a pod that does not tolerate every NoExecute taint of its node is
//     deleted at once;
//   - a pod that tolerates them all, some for a limited tolerationSeconds,
//     is deleted when the first of those runs out;
//   - a pod that tolerates them all without limit stays.
//
// For each taint the first toleration that matches it counts (as upstream).
// The time runs from the taint's timeAdded (from when this controller first
// saw the taint if it has none), so a restart or a new leader does not
// start the clock again; upstream counts from when its process noticed the
// taint. A deletion is announced with a TaintManagerEviction event
// ("Marking for deletion Pod ns/name") and the pod gets the DisruptionTarget
// condition before it is deleted; a scheduled deletion that no longer
// applies is cancelled with a "Cancelling deletion of Pod ns/name" event.
//
// The API server gives every pod tolerations of not-ready and unreachable
// for 300 s unless the pod says otherwise, so pods of an unreachable node go
// five minutes after the taint; the API server's default is the place to
// shorten that for labs.
type EvictionController struct {
	client   kubernetes.Interface
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	podIndex cache.Indexer
	synced   []cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	klog     logr.Logger
	clock    clock.WithTicker

	mu sync.Mutex
	// scheduled are the pods with a deletion planned (pod key -> when).
	scheduled map[string]time.Time
	// firstSeen is when a taint without timeAdded was first seen (node/key).
	firstSeen map[string]time.Time
	// deleted are the pods this controller deleted (pod key -> uid) and
	// has not yet seen terminating or gone: the pod's own status update
	// (DisruptionTarget) can bring it back before the informer has the
	// deletion, and it must not be announced and deleted twice.
	deleted map[string]types.UID

	evictions prometheus.Counter
}

// NewEviction builds the eviction controller and registers its informers on
// factory. reg may be nil; clk may be nil for the real clock.
func NewEviction(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer, clk clock.WithTicker) (*EvictionController, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	if err := endpointslice.AddPodNodeIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	c := &EvictionController{
		client:   client,
		pods:     podInf.Lister(),
		nodes:    nodeInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: EvictionName, Clock: clk}),
		recorder:  recorder,
		log:       log,
		klog:      logr.FromSlogHandler(log.Handler()),
		clock:     clk,
		scheduled: map[string]time.Time{},
		firstSeen: map[string]time.Time{},
		deleted:   map[string]types.UID{},
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_taint_eviction_pods_deleted_total",
			Help: "Pods deleted because of NoExecute taints they do not tolerate.",
		}),
	}
	if reg != nil {
		if err := reg.Register(c.evictions); err != nil {
			return nil, fmt.Errorf("taint eviction: register metrics: %w", err)
		}
	}
	podChanged := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		key := pod.Namespace + "/" + pod.Name
		c.mu.Lock()
		_, planned := c.scheduled[key]
		if pod.DeletionTimestamp != nil {
			delete(c.deleted, key)
		}
		c.mu.Unlock()
		if planned {
			c.queue.Add(key)
			return
		}
		if n, err := c.nodes.Get(pod.Spec.NodeName); err == nil && len(noExecuteTaints(n)) > 0 {
			c.queue.Add(key)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podChanged,
		UpdateFunc: func(_, obj any) { podChanged(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				c.forgetDeleted(t.Key)
			} else if pod, ok := obj.(*corev1.Pod); ok {
				c.forgetDeleted(pod.Namespace + "/" + pod.Name)
			}
			podChanged(obj)
		},
	}); err != nil {
		return nil, fmt.Errorf("taint eviction: pod handler: %w", err)
	}
	nodeChanged := func(oldObj, newObj any) {
		var oldTaints []corev1.Taint
		if o, ok := oldObj.(*corev1.Node); ok {
			oldTaints = noExecuteTaints(o)
		}
		n, ok := newObj.(*corev1.Node)
		if !ok {
			return
		}
		if taintsEqual(oldTaints, noExecuteTaints(n)) && oldObj != nil {
			return
		}
		objs, err := c.podIndex.ByIndex(endpointslice.PodNodeIndex, n.Name)
		if err != nil {
			return
		}
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok {
				c.queue.Add(p.Namespace + "/" + p.Name)
			}
		}
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { nodeChanged(nil, obj) },
		UpdateFunc: nodeChanged,
	}); err != nil {
		return nil, fmt.Errorf("taint eviction: node handler: %w", err)
	}
	c.synced = []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}
	return c, nil
}

// Name implements the controller manager's Controller.
func (c *EvictionController) Name() string { return EvictionName }

// Run waits for the caches, runs workers until ctx ends and returns nil.
func (c *EvictionController) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers)
	l := worker.Loop{Queue: c.queue, Sync: c.sync, Log: c.log, Kind: "pod", MaxRetries: maxRetries}
	return l.Run(ctx, workers, c.synced...)
}

// sync decides about one pod: nothing, delete now, or look again later (the
// returned duration).
func (c *EvictionController) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && (pod.DeletionTimestamp != nil || pod.Spec.NodeName == "")) {
		c.unschedule(key)
		c.forgetDeleted(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	uid, sent := c.deleted[key]
	c.mu.Unlock()
	if sent && uid == pod.UID {
		// Deleted already; the cache has not caught up.
		return 0, nil
	}
	node, err := c.nodes.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		c.cancel(pod, key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := c.clock.Now()
	deadline, limited := c.deadline(node, pod, now)
	if !limited {
		c.cancel(pod, key)
		return 0, nil
	}
	if now.Before(deadline) {
		c.mu.Lock()
		c.scheduled[key] = deadline
		c.mu.Unlock()
		return deadline.Sub(now), nil
	}
	return 0, c.evict(ctx, pod, key)
}

// deadline returns when pod must leave node, and false when it may stay
// for good.
func (c *EvictionController) deadline(node *corev1.Node, pod *corev1.Pod, now time.Time) (time.Time, bool) {
	taints := noExecuteTaints(node)
	if len(taints) == 0 {
		return time.Time{}, false
	}
	var deadline time.Time
	limited := false
	for i := range taints {
		t := &taints[i]
		var tol *corev1.Toleration
		for j := range pod.Spec.Tolerations {
			if pod.Spec.Tolerations[j].ToleratesTaint(c.klog, t, false) {
				tol = &pod.Spec.Tolerations[j]
				break
			}
		}
		if tol == nil {
			return now, true
		}
		if tol.TolerationSeconds == nil {
			continue
		}
		start := c.taintStart(node, t, now)
		d := start.Add(time.Duration(max(*tol.TolerationSeconds, 0)) * time.Second)
		if !limited || d.Before(deadline) {
			deadline, limited = d, true
		}
	}
	return deadline, limited
}

// taintStart is when a taint was added: its timeAdded, or when this
// controller first saw it.
func (c *EvictionController) taintStart(node *corev1.Node, t *corev1.Taint, now time.Time) time.Time {
	if t.TimeAdded != nil {
		return t.TimeAdded.Time
	}
	k := node.Name + "/" + t.Key + "/" + string(t.Effect)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.firstSeen[k]; ok {
		return s
	}
	c.firstSeen[k] = now
	return now
}

// evict announces, marks and deletes the pod.
func (c *EvictionController) evict(ctx context.Context, pod *corev1.Pod, key string) error {
	c.log.Info("evicting pod from tainted node", "pod", key, "node", pod.Spec.NodeName)
	if c.recorder != nil {
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", key)
	}
	p := pod.DeepCopy()
	if setDisruptionTarget(p, c.clock.Now()) {
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			// The condition is informative; deleting is what matters.
			c.log.Debug("could not set DisruptionTarget", "pod", key, "err", err)
		}
	}
	uid := pod.UID
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", key, err)
	}
	if err == nil {
		c.mu.Lock()
		c.deleted[key] = uid
		c.mu.Unlock()
	}
	c.evictions.Inc()
	c.unschedule(key)
	return nil
}

func (c *EvictionController) forgetDeleted(key string) {
	c.mu.Lock()
	delete(c.deleted, key)
	c.mu.Unlock()
}

// cancel drops a planned deletion, with an event if one was planned.
func (c *EvictionController) cancel(pod *corev1.Pod, key string) {
	c.mu.Lock()
	_, planned := c.scheduled[key]
	delete(c.scheduled, key)
	c.mu.Unlock()
	if planned && c.recorder != nil {
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Cancelling deletion of Pod %s", key)
	}
}

func (c *EvictionController) unschedule(key string) {
	c.mu.Lock()
	delete(c.scheduled, key)
	c.mu.Unlock()
}

// setDisruptionTarget adds the DisruptionTarget condition upstream sets
// before a taint eviction; it reports whether the pod changed.
func setDisruptionTarget(p *corev1.Pod, now time.Time) bool {
	cond := corev1.PodCondition{
		Type:               corev1.DisruptionTarget,
		Status:             corev1.ConditionTrue,
		Reason:             "DeletionByTaintManager",
		Message:            "Taint manager: deleting due to NoExecute taint",
		LastTransitionTime: metav1.NewTime(now),
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.DisruptionTarget {
			if p.Status.Conditions[i].Status == corev1.ConditionTrue {
				return false
			}
			p.Status.Conditions[i] = cond
			return true
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, cond)
	return true
}

func noExecuteTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func taintsEqual(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect || !a[i].TimeAdded.Equal(b[i].TimeAdded) {
			return false
		}
	}
	return true
}
