package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-project/skiff/controlplane/controllers/resources"
)

// client returns the dynamic client for id's resource, namespaced as the
// resource is. Reads go through the dynamic client rather than the
// metadata one: the full object is the authority on ownerReferences.
func (c *Controller) client(id identity) (dynamic.ResourceInterface, resources.Resource, error) {
	r, err := c.resourceFor(id.APIVersion, id.Kind)
	if err != nil {
		return nil, r, err
	}
	if r.Namespaced {
		return c.dyn.Resource(r.GVR).Namespace(id.Namespace), r, nil
	}
	return c.dyn.Resource(r.GVR), r, nil
}

var errGone = errors.New("object is gone")

// getLive reads id from the API server; errGone when it is absent or has
// another UID.
func (c *Controller) getLive(ctx context.Context, id identity) (*metav1.PartialObjectMetadata, error) {
	cl, _, err := c.client(id)
	if err != nil {
		return nil, err
	}
	u, err := cl.Get(ctx, id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	p, _ := toPartial(u)
	obj := p.(*metav1.PartialObjectMetadata)
	if obj.UID != id.UID {
		return nil, errGone
	}
	return obj, nil
}

// ownerState classifies one owner reference of a dependent in namespace ns.
func (c *Controller) ownerState(ctx context.Context, ns string, ref metav1.OwnerReference) (ownerState, error) {
	if c.absent.has(ref.UID) {
		return ownerDangling, nil
	}
	r, err := c.resourceFor(ref.APIVersion, ref.Kind)
	if err != nil {
		return ownerSolid, err
	}
	id := identity{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID}
	if r.Namespaced {
		id.Namespace = ns
	}
	owner, err := c.getLive(ctx, id)
	if errors.Is(err, errGone) {
		c.absent.add(ref.UID)
		return ownerDangling, nil
	}
	if err != nil {
		return ownerSolid, err
	}
	if owner.DeletionTimestamp != nil && hasFinalizer(owner, metav1.FinalizerDeleteDependents) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

func (c *Controller) processAttemptToDelete(ctx context.Context) bool {
	n, quit := c.toDelete.Get()
	if quit {
		return false
	}
	defer c.toDelete.Done(n)
	if err := c.attemptToDelete(ctx, n); err != nil {
		c.log.Debug("attempt to delete failed, requeued", "kind", n.id.Kind, "namespace", n.id.Namespace, "name", n.id.Name, "err", err)
		c.toDelete.AddRateLimited(n)
		return true
	}
	c.toDelete.Forget(n)
	return true
}

func (c *Controller) virtualDelete(id identity) {
	c.changes.Add(&event{typ: deleteEvent, virtual: true, id: id})
}

func (c *Controller) attemptToDelete(ctx context.Context, n *node) error {
	snap := c.graph.snapshot(n)
	if c.graph.get(snap.id.UID) != n {
		return nil // removed from the graph meanwhile
	}
	latest, err := c.getLive(ctx, snap.id)
	if errors.Is(err, errGone) {
		// Absent: the graph must forget it and wake its dependents.
		c.virtualDelete(snap.id)
		return nil
	}
	if errors.Is(err, resources.ErrUnknownKind) {
		// An owner of a kind not served: it cannot be checked, so its
		// dependents are left alone.
		return nil
	}
	if err != nil {
		return err
	}
	if snap.virtual {
		// It exists; its monitor (if any) will add it.
		return nil
	}
	if snap.deletingDependents {
		return c.processDeletingDependents(ctx, snap, latest)
	}
	if latest.DeletionTimestamp != nil {
		return nil
	}
	refs := latest.OwnerReferences
	if len(refs) == 0 {
		return nil
	}
	states := make(map[types.UID]ownerState, len(refs))
	for _, r := range refs {
		s, err := c.ownerState(ctx, latest.Namespace, r)
		if err != nil {
			if errors.Is(err, resources.ErrUnknownKind) {
				states[r.UID] = ownerSolid
				continue
			}
			return err
		}
		states[r.UID] = s
	}
	depDeleting := false
	for _, d := range snap.blocking {
		if d.deletingDependents {
			depDeleting = true
		}
	}
	act := decide(refs, states, latest.Finalizers, len(snap.dependents) > 0, depDeleting)
	switch act.kind {
	case actPatchRefs:
		return c.patchOwnerRefs(ctx, snap.id, latest, act.refs)
	case actDelete:
		return c.deleteObject(ctx, snap.id, act.policy)
	}
	return nil
}

// processDeletingDependents handles an owner deleted in the foreground:
// its blocking dependents are deleted; once none is left the
// foregroundDeletion finalizer goes.
func (c *Controller) processDeletingDependents(ctx context.Context, snap snapshot, latest *metav1.PartialObjectMetadata) error {
	if !hasFinalizer(latest, metav1.FinalizerDeleteDependents) {
		return nil
	}
	if len(snap.blocking) == 0 {
		return c.removeFinalizer(ctx, snap.id, metav1.FinalizerDeleteDependents)
	}
	for _, d := range snap.blocking {
		if !d.beingDeleted {
			c.toDelete.Add(d.node)
		}
	}
	return nil
}

func (c *Controller) deleteObject(ctx context.Context, id identity, policy metav1.DeletionPropagation) error {
	cl, _, err := c.client(id)
	if err != nil {
		return err
	}
	uid := id.UID
	err = cl.Delete(ctx, id.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &policy,
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or replaced by another object of the same name.
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s %s/%s: %w", id.Kind, id.Namespace, id.Name, err)
	}
	c.deletes.WithLabelValues(string(policy)).Inc()
	c.log.Debug("garbage collected", "kind", id.Kind, "namespace", id.Namespace, "name", id.Name, "policy", policy)
	return nil
}

// patchOwnerRefs replaces latest's ownerReferences with refs, guarded by
// its uid and resourceVersion.
func (c *Controller) patchOwnerRefs(ctx context.Context, id identity, latest *metav1.PartialObjectMetadata, refs []metav1.OwnerReference) error {
	cl, _, err := c.client(id)
	if err != nil {
		return err
	}
	var refsVal any = refs
	if len(refs) == 0 {
		refsVal = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": latest.UID, "resourceVersion": latest.ResourceVersion, "ownerReferences": refsVal,
	}})
	if err != nil {
		return err
	}
	_, err = cl.Patch(ctx, id.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch owner references of %s %s/%s: %w", id.Kind, id.Namespace, id.Name, err)
	}
	return nil
}

