// Package replicaset is the ReplicaSet controller: it keeps the number of
// active pods of every ReplicaSet at spec.replicas, creating pods from the
// template in slow-start batches and deleting the cheapest pods first,
// adopts and releases pods by selector and controller ownerReference, and
// reports status (replicas, fullyLabeledReplicas, readyReplicas,
// availableReplicas after minReadySeconds, observedGeneration and the
// ReplicaFailure condition). Expectations keep a sync that runs before the
// informer has seen earlier creates and deletes from repeating them.
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/controllerref"
	"github.com/skiff-project/skiff/controlplane/controllers/expectations"
	"github.com/skiff-project/skiff/controlplane/controllers/pods"
	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

// Name is the controller's name in the manager and its event source.
const Name = "replicaset"

// Event reasons, as kube-controller-manager records them.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonFailedCreate     = "FailedCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedDelete     = "FailedDelete"
)

const (
	// BurstReplicas caps the creates or deletes of one sync.
	BurstReplicas = 500
	// slowStartInitialBatch is the first batch of creates; each batch
	// that succeeds doubles the next.
	slowStartInitialBatch = 1
	// statusUpdateRetries is how many times a conflicting status update is
	// retried after a fresh GET within one sync.
	statusUpdateRetries = 1
	// ownerIndex indexes pods by controller UID (orphans by namespace).
	ownerIndex = "skiff.replicaset.owner"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Config is what the controller needs.
type Config struct {
	Client      kubernetes.Interface
	ReplicaSets appsinformers.ReplicaSetInformer
	Pods        coreinformers.PodInformer
	Recorder    record.EventRecorder
	Logger      *slog.Logger
	// Metrics, when set, receives the controller's collectors.
	Metrics prometheus.Registerer
	// BurstReplicas caps creates/deletes per sync; zero means BurstReplicas.
	BurstReplicas int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Controller is the ReplicaSet controller.
type Controller struct {
	client   kubernetes.Interface
	rsLister appslisters.ReplicaSetLister
	podIndex cache.Indexer
	synced   []cache.InformerSynced
	recorder record.EventRecorder
	log      *slog.Logger
	burst    int
	now      func() time.Time

	queue workqueue.TypedRateLimitingInterface[string]
	exp   *expectations.Expectations
	syncs *prometheus.CounterVec
}

// New builds the controller and registers its event handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.ReplicaSets == nil || cfg.Pods == nil || cfg.Recorder == nil {
		return nil, errors.New("replicaset controller: client, informers and recorder are required")
	}
	c := &Controller{
		client:   cfg.Client,
		rsLister: cfg.ReplicaSets.Lister(),
		podIndex: cfg.Pods.Informer().GetIndexer(),
		recorder: cfg.Recorder,
		log:      cfg.Logger,
		burst:    cfg.BurstReplicas,
		now:      cfg.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		exp: expectations.New(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_replicaset_controller_syncs_total",
			Help: "ReplicaSet syncs by result (ok, error).",
		}, []string{"result"}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.burst <= 0 {
		c.burst = BurstReplicas
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.syncs); err != nil {
			return nil, fmt.Errorf("register replicaset metrics: %w", err)
		}
	}
	if err := AddOwnerIndex(cfg.Pods.Informer()); err != nil {
		return nil, err
	}
	rsInf := cfg.ReplicaSets.Informer()
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	}); err != nil {
		return nil, fmt.Errorf("add replicaset handler: %w", err)
	}
	podInf := cfg.Pods.Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("add pod handler: %w", err)
	}
	c.synced = []cache.InformerSynced{rsInf.HasSynced, podInf.HasSynced}
	return c, nil
}

// AddOwnerIndex adds the index of pods by controller UID to a pod informer
// (a no-op when it is already there).
func AddOwnerIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[ownerIndex]; ok {
		return nil
	}
	err := inf.AddIndexers(cache.Indexers{ownerIndex: func(obj any) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
			return []string{string(ref.UID)}, nil
		}
		return []string{orphanKey(pod.Namespace)}, nil
	}})
	if err != nil {
		return fmt.Errorf("add pod owner index: %w", err)
	}
	return nil
}

