// Package controllerref decides which objects a controller owns and
// changes ownership through the API: a controller claims the objects its
// selector matches, adopting orphans (adding its controller ownerReference)
// and releasing objects it owns that no longer match (removing it). The rules
// follow kube-controller-manager's ControllerRefManager: an object with
// another controller is never touched, a controller being deleted neither
// adopts nor releases, and adoption is preceded by a fresh read of the owner
// so that an owner deleted meanwhile does not adopt.
package controllerref

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// PatchFunc applies a JSON merge patch to the named object in the owner's
// namespace.
type PatchFunc func(ctx context.Context, namespace, name string, patch []byte) error

// Manager claims objects of one kind for one owner.
type Manager struct {
	Owner    metav1.Object
	OwnerGVK schema.GroupVersionKind
	Selector labels.Selector
	// CanAdopt is called at most once, before the first adoption; an error
	// stops adoption (the owner is gone or being deleted).
	CanAdopt func(ctx context.Context) error
	// Patch writes a merge patch to a dependent.
	Patch PatchFunc

	once     sync.Once
	adoptErr error
}

// Claim returns the objects of objs that the owner owns after adopting
// matching orphans and releasing owned objects that no longer match. Errors
// of individual adoptions and releases are joined into the returned error;
// the returned slice is still valid.
func Claim[T metav1.Object](ctx context.Context, m *Manager, objs []T) ([]T, error) {
	var (
		claimed []T
		errs    []error
	)
	for _, obj := range objs {
		ok, err := m.claimOne(ctx, obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, obj)
		}
	}
	return claimed, joinErrors(errs)
}

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}

func (m *Manager) claimOne(ctx context.Context, obj metav1.Object) (bool, error) {
	matches := m.Selector.Matches(labels.Set(obj.GetLabels()))
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		if ref.UID != m.Owner.GetUID() {
			return false, nil // someone else's
		}
		if matches {
			return true, nil
		}
		// Ours but no longer matching: release, unless the owner is
		// going away (then the garbage collector takes care of it).
		if m.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		return false, m.release(ctx, obj)
	}
	// An orphan.
	if m.Owner.GetDeletionTimestamp() != nil || !matches {
		return false, nil
	}
	if obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if obj.GetNamespace() != m.Owner.GetNamespace() {
		return false, nil
	}
	if err := m.adopt(ctx, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (m *Manager) adopt(ctx context.Context, obj metav1.Object) error {
	m.once.Do(func() {
		if m.CanAdopt != nil {
			m.adoptErr = m.CanAdopt(ctx)
		}
	})
	if m.adoptErr != nil {
		return fmt.Errorf("can't adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), m.adoptErr)
	}
	patch, err := AdoptPatch(obj, *metav1.NewControllerRef(m.Owner, m.OwnerGVK))
	if err != nil {
		return err
	}
	if err := m.Patch(ctx, obj.GetNamespace(), obj.GetName(), patch); err != nil {
		return fmt.Errorf("adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func (m *Manager) release(ctx context.Context, obj metav1.Object) error {
	patch, err := ReleasePatch(obj, m.Owner.GetUID())
	if err != nil {
		return err
	}
	err = m.Patch(ctx, obj.GetNamespace(), obj.GetName(), patch)
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		// Gone, or replaced by an object with another UID: nothing to
		// release.
		return nil
	}
	if err != nil {
		return fmt.Errorf("release %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

type patchMeta struct {
	UID             types.UID               `json:"uid"`
	ResourceVersion string                  `json:"resourceVersion,omitempty"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
}

type patchBody struct {
	Metadata patchMeta `json:"metadata"`
}

// AdoptPatch returns a JSON merge patch that adds ref to obj's
// ownerReferences. The patch carries obj's uid and resourceVersion, so it
// fails (conflict) if obj changed since it was read: a merge patch replaces
// the whole list.
func AdoptPatch(obj metav1.Object, ref metav1.OwnerReference) ([]byte, error) {
	refs := make([]metav1.OwnerReference, 0, len(obj.GetOwnerReferences())+1)
	for _, r := range obj.GetOwnerReferences() {
		if r.UID != ref.UID {
			refs = append(refs, r)
		}
	}
	refs = append(refs, ref)
	return json.Marshal(patchBody{Metadata: patchMeta{UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), OwnerReferences: refs}})
}

// ReleasePatch returns a JSON merge patch that removes the references to
// ownerUID from obj's ownerReferences, with the same preconditions as
// AdoptPatch.
func ReleasePatch(obj metav1.Object, ownerUID types.UID) ([]byte, error) {
	refs := make([]metav1.OwnerReference, 0, len(obj.GetOwnerReferences()))
	for _, r := range obj.GetOwnerReferences() {
		if r.UID != ownerUID {
			refs = append(refs, r)
		}
	}
	return json.Marshal(patchBody{Metadata: patchMeta{UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), OwnerReferences: refs}})
}

// RecheckDeletion returns a CanAdopt func that reads the owner fresh with
// get and refuses adoption when it is gone, has another UID or is being
// deleted.
func RecheckDeletion(owner metav1.Object, get func(ctx context.Context) (metav1.Object, error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		fresh, err := get(ctx)
		if err != nil {
			return err
		}
		if fresh.GetUID() != owner.GetUID() {
			return fmt.Errorf("owner %s/%s is gone: got uid %s, want %s", owner.GetNamespace(), owner.GetName(), fresh.GetUID(), owner.GetUID())
		}
		if fresh.GetDeletionTimestamp() != nil {
			return fmt.Errorf("owner %s/%s is being deleted", owner.GetNamespace(), owner.GetName())
		}
		return nil
	}
}
