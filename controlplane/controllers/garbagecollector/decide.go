package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ownerState classifies one owner of a dependent.
type ownerState int

const (
	// ownerSolid exists and is not being deleted in the foreground.
	ownerSolid ownerState = iota
	// ownerDangling is gone (not found, or found with another UID).
	ownerDangling
	// ownerWaiting is being deleted in the foreground: it waits for its
	// blocking dependents to go.
	ownerWaiting
)

type actionKind int

const (
	actNone actionKind = iota
	// actPatchRefs rewrites the dependent's ownerReferences: drops
	// dangling ones and clears blockOwnerDeletion on waiting owners.
	actPatchRefs
	// actDelete deletes the dependent with policy.
	actDelete
)

// action is what the collector does to one dependent.
type action struct {
	kind   actionKind
	policy metav1.DeletionPropagation
	// refs is the new ownerReferences list for actPatchRefs.
	refs []metav1.OwnerReference
}

// decide chooses what to do with an object whose owners are classified in
// states (by owner UID), following kube's garbage collector:
//   - no owners: nothing;
//   - a solid owner remains: keep the object, but drop dangling references
//     and unblock owners waiting on it;
//   - only waiting (and dangling) owners, and the object has dependents of
//     its own: delete it in the foreground so that its own blocking
//     dependents go first (unless one of them already waits on it in the
//     foreground, a cycle: then only unblock);
//   - otherwise: delete it, with the policy its own finalizers ask for
//     (orphan, foreground) or in the background.
func decide(refs []metav1.OwnerReference, states map[types.UID]ownerState, finalizers []string, hasDependents, dependentDeletingDependents bool) action {
	if len(refs) == 0 {
		return action{}
	}
	var solid, dangling, waiting int
	for _, r := range refs {
		switch states[r.UID] {
		case ownerSolid:
			solid++
		case ownerDangling:
			dangling++
		case ownerWaiting:
			waiting++
		}
	}
	unblocked := func() []metav1.OwnerReference {
		var out []metav1.OwnerReference
		for _, r := range refs {
			switch states[r.UID] {
			case ownerDangling:
				continue
			case ownerWaiting:
				r.BlockOwnerDeletion = new(false)
			}
			out = append(out, r)
		}
		return out
	}
	switch {
	case solid > 0:
		if dangling == 0 && waiting == 0 {
			return action{}
		}
		return action{kind: actPatchRefs, refs: unblocked()}
	case waiting > 0 && hasDependents:
		if dependentDeletingDependents {
			return action{kind: actPatchRefs, refs: unblocked()}
		}
		return action{kind: actDelete, policy: metav1.DeletePropagationForeground}
	}
	policy := metav1.DeletePropagationBackground
	for _, f := range finalizers {
		switch f {
		case metav1.FinalizerOrphanDependents:
			policy = metav1.DeletePropagationOrphan
		case metav1.FinalizerDeleteDependents:
			policy = metav1.DeletePropagationForeground
		}
	}
	return action{kind: actDelete, policy: policy}
}
