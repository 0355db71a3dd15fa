// Package cache is the scheduler's cache of nodes and the pods placed on
// them, fed by the pod and node informers and by the scheduler itself.
//
// A pod is "assumed" on a node as soon as a scheduling cycle picks the node,
// before the bind call returns, so the next cycles already see its requests
// and a burst of pods never double-books a node. The assumption is confirmed
// when the informer delivers the bound pod (AddPod), undone when binding
// fails (ForgetPod), and expires a while after binding finished if the
// informer never confirms it (the pod was deleted before the watch saw it
// bound).
//
// UpdateSnapshot copies the NodeInfos that changed since the last call into
// the scheduling cycle's Snapshot; a generation number per NodeInfo and a
// most-recently-changed list make that proportional to the changes.
package cache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// DefaultAssumedPodTTL is how long an assumed pod whose binding finished
// stays in the cache without the informer confirming it.
const DefaultAssumedPodTTL = 15 * time.Minute

type podState struct {
	pod *v1.Pod
	// deadline is when an assumed pod expires; set when binding finished.
	deadline        time.Time
	bindingFinished bool
}

type nodeInfoListItem struct {
	info *framework.NodeInfo
	next *nodeInfoListItem
	prev *nodeInfoListItem
}

// Cache holds nodes and the pods on them. It is safe for concurrent use.
type Cache struct {
	log *slog.Logger
	ttl time.Duration
	now func() time.Time

	mu          sync.RWMutex
	assumedPods sets.Set[string]
	podStates   map[string]*podState
	nodes       map[string]*nodeInfoListItem
	// headNode is the most recently changed NodeInfo.
	headNode   *nodeInfoListItem
	nodeTree   *nodeTree
	generation int64
}

// New returns an empty cache. Assumed pods whose binding finished expire
// after ttl (0 disables expiry).
func New(log *slog.Logger, ttl time.Duration) *Cache {
	return &Cache{
		log:         log,
		ttl:         ttl,
		now:         time.Now,
		assumedPods: sets.New[string](),
		podStates:   make(map[string]*podState),
		nodes:       make(map[string]*nodeInfoListItem),
		nodeTree:    newNodeTree(),
	}
}

// SetClock replaces the clock, for tests.
func (c *Cache) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

func (c *Cache) nextGeneration() int64 {
	c.generation++
	return c.generation
}

func (c *Cache) moveToHead(item *nodeInfoListItem) {
	item.info.Generation = c.nextGeneration()
	if item == c.headNode {
		return
	}
	if item.prev != nil {
		item.prev.next = item.next
	}
	if item.next != nil {
		item.next.prev = item.prev
	}
	if c.headNode != nil {
		c.headNode.prev = item
	}
	item.next = c.headNode
	item.prev = nil
	c.headNode = item
}

func (c *Cache) removeFromList(name string) {
	item, ok := c.nodes[name]
	if !ok {
		return
	}
	if item.prev != nil {
		item.prev.next = item.next
	}
	if item.next != nil {
		item.next.prev = item.prev
	}
	if item == c.headNode {
		c.headNode = item.next
	}
	delete(c.nodes, name)
}

func (c *Cache) nodeItem(name string) *nodeInfoListItem {
	item, ok := c.nodes[name]
	if !ok {
		item = &nodeInfoListItem{info: framework.NewNodeInfo()}
		c.nodes[name] = item
	}
	return item
}

// addPodInfo places a pod on its node; the caller holds the lock.
func (c *Cache) addPodInfo(pi *framework.PodInfo, assumed bool) {
	item := c.nodeItem(pi.Pod.Spec.NodeName)
	item.info.AddPodInfo(pi)
	c.moveToHead(item)
	key := framework.PodKey(pi.Pod)
	c.podStates[key] = &podState{pod: pi.Pod}
	if assumed {
		c.assumedPods.Insert(key)
	} else {
		c.assumedPods.Delete(key)
	}
}

// removePod takes a pod off its node; the caller holds the lock.
func (c *Cache) removePod(pod *v1.Pod) error {
	key := framework.PodKey(pod)
	item, ok := c.nodes[pod.Spec.NodeName]
	if !ok {
		return fmt.Errorf("node %q of pod %s/%s not in cache", pod.Spec.NodeName, pod.Namespace, pod.Name)
	}
	if err := item.info.RemovePod(pod); err != nil {
		return err
	}
	if len(item.info.Pods) == 0 && item.info.Node() == nil {
		c.removeFromList(pod.Spec.NodeName)
		c.generation++
	} else {
		c.moveToHead(item)
	}
	delete(c.podStates, key)
	c.assumedPods.Delete(key)
	return nil
}

