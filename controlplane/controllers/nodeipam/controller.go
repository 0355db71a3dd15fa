// Package nodeipam is the node IPAM controller: it gives every node a pod
// CIDR (spec.podCIDR and spec.podCIDRs) carved from the cluster CIDRs, as
// kube-controller-manager's range allocator does (--allocate-node-cidrs,
// --cluster-cidr, --node-cidr-mask-size).
//
// A node gets one subnet per cluster CIDR (one per IP family for dual
// stack) when it is created or whenever it lacks one; the subnets return to
// the pool when the node is deleted. At start the controller marks every
// podCIDR the nodes already hold as taken before it allocates anything, so a
// restart or a new leader never hands a subnet out twice. A subnet reserved
// for a node stays reserved to it while the node exists, even if writing it
// failed, so an ambiguous failure cannot lead to two nodes with one subnet.
// When a cluster CIDR is exhausted the node gets a CIDRNotAvailable event
// and a NetworkUnavailable=True condition (reason CIDRNotAvailable), and
// waits for a subnet to be released.
package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
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
	Name = "nodeipam"
	// DefaultClusterCIDR and DefaultNodeMaskSize are Skiff's defaults.
	DefaultClusterCIDR  = "10.244.0.0/16"
	DefaultNodeMaskSize = 24
	// DefaultNodeMaskSizeIPv6 is upstream's default for IPv6 cluster CIDRs.
	DefaultNodeMaskSizeIPv6 = 64

	reasonNotAvailable = "CIDRNotAvailable"
	reasonAssigned     = "CIDRAssigned"
	// fullRetry is how often a node waiting for a subnet is retried even
	// when no node goes away.
	fullRetry  = 30 * time.Second
	maxRetries = 15
)

// Options configure the controller.
type Options struct {
	// ClusterCIDRs are the ranges to carve (at most one per IP family);
	// empty means DefaultClusterCIDR.
	ClusterCIDRs []string
	// NodeMaskSize is the prefix length of IPv4 node subnets (default 24);
	// NodeMaskSizeIPv6 that of IPv6 ones (default 64).
	NodeMaskSize     int
	NodeMaskSizeIPv6 int
}

// Controller assigns node pod CIDRs.
type Controller struct {
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	synced cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger

	mu   sync.Mutex
	sets []*CIDRSet
	// byNode are the subnets reserved for each node (name -> uid and
	// subnets, one per set, in set order).
	byNode map[string]reservation

	freeGauge *prometheus.GaugeVec
}

type reservation struct {
	uid     types.UID
	subnets []netip.Prefix
}

// New builds the controller and registers its informer on factory. reg may
// be nil.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Controller, error) {
	sets, err := buildSets(opts)
	if err != nil {
		return nil, fmt.Errorf("nodeipam: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nodeInf := factory.Core().V1().Nodes()
	c := &Controller{
		client: client,
		nodes:  nodeInf.Lister(),
		synced: nodeInf.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: recorder,
		log:      log,
		sets:     sets,
		byNode:   map[string]reservation{},
		freeGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_nodeipam_free_cidrs",
			Help: "Node subnets left in each cluster CIDR.",
		}, []string{"cidr"}),
	}
	if reg != nil {
		if err := reg.Register(c.freeGauge); err != nil {
			return nil, fmt.Errorf("nodeipam: register metrics: %w", err)
		}
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("nodeipam: node handler: %w", err)
	}
	return c, nil
}

func buildSets(opts Options) ([]*CIDRSet, error) {
	cidrs := opts.ClusterCIDRs
	if len(cidrs) == 0 {
		cidrs = []string{DefaultClusterCIDR}
	}
	if len(cidrs) > 2 {
		return nil, fmt.Errorf("at most two cluster CIDRs (one per IP family), got %d", len(cidrs))
	}
	var sets []*CIDRSet
	families := map[bool]bool{}
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("cluster CIDR %q: %w", s, err)
		}
		is4 := p.Addr().Is4()
		if families[is4] {
			return nil, fmt.Errorf("two cluster CIDRs of one IP family: %v", cidrs)
		}
		families[is4] = true
		mask := opts.NodeMaskSize
		if mask == 0 {
			mask = DefaultNodeMaskSize
		}
		if !is4 {
			mask = opts.NodeMaskSizeIPv6
			if mask == 0 {
				mask = DefaultNodeMaskSizeIPv6
			}
		}
		set, err := NewCIDRSet(p, mask)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// Name implements the controller manager's Controller.
func (c *Controller) Name() string { return Name }

// Run waits for the node cache, marks the subnets existing nodes hold as
// taken, then runs workers until ctx ends. It returns nil.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.log.Info("starting", "workers", workers, "clusterCIDRs", c.clusterCIDRs())
	l := worker.Loop{Queue: c.queue, Sync: c.sync, Start: c.recover, Log: c.log, Kind: "node", MaxRetries: maxRetries}
	return l.Run(ctx, workers, c.synced)
}

func (c *Controller) clusterCIDRs() []string {
	var out []string
	for _, s := range c.sets {
		out = append(out, s.Cluster().String())
	}
	return out
}

// recover marks every subnet the nodes hold as taken.
func (c *Controller) recover() error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("nodeipam: list nodes: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, node := range nodes {
		if c.occupyLocked(node) {
			n++
		}
	}
	c.updateGaugeLocked()
	c.log.Info("recovered node subnets", "nodes", n)
	return nil
}

