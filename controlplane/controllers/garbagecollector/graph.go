package garbagecollector

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// identity names an object: its coordinates and UID.
type identity struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	UID        types.UID
}

// node is one object in the ownership graph.
type node struct {
	id identity
	// virtual nodes are known only from ownerReferences: the object was
	// not (yet) seen by a monitor.
	virtual bool
	// beingDeleted: deletionTimestamp is set.
	beingDeleted bool
	// deletingDependents: being deleted with the foregroundDeletion
	// finalizer, waiting for its blocking dependents.
	deletingDependents bool
	// hasOrphanFinalizer: being deleted with the orphan finalizer.
	owners     []metav1.OwnerReference
	dependents map[*node]struct{}
}

// graph is the owner/dependent graph. Its lock guards every node's fields.
type graph struct {
	mu    sync.RWMutex
	nodes map[types.UID]*node
}

func newGraph() *graph { return &graph{nodes: map[types.UID]*node{}} }

func (g *graph) get(uid types.UID) *node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.nodes[uid]
}

func (g *graph) size() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.nodes)
}

// snapshot is a consistent copy of what workers need from a node.
type snapshot struct {
	id                 identity
	virtual            bool
	beingDeleted       bool
	deletingDependents bool
	dependents         []identity
	// blocking are the dependents whose reference to this node has
	// blockOwnerDeletion set.
	blocking []snapshotDep
	// dependentNodes lets workers enqueue dependents.
	dependentNodes []*node
}

type snapshotDep struct {
	id                 identity
	beingDeleted       bool
	deletingDependents bool
	node               *node
}

func (g *graph) snapshot(n *node) snapshot {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s := snapshot{id: n.id, virtual: n.virtual, beingDeleted: n.beingDeleted, deletingDependents: n.deletingDependents}
	for d := range n.dependents {
		s.dependents = append(s.dependents, d.id)
		s.dependentNodes = append(s.dependentNodes, d)
		for _, ref := range d.owners {
			if ref.UID == n.id.UID && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				s.blocking = append(s.blocking, snapshotDep{id: d.id, beingDeleted: d.beingDeleted, deletingDependents: d.deletingDependents, node: d})
				break
			}
		}
	}
	return s
}
