// Package deployment is the Deployment controller: it rolls a Deployment's
// pod template out through ReplicaSets, with the RollingUpdate strategy
// (maxSurge, maxUnavailable, minReadySeconds) or Recreate, keeps revision
// history (deployment.kubernetes.io/revision and revision-history, old
// ReplicaSets beyond revisionHistoryLimit deleted), scales proportionally
// while a rollout is in progress, honours paused Deployments, and reports
// status and the Progressing (with progressDeadlineSeconds), Available and
// ReplicaFailure conditions as kube-controller-manager does, so that
// kubectl rollout status, history, undo, restart, pause and resume work.
//
// Rollback is what kubectl rollout undo does client-side: it copies an old
// ReplicaSet's template into the Deployment. The controller then finds that
// ReplicaSet as the new one (templates compared without the
// pod-template-hash label), gives it the next revision and rolls to it.
package deployment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/controllerref"
	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

// Name is the controller's name in the manager.
const Name = "deployment"

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Config is what the controller needs.
type Config struct {
	Client      kubernetes.Interface
	Deployments appsinformers.DeploymentInformer
	ReplicaSets appsinformers.ReplicaSetInformer
	Pods        coreinformers.PodInformer
	Recorder    record.EventRecorder
	Logger      *slog.Logger
	Metrics     prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	now       func() time.Time

	queue workqueue.TypedRateLimitingInterface[string]
	syncs *prometheus.CounterVec
}

// New builds the controller and registers its event handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Deployments == nil || cfg.ReplicaSets == nil || cfg.Pods == nil || cfg.Recorder == nil {
		return nil, errors.New("deployment controller: client, informers and recorder are required")
	}
	c := &Controller{
		client:    cfg.Client,
		dLister:   cfg.Deployments.Lister(),
		rsLister:  cfg.ReplicaSets.Lister(),
		podLister: cfg.Pods.Lister(),
		recorder:  cfg.Recorder,
		log:       cfg.Logger,
		now:       cfg.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_deployment_controller_syncs_total",
			Help: "Deployment syncs by result (ok, error).",
		}, []string{"result"}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.syncs); err != nil {
			return nil, fmt.Errorf("register deployment metrics: %w", err)
		}
	}
	dInf, rsInf, podInf := cfg.Deployments.Informer(), cfg.ReplicaSets.Informer(), cfg.Pods.Informer()
	if _, err := dInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, fmt.Errorf("add deployment handler: %w", err)
	}
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addReplicaSet,
		UpdateFunc: c.updateReplicaSet,
		DeleteFunc: c.deleteReplicaSet,
	}); err != nil {
		return nil, fmt.Errorf("add replicaset handler: %w", err)
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.deletePod}); err != nil {
		return nil, fmt.Errorf("add pod handler: %w", err)
	}
	c.synced = []cache.InformerSynced{dInf.HasSynced, rsInf.HasSynced, podInf.HasSynced}
	return c, nil
}

// Name implements controllers.Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the caches, runs workers until ctx ends and then drains.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting deployment controller")
	l := worker.Loop{Queue: c.queue, Sync: worker.ErrorOnly(c.Sync), Log: c.log, Kind: "deployment", Observe: c.observe}
	if err := l.Run(ctx, workers, c.synced...); err != nil {
		return fmt.Errorf("deployment controller: %w", err)
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

func keyOf(d *appsv1.Deployment) string { return d.Namespace + "/" + d.Name }

func (c *Controller) enqueue(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if d, ok := obj.(*appsv1.Deployment); ok {
		c.queue.Add(keyOf(d))
	}
}

func (c *Controller) resolve(namespace string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return nil
	}
	d, err := c.dLister.Deployments(namespace).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

// deploymentsFor returns the Deployments whose selector matches rs.
func (c *Controller) deploymentsFor(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	if len(rs.Labels) == 0 {
		return nil
	}
	all, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range all {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (c *Controller) addReplicaSet(obj any) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.DeletionTimestamp != nil {
		c.deleteReplicaSet(rs)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.enqueue(d)
		}
		return
	}
	for _, d := range c.deploymentsFor(rs) {
		c.enqueue(d)
	}
}

func (c *Controller) updateReplicaSet(old, cur any) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(n), metav1.GetControllerOfNoCopy(o)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if d := c.resolve(o.Namespace, oldRef); d != nil {
			c.enqueue(d)
		}
	}
	if curRef != nil {
		if d := c.resolve(n.Namespace, curRef); d != nil {
			c.enqueue(d)
		}
		return
	}
	if refChanged || !reflect.DeepEqual(o.Labels, n.Labels) {
		for _, d := range c.deploymentsFor(n) {
			c.enqueue(d)
		}
	}
}

func (c *Controller) deleteReplicaSet(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.enqueue(d)
		}
	}
}

// deletePod wakes a Recreate Deployment once its last old pod is gone.
func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	dref := metav1.GetControllerOfNoCopy(rs)
	if dref == nil {
		return
	}
	d := c.resolve(rs.Namespace, dref)
	if d == nil || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		return
	}
	rss, err := c.ownedReplicaSets(d)
	if err != nil {
		return
	}
	podMap, err := c.podsByReplicaSet(d, rss)
	if err != nil {
		return
	}
	n := 0
	for _, ps := range podMap {
		n += len(ps)
	}
	if n == 0 {
		c.enqueue(d)
	}
}

// ownedReplicaSets lists the ReplicaSets controlled by d (from the cache,
// without claiming).
func (c *Controller) ownedReplicaSets(d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		if metav1.IsControlledBy(rs, d) {
			out = append(out, rs)
		}
	}
	return out, nil
}

// claimReplicaSets lists d's ReplicaSets, adopting matching orphans and
// releasing owned ones that no longer match.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s has an invalid selector: %w", d.Namespace, d.Name, err)
	}
	m := &controllerref.Manager{
		Owner: d, OwnerGVK: controllerKind, Selector: sel,
		CanAdopt: controllerref.RecheckDeletion(d, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		}),
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.AppsV1().ReplicaSets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	return controllerref.Claim(ctx, m, all)
}

// podsByReplicaSet returns d's pods grouped by the UID of the ReplicaSet
// (of rss) that controls them.
func (c *Controller) podsByReplicaSet(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	ps, err := c.podLister.Pods(d.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	m := make(map[types.UID][]*corev1.Pod, len(rss))
	for _, rs := range rss {
		m[rs.UID] = nil
	}
	for _, p := range ps {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			continue
		}
		if _, ok := m[ref.UID]; ok {
			m[ref.UID] = append(m[ref.UID], p)
		}
	}
	return m, nil
}

// Sync reconciles one Deployment by key ("namespace/name").
func (c *Controller) Sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	cached, err := c.dLister.Deployments(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()

	if d.Spec.Selector == nil || (len(d.Spec.Selector.MatchLabels) == 0 && len(d.Spec.Selector.MatchExpressions) == 0) {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			_, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return err
		}
		return nil
	}

	rss, err := c.claimReplicaSets(ctx, d)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rss)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.sync(ctx, d, rss)
	}
	scaling, err := c.isScalingEvent(ctx, d, rss)
	if err != nil {
		return err
	}
	if scaling {
		return c.sync(ctx, d, rss)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		podMap, err := c.podsByReplicaSet(d, rss)
		if err != nil {
			return err
		}
		return c.rolloutRecreate(ctx, d, rss, podMap)
	case appsv1.RollingUpdateDeploymentStrategyType:
		return c.rolloutRolling(ctx, d, rss)
	}
	return fmt.Errorf("unexpected deployment strategy type %q", d.Spec.Strategy.Type)
}