// AssumePod places a pod the scheduler just picked a node for (pi.Pod has
// spec.nodeName set) before it is bound.
func (c *Cache) AssumePod(pi *framework.PodInfo) error {
	key := framework.PodKey(pi.Pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.podStates[key]; ok {
		return fmt.Errorf("pod %s/%s is in the cache, so can't be assumed", pi.Pod.Namespace, pi.Pod.Name)
	}
	c.addPodInfo(pi, true)
	return nil
}

// FinishBinding starts the expiry clock of an assumed pod whose bind call
// returned.
func (c *Cache) FinishBinding(pod *v1.Pod) {
	key := framework.PodKey(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.podStates[key]; ok && c.assumedPods.Has(key) {
		ps.bindingFinished = true
		ps.deadline = c.now().Add(c.ttl)
	}
}

// ForgetPod undoes AssumePod after a failed binding.
func (c *Cache) ForgetPod(pod *v1.Pod) error {
	key := framework.PodKey(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.podStates[key]
	if ok && ps.pod.Spec.NodeName != pod.Spec.NodeName {
		return fmt.Errorf("pod %s/%s was assumed on %q but forgotten on %q", pod.Namespace, pod.Name, ps.pod.Spec.NodeName, pod.Spec.NodeName)
	}
	if !ok || !c.assumedPods.Has(key) {
		return fmt.Errorf("pod %s/%s wasn't assumed so cannot be forgotten", pod.Namespace, pod.Name)
	}
	return c.removePod(ps.pod)
}

// AddPod adds a bound pod seen by the informer. For an assumed pod this is
// the confirmation: the cached copy is replaced by the API's.
func (c *Cache) AddPod(pod *v1.Pod) error {
	key := framework.PodKey(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.podStates[key]
	switch {
	case ok && c.assumedPods.Has(key):
		if ps.pod.Spec.NodeName != pod.Spec.NodeName {
			c.log.Warn("pod was bound to a different node than it was assumed on",
				"pod", pod.Namespace+"/"+pod.Name, "assumedNode", ps.pod.Spec.NodeName, "node", pod.Spec.NodeName)
		}
		if err := c.removePod(ps.pod); err != nil {
			return err
		}
		c.addPodInfo(framework.NewPodInfo(pod), false)
		return nil
	case !ok:
		c.addPodInfo(framework.NewPodInfo(pod), false)
		return nil
	default:
		return fmt.Errorf("pod %s/%s was already added", pod.Namespace, pod.Name)
	}
}

// UpdatePod replaces a bound pod.
func (c *Cache) UpdatePod(oldPod, newPod *v1.Pod) error {
	key := framework.PodKey(oldPod)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.podStates[key]
	if !ok {
		return fmt.Errorf("pod %s/%s is not in the cache, so cannot be updated", oldPod.Namespace, oldPod.Name)
	}
	if c.assumedPods.Has(key) {
		// An update before the add that confirms the assumption: treat it
		// as the confirmation.
		c.log.Debug("update of an assumed pod", "pod", newPod.Namespace+"/"+newPod.Name)
	}
	if err := c.removePod(ps.pod); err != nil {
		return err
	}
	c.addPodInfo(framework.NewPodInfo(newPod), false)
	return nil
}

// RemovePod removes a pod, assumed or bound.
func (c *Cache) RemovePod(pod *v1.Pod) error {
	key := framework.PodKey(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.podStates[key]
	if !ok {
		return fmt.Errorf("pod %s/%s is not in the cache, so cannot be removed", pod.Namespace, pod.Name)
	}
	if ps.pod.Spec.NodeName != pod.Spec.NodeName && pod.Spec.NodeName != "" {
		c.log.Warn("pod removed from a different node than it was added to",
			"pod", pod.Namespace+"/"+pod.Name, "cachedNode", ps.pod.Spec.NodeName, "node", pod.Spec.NodeName)
	}
	return c.removePod(ps.pod)
}

// IsAssumedPod reports whether the pod is assumed and not yet confirmed.
func (c *Cache) IsAssumedPod(pod *v1.Pod) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.assumedPods.Has(framework.PodKey(pod))
}

// GetPod returns the cached copy of a pod.
func (c *Cache) GetPod(pod *v1.Pod) (*v1.Pod, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps, ok := c.podStates[framework.PodKey(pod)]
	if !ok {
		return nil, fmt.Errorf("pod %s/%s does not exist in the cache", pod.Namespace, pod.Name)
	}
	return ps.pod, nil
}

// AddNode adds a node or replaces its object.
func (c *Cache) AddNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	item := c.nodeItem(node.Name)
	c.nodeTree.updateNode(node)
	item.info.SetNode(node)
	c.moveToHead(item)
}

// UpdateNode replaces a node's object.
func (c *Cache) UpdateNode(_, newNode *v1.Node) {
	c.AddNode(newNode)
}

// RemoveNode removes a node. Its pods stay until the informer removes them,
// so that their deletion finds them.
func (c *Cache) RemoveNode(node *v1.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	item, ok := c.nodes[node.Name]
	if !ok {
		return fmt.Errorf("node %q is not in the cache", node.Name)
	}
	c.nodeTree.removeNode(node)
	item.info.RemoveNode()
	if len(item.info.Pods) == 0 {
		c.removeFromList(node.Name)
		c.generation++
	} else {
		c.moveToHead(item)
	}
	return nil
}

// Counts reports the numbers of nodes, pods and assumed pods.
func (c *Cache) Counts() (nodes, pods, assumed int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nodeTree.numNodes, len(c.podStates), len(c.assumedPods)
}

// CleanupAssumedPods expires assumed pods whose binding finished more than
// the TTL ago without confirmation.
func (c *Cache) CleanupAssumedPods() {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for key := range c.assumedPods {
		ps, ok := c.podStates[key]
		if !ok || !ps.bindingFinished || now.Before(ps.deadline) {
			continue
		}
		c.log.Warn("assumed pod expired without the informer confirming its binding",
			"pod", ps.pod.Namespace+"/"+ps.pod.Name, "node", ps.pod.Spec.NodeName)
		if err := c.removePod(ps.pod); err != nil {
			c.log.Error("expire assumed pod", "pod", ps.pod.Namespace+"/"+ps.pod.Name, "err", err)
		}
	}
}

// Run expires assumed pods every period until ctx ends.
func (c *Cache) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.CleanupAssumedPods()
		}
	}
}

