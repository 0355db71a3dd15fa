// Package namespace is the namespace controller: when a namespace is being
// deleted (deletionTimestamp set, phase Terminating) it deletes everything
// in it, over every namespaced resource the server serves (found by
// discovery, through the metadata client), pods first as Kubernetes'
// ordered namespace deletion does, and waits until nothing is left:
// graceful pod deletion and finalizers are honoured, not bypassed. It keeps
// the namespace's deletion conditions (NamespaceDeletionDiscoveryFailure,
// NamespaceDeletionContentFailure, NamespaceContentRemaining,
// NamespaceFinalizersRemaining, ...) up to date as kube-controller-manager
// does, and once the namespace is empty removes the "kubernetes" finalizer
// through namespaces/{name}/finalize, after which the API server deletes
// the namespace.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-project/skiff/controlplane/controllers/resources"
	"github.com/skiff-project/skiff/controlplane/controllers/worker"
)

// Name is the controller's name in the manager.
const Name = "namespace"

// finalizerEstimate is how long to wait before looking again at content
// that is held by finalizers.
const finalizerEstimate = 5 * time.Second

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// Config is what the controller needs.
type Config struct {
	Client     kubernetes.Interface
	Metadata   metadata.Interface
	Discovery  discovery.DiscoveryInterface
	Namespaces coreinformers.NamespaceInformer
	Logger     *slog.Logger
	Metrics    prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Controller is the namespace controller.
type Controller struct {
	client   kubernetes.Interface
	md       metadata.Interface
	disc     discovery.DiscoveryInterface
	lister   corelisters.NamespaceLister
	synced   cache.InformerSynced
	log      *slog.Logger
	now      func() time.Time
	queue    workqueue.TypedRateLimitingInterface[string]
	finished prometheus.Counter
}

// New builds the controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Metadata == nil || cfg.Discovery == nil || cfg.Namespaces == nil {
		return nil, errors.New("namespace controller: client, metadata client, discovery and informer are required")
	}
	c := &Controller{
		client: cfg.Client, md: cfg.Metadata, disc: cfg.Discovery,
		lister: cfg.Namespaces.Lister(),
		log:    cfg.Logger,
		now:    cfg.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		finished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_namespace_controller_finalized_total",
			Help: "Namespaces emptied and finalized by the namespace controller.",
		}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.finished); err != nil {
			return nil, fmt.Errorf("register namespace metrics: %w", err)
		}
	}
	inf := cfg.Namespaces.Informer()
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		return nil, fmt.Errorf("add namespace handler: %w", err)
	}
	c.synced = inf.HasSynced
	return c, nil
}

// Name implements controllers.Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the cache, runs workers until ctx ends and then drains.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting namespace controller")
	l := worker.Loop{Queue: c.queue, Sync: c.syncAfter, Log: c.log, Kind: "namespace"}
	if err := l.Run(ctx, workers, c.synced); err != nil {
		return fmt.Errorf("namespace controller: %w", err)
	}
	return nil
}

// remainingError says content is left and when to look again.
type remainingError struct {
	after time.Duration
}

func (e *remainingError) Error() string {
	return fmt.Sprintf("content remains in the namespace, checking again in %s", e.after)
}

// syncAfter is Sync for the worker loop: content that remains is not a
// failure but a look again later.
func (c *Controller) syncAfter(ctx context.Context, name string) (time.Duration, error) {
	err := c.Sync(ctx, name)
	var rem *remainingError
	if errors.As(err, &rem) {
		return rem.after, nil
	}
	return 0, err
}

// Sync processes one namespace by name.
func (c *Controller) Sync(ctx context.Context, name string) error {
	cached, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cached.DeletionTimestamp == nil {
		return nil
	}
	ns := cached.DeepCopy()
	if ns.Status.Phase != corev1.NamespaceTerminating {
		ns.Status.Phase = corev1.NamespaceTerminating
		updated, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("mark namespace %s terminating: %w", name, err)
		}
		ns = updated
	}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	wait, err := c.deleteAllContent(ctx, ns)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &remainingError{after: wait}
	}
	return c.finalize(ctx, ns)
}