func orphanKey(namespace string) string { return "orphan/" + namespace }

// Name implements controllers.Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the caches, runs workers until ctx ends and then drains.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting replicaset controller")
	l := worker.Loop{Queue: c.queue, Sync: worker.ErrorOnly(c.Sync), Log: c.log, Kind: "replicaset", Observe: c.observe}
	if err := l.Run(ctx, workers, c.synced...); err != nil {
		return fmt.Errorf("replicaset controller: %w", err)
	}
	return nil
}

// observe counts a sync's result in the syncs metric.
func (c *Controller) observe(err error) {
	if err != nil {
		c.syncs.WithLabelValues("error").Inc()
		return
	}
	c.syncs.WithLabelValues("ok").Inc()
}

func keyOf(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

func (c *Controller) enqueue(obj any) {
	if rs, ok := obj.(*appsv1.ReplicaSet); ok {
		c.queue.Add(keyOf(rs))
	}
}

func (c *Controller) updateRS(old, cur any) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.UID != n.UID {
		c.deleteRS(cache.DeletedFinalStateUnknown{Key: keyOf(o), Obj: o})
	}
	c.enqueue(n)
}

func (c *Controller) deleteRS(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	c.exp.Delete(keyOf(rs))
	c.queue.Add(keyOf(rs))
}

// resolve returns the ReplicaSet a controller ref points to, if it is ours
// and exists with that UID.
func (c *Controller) resolve(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// matching returns the ReplicaSets whose selector matches pod's labels.
func (c *Controller) matching(pod *corev1.Pod) []*appsv1.ReplicaSet {
	if len(pod.Labels) == 0 {
		return nil
	}
	all, err := c.rsLister.ReplicaSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// A restarted manager sees pods already being deleted: they are
		// not creations.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		rs := c.resolve(pod.Namespace, ref)
		if rs == nil {
			return
		}
		c.exp.CreationObserved(keyOf(rs))
		c.queue.Add(keyOf(rs))
		return
	}
	for _, rs := range c.matching(pod) {
		c.enqueue(rs)
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	labelsChanged := !reflect.DeepEqual(o.Labels, n.Labels)
	if n.DeletionTimestamp != nil {
		// Graceful deletion starts: replace the pod now rather than when
		// the node agent removes it.
		c.deletePod(n)
		if labelsChanged {
			c.deletePod(o)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(n), metav1.GetControllerOfNoCopy(o)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if rs := c.resolve(o.Namespace, oldRef); rs != nil {
			c.enqueue(rs)
		}
	}
	if curRef != nil {
		rs := c.resolve(n.Namespace, curRef)
		if rs == nil {
			return
		}
		c.enqueue(rs)
		if !pods.IsReady(o) && pods.IsReady(n) && rs.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(keyOf(rs), time.Duration(rs.Spec.MinReadySeconds)*time.Second)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.matching(n) {
			c.enqueue(rs)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return
	}
	rs := c.resolve(pod.Namespace, ref)
	if rs == nil {
		return
	}
	c.exp.DeletionObserved(keyOf(rs), pods.Key(pod))
	c.queue.Add(keyOf(rs))
}

// Sync reconciles one ReplicaSet by key ("namespace/name").
func (c *Controller) Sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.exp.Satisfied(key)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		c.log.Warn("invalid selector", "replicaset", key, "err", err)
		return nil
	}

	candidates, err := c.ownedAndOrphans(rs)
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range candidates {
		if pods.IsActive(p) {
			active = append(active, p)
		}
	}
	claim := &controllerref.Manager{
		Owner:    rs,
		OwnerGVK: controllerKind,
		Selector: selector,
		CanAdopt: controllerref.RecheckDeletion(rs, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		}),
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	active, err = controllerref.Claim(ctx, claim, active)
	if err != nil {
		return err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, active, rs)
	}
	now := c.now()
	status := CalculateStatus(rs, active, manageErr, now)
	updated, err := c.updateStatus(ctx, rs.DeepCopy(), status)
	if err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if updated.Spec.MinReadySeconds > 0 && updated.Status.ReadyReplicas != updated.Status.AvailableReplicas {
		next := time.Duration(updated.Spec.MinReadySeconds) * time.Second
		if d, ok := pods.NextAvailabilityCheck(active, updated.Spec.MinReadySeconds, now); ok {
			next = d
		}
		c.queue.AddAfter(key, next)
	}
	return nil
}