// UpdateSnapshot brings s up to date with the cache, copying only the
// NodeInfos changed since s was last updated.
func (c *Cache) UpdateSnapshot(s *Snapshot) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	rebuildList := false
	rebuildAffinity := false
	for item := c.headNode; item != nil; item = item.next {
		if item.info.Generation <= s.generation {
			break
		}
		node := item.info.Node()
		if node == nil {
			continue
		}
		existing, ok := s.nodeInfoMap[node.Name]
		if !ok {
			rebuildList = true
			existing = &framework.NodeInfo{Index: -1}
			s.nodeInfoMap[node.Name] = existing
		}
		clone := item.info.Clone()
		if (len(existing.PodsWithAffinity) > 0) != (len(clone.PodsWithAffinity) > 0) ||
			(len(existing.PodsWithRequiredAntiAffinity) > 0) != (len(clone.PodsWithRequiredAntiAffinity) > 0) ||
			(len(existing.PodsWithScoringAffinity) > 0) != (len(clone.PodsWithScoringAffinity) > 0) ||
			(existing.NonHostnameAntiAffinityPods > 0) != (clone.NonHostnameAntiAffinityPods > 0) {
			rebuildAffinity = true
		}
		index := existing.Index
		*existing = *clone
		existing.Index = index
		if index >= 0 {
			s.recordChange(index)
		}
	}
	s.generation = c.generation

	if len(s.nodeInfoMap) > c.nodeTree.numNodes {
		for name := range s.nodeInfoMap {
			if item, ok := c.nodes[name]; !ok || item.info.Node() == nil {
				delete(s.nodeInfoMap, name)
			}
		}
		rebuildList = true
	}
	if rebuildList {
		for _, ni := range s.nodeInfoList {
			ni.Index = -1
		}
		s.nodeInfoList = s.nodeInfoList[:0]
		for _, name := range c.nodeTree.list() {
			if ni, ok := s.nodeInfoMap[name]; ok {
				s.nodeInfoList = append(s.nodeInfoList, ni)
			}
		}
		s.resetList()
		rebuildAffinity = true
	}
	if rebuildAffinity {
		s.rebuildAffinityLists()
	}
	if len(s.nodeInfoList) != c.nodeTree.numNodes || len(s.nodeInfoMap) != c.nodeTree.numNodes {
		return fmt.Errorf("snapshot has %d nodes (%d in map), cache has %d", len(s.nodeInfoList), len(s.nodeInfoMap), c.nodeTree.numNodes)
	}
	return nil
}