// finalize removes the kubernetes finalizer through namespaces/finalize.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) error {
	for attempt := 0; ; attempt++ {
		var rest []corev1.FinalizerName
		for _, f := range ns.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				rest = append(rest, f)
			}
		}
		ns.Spec.Finalizers = rest
		_, err := c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			c.finished.Inc()
			c.log.Info("namespace finalized", "namespace", ns.Name)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 2 {
			return fmt.Errorf("finalize namespace %s: %w", ns.Name, err)
		}
		fresh, gerr := c.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if gerr != nil {
			if apierrors.IsNotFound(gerr) {
				return nil
			}
			return gerr
		}
		ns = fresh
	}
}

// gvrResult is what deleting one resource's content in a namespace left.
type gvrResult struct {
	remaining  int
	finalizers map[string]int
	wait       time.Duration
}

// deleteAllContent deletes the namespace's content, pods first, and
// updates its conditions. It returns how long to wait before checking
// again, zero when the namespace is empty.
func (c *Controller) deleteAllContent(ctx context.Context, ns *corev1.Namespace) (time.Duration, error) {
	cond := &conditions{}
	set, derr := resources.Discover(c.disc, "list", "delete")
	if derr != nil {
		cond.discoveryFailed(derr)
	}
	if set == nil {
		c.updateConditions(ctx, ns, cond)
		return 0, derr
	}
	var gvrs []schema.GroupVersionResource
	hasPods := false
	for _, r := range set.List() {
		if !r.Namespaced {
			continue
		}
		if r.GVR == podsGVR {
			hasPods = true
			continue
		}
		gvrs = append(gvrs, r.GVR)
	}
	verbs := map[schema.GroupVersionResource][]string{}
	for _, r := range set.List() {
		verbs[r.GVR] = r.Verbs
	}

	remaining := map[schema.GroupVersionResource]int{}
	finalizers := map[string]int{}
	var wait time.Duration
	var errs []error
	do := func(gvr schema.GroupVersionResource) {
		res, err := c.deleteResource(ctx, gvr, ns, slices.Contains(verbs[gvr], "deletecollection"))
		if err != nil {
			errs = append(errs, err)
			cond.contentFailed(err)
			return
		}
		if res.remaining > 0 {
			remaining[gvr] = res.remaining
		}
		for f, n := range res.finalizers {
			finalizers[f] += n
		}
		wait = max(wait, res.wait)
	}
	if hasPods {
		do(podsGVR)
		if remaining[podsGVR] > 0 || len(errs) > 0 {
			// Other content waits until the pods are gone: their
			// containers may still use it.
			cond.remaining(remaining, finalizers)
			c.updateConditions(ctx, ns, cond)
			if len(errs) > 0 {
				return 0, errors.Join(errs...)
			}
			return max(wait, time.Second), nil
		}
	}
	for _, gvr := range gvrs {
		do(gvr)
	}
	cond.remaining(remaining, finalizers)
	c.updateConditions(ctx, ns, cond)
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if derr != nil {
		// Some groups were not discovered: their content may remain.
		return 0, derr
	}
	if len(remaining) > 0 {
		return max(wait, time.Second), nil
	}
	return 0, nil
}

// deleteResource deletes all objects of gvr in ns and reports what is
// left.
func (c *Controller) deleteResource(ctx context.Context, gvr schema.GroupVersionResource, ns *corev1.Namespace, collection bool) (gvrResult, error) {
	cl := c.md.Resource(gvr).Namespace(ns.Name)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	deleted := false
	if collection {
		err := cl.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case err == nil:
			deleted = true
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
		default:
			return gvrResult{}, fmt.Errorf("delete collection of %s: %w", gvrString(gvr), err)
		}
	}
	if !deleted {
		list, err := cl.List(ctx, metav1.ListOptions{})
		if apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err) {
			return gvrResult{}, nil
		}
		if err != nil {
			return gvrResult{}, fmt.Errorf("list %s: %w", gvrString(gvr), err)
		}
		for _, item := range list.Items {
			if item.DeletionTimestamp != nil {
				continue
			}
			uid := item.UID
			o := opts
			o.Preconditions = &metav1.Preconditions{UID: &uid}
			err := cl.Delete(ctx, item.Name, o)
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return gvrResult{}, fmt.Errorf("delete %s %s: %w", gvrString(gvr), item.Name, err)
			}
		}
	}
	list, err := cl.List(ctx, metav1.ListOptions{})
	if err != nil {
		return gvrResult{}, fmt.Errorf("list remaining %s: %w", gvrString(gvr), err)
	}
	res := gvrResult{remaining: len(list.Items), finalizers: map[string]int{}}
	now := c.now()
	for _, item := range list.Items {
		for _, f := range item.Finalizers {
			res.finalizers[f]++
		}
		// Graceful deletion: wait about half of what is left of the
		// grace period, as kube-controller-manager does.
		w := finalizerEstimate
		if item.DeletionTimestamp != nil && len(item.Finalizers) == 0 {
			w = item.DeletionTimestamp.Sub(now) / 2
		}
		res.wait = max(res.wait, w)
	}
	return res, nil
}