// ownedAndOrphans returns the pods controlled by rs and the orphans of its
// namespace.
func (c *Controller) ownedAndOrphans(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, k := range []string{string(rs.UID), orphanKey(rs.Namespace)} {
		objs, err := c.podIndex.ByIndex(ownerIndex, k)
		if err != nil {
			return nil, fmt.Errorf("list pods of %s: %w", keyOf(rs), err)
		}
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok && p.Namespace == rs.Namespace {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (c *Controller) manageReplicas(ctx context.Context, active []*corev1.Pod, rs *appsv1.ReplicaSet) error {
	key := keyOf(rs)
	want := int(ptrOr(rs.Spec.Replicas, 1))
	diff := len(active) - want
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.exp.ExpectCreations(key, n)
		c.log.Debug("too few replicas", "replicaset", key, "need", want, "creating", n)
		ok, err := slowStartBatch(n, slowStartInitialBatch, func() error {
			err := c.createPod(ctx, rs)
			if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // every create would fail: nothing to report
			}
			return err
		})
		for range n - ok {
			c.exp.CreationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, c.burst)
		related, err := c.relatedPods(rs)
		if err != nil {
			return err
		}
		victims := podsToDelete(active, related, n, c.now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = pods.Key(p)
		}
		c.exp.ExpectDeletions(key, keys)
		c.log.Debug("too many replicas", "replicaset", key, "need", want, "deleting", n)
		errs := make(chan error, len(victims))
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Go(func() {
				if err := c.deletePodAPI(ctx, rs, p); err != nil {
					c.exp.DeletionObserved(key, pods.Key(p))
					if !apierrors.IsNotFound(err) {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs // the first error, or nil
	}
	return nil
}

// relatedPods returns the pods of every ReplicaSet that has the same
// controller as rs (rs's siblings in a Deployment), or rs's own pods.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	rss := []*appsv1.ReplicaSet{rs}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		all, err := c.rsLister.ReplicaSets(rs.Namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		rss = rss[:0]
		for _, o := range all {
			if r := metav1.GetControllerOfNoCopy(o); r != nil && r.UID == ref.UID {
				rss = append(rss, o)
			}
		}
	}
	seen := map[types.UID]bool{}
	var out []*corev1.Pod
	for _, r := range rss {
		objs, err := c.podIndex.ByIndex(ownerIndex, string(r.UID))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if !seen[p.UID] {
				seen[p.UID] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// PodFromTemplate builds the pod a controller creates from template:
// labels, annotations and finalizers copied, generateName "<owner>-", the
// controller reference set.
func PodFromTemplate(template *corev1.PodTemplateSpec, ownerName string, ref *metav1.OwnerReference) (*corev1.Pod, error) {
	prefix := ownerName + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		prefix = ownerName
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: prefix,
			Labels:       copyMap(template.Labels),
			Annotations:  copyMap(template.Annotations),
			Finalizers:   append([]string(nil), template.Finalizers...),
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if ref != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	if labels.Set(pod.Labels).AsSelectorPreValidated().Empty() {
		return nil, errors.New("unable to create pods, no labels")
	}
	return pod, nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod, err := PodFromTemplate(&rs.Spec.Template, rs.Name, metav1.NewControllerRef(rs, controllerKind))
	if err != nil {
		return err
	}
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating: %v", err)
		}
		return err
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

func (c *Controller) deletePodAPI(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", err)
		}
		return err
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted pod: %v", pod.Name)
	return nil
}

// slowStartBatch calls fn count times in batches that start at initial and
// double after every batch without errors; after a batch with an error the
// rest is skipped. It returns the number of calls that succeeded.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, successes := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		successes += batch - len(errs)
		if len(errs) > 0 {
			return successes, <-errs
		}
		remaining -= batch
	}
	return successes, nil
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
