package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// processGraphChange applies one event to the graph and queues the work it
// implies. It runs on a single goroutine.
func (c *Controller) processGraphChange() bool {
	ev, quit := c.changes.Get()
	if quit {
		return false
	}
	defer c.changes.Done(ev)
	c.apply(ev)
	return true
}

func identityOf(ev *event) identity {
	if ev.virtual {
		return ev.id
	}
	return identity{
		APIVersion: ev.gvk.GroupVersion().String(), Kind: ev.gvk.Kind,
		Namespace: ev.obj.Namespace, Name: ev.obj.Name, UID: ev.obj.UID,
	}
}

func (c *Controller) apply(ev *event) {
	id := identityOf(ev)
	g := c.graph
	g.mu.Lock()
	existing := g.nodes[id.UID]
	if ev.typ == deleteEvent {
		if existing == nil {
			g.mu.Unlock()
			return
		}
		if ev.virtual && !existing.virtual && !c.stillGone(existing) {
			// A worker's GET raced with an informer: trust the monitor.
			g.mu.Unlock()
			return
		}
		c.absent.add(id.UID)
		g.removeLocked(existing)
		var wake []*node
		for d := range existing.dependents {
			wake = append(wake, d)
		}
		for _, ref := range existing.owners {
			if o := g.nodes[ref.UID]; o != nil && o.deletingDependents {
				wake = append(wake, o)
			}
		}
		g.mu.Unlock()
		for _, n := range wake {
			c.toDelete.Add(n)
		}
		return
	}

	obj := ev.obj
	beingDeleted := obj.DeletionTimestamp != nil
	var toDelete, toOrphan []*node
	if existing == nil {
		n := &node{id: id, beingDeleted: beingDeleted, owners: obj.OwnerReferences, dependents: map[*node]struct{}{}}
		g.nodes[id.UID] = n
		// A new object is checked at once when an owner is known to be
		// gone or waits for its dependents; owners not in the graph are
		// verified as virtual nodes, which wakes n if they are absent.
		for _, r := range obj.OwnerReferences {
			if o := g.nodes[r.UID]; c.absent.has(r.UID) || (o != nil && o.deletingDependents) {
				toDelete = append(toDelete, n)
				break
			}
		}
		toDelete = append(toDelete, g.linkOwnersLocked(n, obj.OwnerReferences)...)
		existing = n
	} else {
		if existing.virtual {
			existing.virtual = false
			existing.id = id
		}
		added, removed, changed := diffRefs(existing.owners, obj.OwnerReferences)
		if len(added)+len(removed)+len(changed) > 0 {
			// Owners that no longer wait on this object may be free.
			for _, r := range append(removed, changed...) {
				if o := g.nodes[r.UID]; o != nil && o.deletingDependents {
					toDelete = append(toDelete, o)
				}
			}
			for _, r := range removed {
				if o := g.nodes[r.UID]; o != nil {
					delete(o.dependents, existing)
				}
			}
			existing.owners = obj.OwnerReferences
			toDelete = append(toDelete, g.linkOwnersLocked(existing, added)...)
			toDelete = append(toDelete, existing)
		}
		existing.beingDeleted = beingDeleted
	}
	// Transitions into deletion with a GC finalizer.
	var old *metav1.PartialObjectMetadata
	if ev.typ == updateEvent {
		old = ev.old
	}
	if startsDeleting(old, obj, metav1.FinalizerOrphanDependents) {
		toOrphan = append(toOrphan, existing)
	}
	if beingDeleted && hasFinalizer(obj, metav1.FinalizerDeleteDependents) {
		if !existing.deletingDependents || startsDeleting(old, obj, metav1.FinalizerDeleteDependents) {
			existing.deletingDependents = true
			for d := range existing.dependents {
				toDelete = append(toDelete, d)
			}
			toDelete = append(toDelete, existing)
		}
	} else {
		existing.deletingDependents = false
	}
	g.mu.Unlock()
	for _, n := range toDelete {
		c.toDelete.Add(n)
	}
	for _, n := range toOrphan {
		c.toOrphan.Add(n)
	}
}

// stillGone is a hook for virtual deletes of observed nodes: such a delete
// only comes from a worker that found the UID absent with a live GET, and
// the informer delete will follow. Removing the node early is safe.
func (c *Controller) stillGone(*node) bool { return true }

func startsDeleting(old, cur *metav1.PartialObjectMetadata, finalizer string) bool {
	if cur.DeletionTimestamp == nil || !hasFinalizer(cur, finalizer) {
		return false
	}
	if old == nil {
		return true
	}
	return old.DeletionTimestamp == nil || !hasFinalizer(old, finalizer)
}

// linkOwnersLocked adds n to its owners' dependents, creating virtual
// owner nodes for owners not in the graph; it returns the new virtual
// nodes, which a worker must verify.
func (g *graph) linkOwnersLocked(n *node, refs []metav1.OwnerReference) []*node {
	var virtual []*node
	for _, r := range refs {
		o := g.nodes[r.UID]
		if o == nil {
			o = &node{
				id:         identity{APIVersion: r.APIVersion, Kind: r.Kind, Namespace: n.id.Namespace, Name: r.Name, UID: r.UID},
				virtual:    true,
				dependents: map[*node]struct{}{},
			}
			g.nodes[r.UID] = o
			virtual = append(virtual, o)
		}
		o.dependents[n] = struct{}{}
	}
	return virtual
}

// removeLocked removes n from the graph and from its owners' dependents.
// Its dependents keep their (now dangling) references; a virtual node
// takes n's place when it still has dependents, so that they can be found
// from it.
func (g *graph) removeLocked(n *node) {
	for _, r := range n.owners {
		if o := g.nodes[r.UID]; o != nil {
			delete(o.dependents, n)
			if o.virtual && len(o.dependents) == 0 {
				delete(g.nodes, o.id.UID)
			}
		}
	}
	delete(g.nodes, n.id.UID)
}

// diffRefs compares owner references by UID.
func diffRefs(old, cur []metav1.OwnerReference) (added, removed, changed []metav1.OwnerReference) {
	byUID := map[types.UID]metav1.OwnerReference{}
	for _, r := range old {
		byUID[r.UID] = r
	}
	for _, r := range cur {
		o, ok := byUID[r.UID]
		if !ok {
			added = append(added, r)
			continue
		}
		if !boolPtrEqual(o.BlockOwnerDeletion, r.BlockOwnerDeletion) || !boolPtrEqual(o.Controller, r.Controller) {
			changed = append(changed, r)
		}
		delete(byUID, r.UID)
	}
	for _, r := range old {
		if _, ok := byUID[r.UID]; ok {
			removed = append(removed, r)
		}
	}
	return added, removed, changed
}

func boolPtrEqual(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