func gvrString(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}

func (c *Controller) updateConditions(ctx context.Context, ns *corev1.Namespace, cond *conditions) {
	if !cond.apply(&ns.Status, c.now()) {
		return
	}
	updated, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
	if err != nil {
		c.log.Debug("update namespace conditions", "namespace", ns.Name, "err", err)
		return
	}
	*ns = *updated
}

// conditions collects the namespace deletion conditions of one sync.
type conditions struct {
	set []corev1.NamespaceCondition
}

var conditionTypes = []corev1.NamespaceConditionType{
	corev1.NamespaceDeletionDiscoveryFailure,
	corev1.NamespaceDeletionGVParsingFailure,
	corev1.NamespaceDeletionContentFailure,
	corev1.NamespaceContentRemaining,
	corev1.NamespaceFinalizersRemaining,
}

var okConditions = map[corev1.NamespaceConditionType][2]string{
	corev1.NamespaceDeletionDiscoveryFailure: {"ResourcesDiscovered", "All resources successfully discovered"},
	corev1.NamespaceDeletionGVParsingFailure: {"ParsedGroupVersions", "All legacy kube types successfully parsed"},
	corev1.NamespaceDeletionContentFailure:   {"ContentDeleted", "All content successfully deleted, may be waiting on finalization"},
	corev1.NamespaceContentRemaining:         {"ContentRemoved", "All content successfully removed"},
	corev1.NamespaceFinalizersRemaining:      {"ContentHasNoFinalizers", "All content-preserving finalizers finished"},
}

func (c *conditions) add(t corev1.NamespaceConditionType, reason, msg string) {
	for i := range c.set {
		if c.set[i].Type == t {
			c.set[i].Message += ", " + msg
			return
		}
	}
	c.set = append(c.set, corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg})
}

func (c *conditions) discoveryFailed(err error) {
	msg := err.Error()
	var derr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &derr) {
		msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(derr.Groups), err)
	}
	c.add(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", msg)
}

func (c *conditions) contentFailed(err error) {
	c.add(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed", "Failed to delete all resource types: "+err.Error())
}

func (c *conditions) remaining(byGVR map[schema.GroupVersionResource]int, finalizers map[string]int) {
	if len(byGVR) > 0 {
		var parts []string
		for gvr, n := range byGVR {
			parts = append(parts, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
		sort.Strings(parts)
		c.add(corev1.NamespaceContentRemaining, "SomeResourcesRemain", "Some resources are remaining: "+strings.Join(parts, ", "))
	}
	if len(finalizers) > 0 {
		var parts []string
		for f, n := range finalizers {
			parts = append(parts, fmt.Sprintf("%s in %d resource instances", f, n))
		}
		sort.Strings(parts)
		c.add(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: "+strings.Join(parts, ", "))
	}
}

// apply writes every condition type into st (the failure ones collected,
// the others in their "ok" form) and reports a change.
func (c *conditions) apply(st *corev1.NamespaceStatus, now time.Time) bool {
	changed := false
	for _, t := range conditionTypes {
		want := corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: okConditions[t][0], Message: okConditions[t][1]}
		for _, s := range c.set {
			if s.Type == t {
				want = s
			}
		}
		idx := -1
		for i := range st.Conditions {
			if st.Conditions[i].Type == t {
				idx = i
			}
		}
		if idx < 0 {
			want.LastTransitionTime = metav1.NewTime(now)
			st.Conditions = append(st.Conditions, want)
			changed = true
			continue
		}
		old := &st.Conditions[idx]
		if old.Status == want.Status && old.Reason == want.Reason && old.Message == want.Message {
			continue
		}
		if old.Status != want.Status {
			old.LastTransitionTime = metav1.NewTime(now)
		}
		old.Status, old.Reason, old.Message = want.Status, want.Reason, want.Message
		changed = true
	}
	return changed
}