// occupyLocked records the subnets node holds; it reports whether it holds
// any of ours.
func (c *Controller) occupyLocked(node *corev1.Node) bool {
	cidrs := nodeCIDRs(node)
	if len(cidrs) == 0 {
		return false
	}
	res := reservation{uid: node.UID, subnets: make([]netip.Prefix, len(c.sets))}
	found := false
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.log.Warn("node has an unparsable podCIDR", "node", node.Name, "podCIDR", s)
			continue
		}
		for i, set := range c.sets {
			if set.Contains(p) {
				_ = set.Occupy(p)
				res.subnets[i] = p.Masked()
				found = true
			}
		}
	}
	if found {
		c.byNode[node.Name] = res
	}
	return found
}

// sync gives a node its subnets, or releases those of a deleted node. It
// returns when to retry a node that waits for a free subnet.
func (c *Controller) sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.release(name, "")
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(nodeCIDRs(node)) > 0 {
		c.mu.Lock()
		// What the node holds wins over what was reserved for it (or for
		// an earlier node of the same name).
		c.releaseLocked(name)
		c.occupyLocked(node)
		c.updateGaugeLocked()
		c.mu.Unlock()
		return 0, c.clearUnavailable(ctx, node)
	}

	subnets, err := c.reserve(node)
	if errors.Is(err, ErrFull) {
		c.log.Warn("no pod CIDR for node", "node", name, "err", err)
		if c.recorder != nil {
			ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}
			c.recorder.Eventf(ref, corev1.EventTypeNormal, reasonNotAvailable, "Node %s status is now: %s", node.Name, reasonNotAvailable)
		}
		if err := c.setUnavailable(ctx, node, err.Error()); err != nil {
			return 0, err
		}
		return fullRetry, nil
	}
	if err != nil {
		return 0, err
	}
	var strs []string
	for _, p := range subnets {
		strs = append(strs, p.String())
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": strs[0], "podCIDRs": strs}})
	if err != nil {
		return 0, err
	}
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			c.release(name, node.UID)
			return 0, nil
		}
		// The reservation stays with the node: the write may have
		// happened.
		return 0, fmt.Errorf("set pod CIDRs %v on node %s: %w", strs, name, err)
	}
	c.log.Info("assigned pod CIDRs", "node", name, "podCIDRs", strs)
	return 0, nil
}

// reserve returns the node's reserved subnets, reserving them if needed.
func (c *Controller) reserve(node *corev1.Node) ([]netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byNode[node.Name]
	if ok && r.uid != node.UID {
		c.releaseLocked(node.Name)
		ok = false
	}
	if !ok {
		r = reservation{uid: node.UID, subnets: make([]netip.Prefix, len(c.sets))}
	}
	var taken []int
	for i, set := range c.sets {
		if r.subnets[i].IsValid() {
			continue
		}
		p, err := set.AllocateNext()
		if err != nil {
			// All or nothing: give back what this call took.
			for _, j := range taken {
				_ = c.sets[j].Release(r.subnets[j])
				r.subnets[j] = netip.Prefix{}
			}
			c.updateGaugeLocked()
			return nil, err
		}
		r.subnets[i] = p
		taken = append(taken, i)
	}
	c.byNode[node.Name] = r
	c.updateGaugeLocked()
	return r.subnets, nil
}

// release frees a node's subnets (only if the reservation is for uid, when
// uid is set) and queues the nodes still waiting for one.
func (c *Controller) release(name string, uid types.UID) {
	c.mu.Lock()
	r, ok := c.byNode[name]
	if !ok || (uid != "" && r.uid != uid) {
		c.mu.Unlock()
		return
	}
	c.releaseLocked(name)
	c.updateGaugeLocked()
	c.mu.Unlock()
	c.log.Info("released pod CIDRs", "node", name, "podCIDRs", r.subnets)
	if nodes, err := c.nodes.List(labels.Everything()); err == nil {
		for _, n := range nodes {
			if len(nodeCIDRs(n)) == 0 {
				c.queue.Add(n.Name)
			}
		}
	}
}

func (c *Controller) releaseLocked(name string) {
	for i, p := range c.byNode[name].subnets {
		if p.IsValid() {
			_ = c.sets[i].Release(p)
		}
	}
	delete(c.byNode, name)
}

func (c *Controller) updateGaugeLocked() {
	for _, s := range c.sets {
		c.freeGauge.WithLabelValues(s.Cluster().String()).Set(float64(s.Free()))
	}
}

// setUnavailable sets NetworkUnavailable=True with reason CIDRNotAvailable.
func (c *Controller) setUnavailable(ctx context.Context, node *corev1.Node, msg string) error {
	cur := networkCondition(node)
	if cur != nil && cur.Status == corev1.ConditionTrue && cur.Reason == reasonNotAvailable {
		return nil
	}
	return c.writeCondition(ctx, node, corev1.ConditionTrue, reasonNotAvailable, msg)
}

// clearUnavailable flips a CIDRNotAvailable condition set earlier to False
// once the node has its subnets; a NetworkUnavailable condition set by
// anyone else is left alone.
func (c *Controller) clearUnavailable(ctx context.Context, node *corev1.Node) error {
	cur := networkCondition(node)
	if cur == nil || cur.Reason != reasonNotAvailable {
		return nil
	}
	return c.writeCondition(ctx, node, corev1.ConditionFalse, reasonAssigned, "pod CIDR assigned")
}

func (c *Controller) writeCondition(ctx context.Context, node *corev1.Node, status corev1.ConditionStatus, reason, msg string) error {
	n := node.DeepCopy()
	now := metav1.Now()
	cond := corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: status, Reason: reason, Message: msg,
		LastHeartbeatTime: now, LastTransitionTime: now,
	}
	if cur := networkCondition(n); cur != nil {
		if cur.Status == status {
			cond.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = cond
	} else {
		n.Status.Conditions = append(n.Status.Conditions, cond)
	}
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("set node %s NetworkUnavailable=%s: %w", node.Name, status, err)
	}
	return nil
}

func networkCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeNetworkUnavailable {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func nodeCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}