// removeFinalizer drops finalizer from the live object.
func (c *Controller) removeFinalizer(ctx context.Context, id identity, finalizer string) error {
	latest, err := c.getLive(ctx, id)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasFinalizer(latest, finalizer) {
		return nil
	}
	var rest []string
	for _, f := range latest.Finalizers {
		if f != finalizer {
			rest = append(rest, f)
		}
	}
	var val any = rest
	if len(rest) == 0 {
		val = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": latest.UID, "resourceVersion": latest.ResourceVersion, "finalizers": val,
	}})
	if err != nil {
		return err
	}
	cl, _, err := c.client(id)
	if err != nil {
		return err
	}
	_, err = cl.Patch(ctx, id.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove finalizer %s from %s %s/%s: %w", finalizer, id.Kind, id.Namespace, id.Name, err)
	}
	return nil
}

func (c *Controller) processAttemptToOrphan(ctx context.Context) bool {
	n, quit := c.toOrphan.Get()
	if quit {
		return false
	}
	defer c.toOrphan.Done(n)
	if err := c.attemptToOrphan(ctx, n); err != nil {
		c.log.Debug("attempt to orphan failed, requeued", "kind", n.id.Kind, "namespace", n.id.Namespace, "name", n.id.Name, "err", err)
		c.toOrphan.AddRateLimited(n)
		return true
	}
	c.toOrphan.Forget(n)
	return true
}

// attemptToOrphan removes the references to an owner deleted with the
// orphan finalizer from all its dependents, then the finalizer.
func (c *Controller) attemptToOrphan(ctx context.Context, owner *node) error {
	snap := c.graph.snapshot(owner)
	for _, dep := range snap.dependents {
		latest, err := c.getLive(ctx, dep)
		if errors.Is(err, errGone) {
			continue
		}
		if err != nil {
			return err
		}
		var refs []metav1.OwnerReference
		found := false
		for _, r := range latest.OwnerReferences {
			if r.UID == snap.id.UID {
				found = true
				continue
			}
			refs = append(refs, r)
		}
		if !found {
			continue
		}
		if err := c.patchOwnerRefs(ctx, dep, latest, refs); err != nil {
			return err
		}
	}
	return c.removeFinalizer(ctx, snap.id, metav1.FinalizerOrphanDependents)
}
