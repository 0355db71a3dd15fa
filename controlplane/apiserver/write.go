package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// maxRetries bounds the read-modify-write loops that retry on a
// concurrent change.
const maxRetries = 16

// fieldManagerName is the manager recorded in managedFields: the
// fieldManager parameter or the client's user agent up to the first "/",
// as kube-apiserver does.
func fieldManagerName(req *request) (string, error) {
	if m := req.c.Query("fieldManager"); m != "" {
		if len(m) > 128 {
			return "", apierrors.NewInvalid(metaGK("CreateOptions"), "", field.ErrorList{field.TooLong(field.NewPath("fieldManager"), "", 128)})
		}
		return m, nil
	}
	ua := req.c.Request.UserAgent()
	out := make([]rune, 0, len(ua))
	for _, r := range ua {
		if r == '/' {
			break
		}
		if r < 0x20 || r == 0x7f {
			continue
		}
		if len(string(out))+len(string(r)) > 128 {
			break
		}
		out = append(out, r)
	}
	return string(out), nil
}

func invalid(r *resource, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(r.GroupVersionKind().GroupKind(), name, errs)
}

// generateName appends five random characters to base, as kube-apiserver
// does (truncating base so the name fits 63 characters).
func generateName(base string) string {
	const maxGeneratedNameLength = 63 - 5
	if len(base) > maxGeneratedNameLength {
		base = base[:maxGeneratedNameLength]
	}
	return base + utilrand.String(5)
}

// create handles POST of a new object.
func (s *Server) create(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	directive, err := fieldValidation(req.c)
	if err != nil {
		return err
	}
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	manager, err := fieldManagerName(req)
	if err != nil {
		return err
	}
	obj := req.r.New()
	if err := s.readObject(req.c, obj, req.r.GroupVersionKind(), directive); err != nil {
		return err
	}
	out, err := s.createObject(req, obj, dry, manager, nil)
	if err != nil {
		return err
	}
	return s.respondObject(req, http.StatusCreated, out, accept, enc)
}

// checkNamespace makes obj's namespace the request's (or fails when they
// differ); cluster-scoped objects have none.
func checkNamespace(req *request, obj runtime.Object) error {
	m := accessor(obj)
	if !req.r.Namespaced {
		m.SetNamespace("")
		return nil
	}
	switch m.GetNamespace() {
	case "":
		m.SetNamespace(req.namespace)
	case req.namespace:
	default:
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

// createObject runs the create pipeline for a decoded object and stores
// it. applied is the apply patch when the object comes from server-side
// apply (its managed fields are already set).
func (s *Server) createObject(req *request, obj runtime.Object, dry bool, manager string, applied runtime.Object) (runtime.Object, error) {
	r := req.r
	if err := checkNamespace(req, obj); err != nil {
		return nil, err
	}
	m := accessor(obj)
	if m.GetResourceVersion() != "" {
		return nil, badRequest("resourceVersion should not be set on objects to be created")
	}
	if req.name != "" && m.GetName() != req.name && req.sub == "" {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), req.name)
	}
	r.Strategy.Default(obj)
	if applied == nil {
		obj = r.fieldManagers[""].UpdateNoErrors(r.New(), obj, manager)
		m = accessor(obj)
	}
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	r.Strategy.PrepareForCreate(req.ctx, obj)
	m.SetUID(types.UID(uuid.NewString()))
	m.SetCreationTimestamp(metav1.Now())
	m.SetSelfLink("")
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	if generated {
		m.SetName(generateName(m.GetGenerateName()))
	}
	if m.GetName() == "" {
		return nil, invalid(r, "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")})
	}
	if errs := r.Strategy.Validate(req.ctx, obj); len(errs) > 0 {
		return nil, invalid(r, m.GetName(), errs)
	}
	if err := validPathName(r, m.GetName()); err != nil {
		return nil, err
	}

	// A Service's allocations change obj: every retry of one starts again
	// from this copy. Other objects leave an attempt as they found it, and
	// are not copied.
	var orig runtime.Object
	if createHookMutates(obj) {
		orig = obj.DeepCopyObject()
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && orig != nil {
			obj = orig.DeepCopyObject()
		}
		m = accessor(obj)
		conds, err := s.admitNamespace(req, r, m.GetNamespace(), m.GetName(), attempt > 0, dry)
		if err != nil {
			return nil, err
		}
		hook, err := s.createHook(req, obj, dry)
		if err != nil {
			return nil, err
		}
		data, err := encodeForStorage(r, obj)
		if err != nil {
			return nil, internalError(err)
		}
		key := r.key(m.GetNamespace(), m.GetName())
		if dry {
			if _, err := s.store.Get(req.ctx, key); err == nil {
				return nil, apierrors.NewAlreadyExists(r.gr(), m.GetName())
			}
			return obj, nil
		}
		rev, err := s.store.Create(req.ctx, key, data, append(conds, hook.conds...), hook.ops...)
		switch {
		case err == nil:
			m.SetResourceVersion(fmt.Sprint(rev))
			return obj, nil
		case errors.Is(err, storage.ErrExists) && generated && attempt < 8:
			next := obj
			if orig != nil {
				next = orig
			}
			accessor(next).SetName(generateName(m.GetGenerateName()))
			continue
		case errors.Is(err, storage.ErrConflict) && attempt < maxRetries:
			// The namespace changed or an allocation raced: check again.
			continue
		}
		return nil, storageError(err, r.gr(), m.GetName())
	}
}

// validPathName rejects names that cannot be a key segment.
func validPathName(r *resource, name string) error {
	if name == "." || name == ".." {
		return invalid(r, name, field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), name, "may not be '.' or '..'")})
	}
	for _, c := range name {
		if c == '/' || c == '%' {
			return invalid(r, name, field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), name, fmt.Sprintf("may not contain '%c'", c))})
		}
	}
	return nil
}

// update handles PUT of an object or of its status or finalize
// subresource.
func (s *Server) update(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	directive, err := fieldValidation(req.c)
	if err != nil {
		return err
	}
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	manager, err := fieldManagerName(req)
	if err != nil {
		return err
	}
	obj := req.r.New()
	if err := s.readObject(req.c, obj, req.r.GroupVersionKind(), directive); err != nil {
		return err
	}
	if err := checkNamespace(req, obj); err != nil {
		return err
	}
	if n := accessor(obj).GetName(); n != req.name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", n, req.name)
	}
	out, created, err := s.updateObject(req, updateSpec{
		dry: dry, manager: manager, allowCreate: req.sub == "" && req.r.Strategy.AllowCreateOnUpdate(),
		mutate: func(runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil },
	})
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return s.respondObject(req, code, out, accept, enc)
}

// updateSpec describes a read-modify-write of one object.
type updateSpec struct {
	dry     bool
	manager string
	// mutate returns the new object from a copy of the current one (nil
	// when the object does not exist and allowCreate is set).
	mutate func(current runtime.Object) (runtime.Object, error)
	// managed is true when mutate already maintained managedFields
	// (server-side apply).
	managed     bool
	allowCreate bool
	// applyCreate, for server-side apply, builds the object to create.
	applyCreate func() (runtime.Object, error)
}

// updateObject reads the current object, applies spec.mutate and the
// update pipeline, and writes the result if it changed, retrying when the
// object changed in between and the client gave no resourceVersion.
func (s *Server) updateObject(req *request, spec updateSpec) (runtime.Object, bool, error) {
	r := req.r
	key := r.key(req.namespace, req.name)
	// The first read is serializable (cheaper: no raft read index); the
	// write compares its revision, so a stale read only costs a retry.
	// Before answering NotFound or Conflict from it, read again
	// linearizably.
	fresh := false
	for attempt := 0; ; attempt++ {
		get := s.store.GetSerializable
		if fresh {
			get = s.store.Get
		}
		kv, err := get(req.ctx, key)
		if errors.Is(err, storage.ErrNotFound) && !fresh {
			fresh = true
			continue
		}
		if errors.Is(err, storage.ErrNotFound) {
			if !spec.allowCreate {
				return nil, false, apierrors.NewNotFound(r.gr(), req.name)
			}
			var obj runtime.Object
			if spec.applyCreate != nil {
				obj, err = spec.applyCreate()
			} else {
				obj, err = spec.mutate(nil)
			}
			if err != nil {
				return nil, false, err
			}
			applied := obj
			if spec.applyCreate == nil {
				applied = nil
			}
			out, err := s.createObject(req, obj, spec.dry, spec.manager, applied)
			if apierrors.IsAlreadyExists(err) && attempt < maxRetries {
				continue
			}
			return out, err == nil, err
		}
		if err != nil {
			return nil, false, storageError(err, r.gr(), req.name)
		}
		old, err := decodeKV(r, kv)
		if err != nil {
			return nil, false, internalError(err)
		}
		obj, err := spec.mutate(old.DeepCopyObject())
		if err != nil && !fresh && (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) {
			fresh = true
			continue
		}
		if err != nil {
			return nil, false, err
		}
		m, om := accessor(obj), accessor(old)
		if rv := m.GetResourceVersion(); rv != "" && rv != om.GetResourceVersion() {
			if !fresh {
				fresh = true
				continue
			}
			return nil, false, conflictModified(r.gr(), req.name)
		}
		m.SetResourceVersion(om.GetResourceVersion())
		if err := checkNamespace(req, obj); err != nil {
			return nil, false, err
		}
		if m.GetName() != req.name {
			return nil, false, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), req.name)
		}
		if !spec.managed {
			fm := r.fieldManagers[req.sub]
			if fm == nil {
				fm = r.fieldManagers[""]
			}
			obj = fm.UpdateNoErrors(old, obj, spec.manager)
			m = accessor(obj)
		}
		if err := s.beforeUpdate(req, obj, old); err != nil {
			return nil, false, err
		}
		hook, err := s.updateHook(req, obj, old, spec.dry)
		if err != nil {
			return nil, false, err
		}
		if shouldDeleteDuringUpdate(obj, old) {
			out, err := s.deleteNow(req, old, kv.ModRevision, spec.dry)
			if errors.Is(err, errRetry) && attempt < maxRetries {
				continue
			}
			return out, false, err
		}
		data, err := encodeForStorage(r, obj)
		if err != nil {
			return nil, false, internalError(err)
		}
		if bytes.Equal(data, kv.Value) || unchangedButManagedFieldTimes(r, obj, old, kv.Value) {
			return old, false, nil
		}
		if spec.dry {
			return obj, false, nil
		}
		rev, err := s.store.Update(req.ctx, key, data, kv.ModRevision, hook.conds, hook.ops...)
		if (errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound)) && attempt < maxRetries {
			fresh = true
			continue
		}
		if err != nil {
			return nil, false, storageError(err, r.gr(), req.name)
		}
		m.SetResourceVersion(fmt.Sprint(rev))
		return obj, false, nil
	}
}

// unchangedButManagedFieldTimes reports whether obj differs from old only
// in managedFields timestamps, which must not make a write (as
// kube-apiserver's IgnoreManagedFieldsTimestampsTransformer).
func unchangedButManagedFieldTimes(r *resource, obj, old runtime.Object, oldData []byte) bool {
	m, om := accessor(obj), accessor(old)
	mf, omf := m.GetManagedFields(), om.GetManagedFields()
	if len(mf) != len(omf) {
		return false
	}
	for i := range mf {
		a, b := mf[i], omf[i]
		a.Time, b.Time = nil, nil
		if a.Manager != b.Manager || a.Operation != b.Operation || a.APIVersion != b.APIVersion ||
			a.Subresource != b.Subresource || a.FieldsType != b.FieldsType ||
			(a.FieldsV1 == nil) != (b.FieldsV1 == nil) || (a.FieldsV1 != nil && !bytes.Equal(a.FieldsV1.Raw, b.FieldsV1.Raw)) {
			return false
		}
	}
	m.SetManagedFields(omf)
	data, err := encodeForStorage(r, obj)
	if err != nil || !bytes.Equal(data, oldData) {
		m.SetManagedFields(mf)
		return false
	}
	return true
}

// beforeUpdate keeps the metadata an update may not change and runs the
// strategy for the endpoint (main resource, status, finalize).
func (s *Server) beforeUpdate(req *request, obj, old runtime.Object) error {
	r := req.r
	m, om := accessor(obj), accessor(old)
	m.SetGeneration(om.GetGeneration())
	if m.GetUID() == "" {
		m.SetUID(om.GetUID())
	}
	if ct := om.GetCreationTimestamp(); !ct.IsZero() {
		m.SetCreationTimestamp(ct)
	}
	if om.GetDeletionTimestamp() != nil {
		m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	}
	if om.GetDeletionGracePeriodSeconds() != nil && m.GetDeletionGracePeriodSeconds() == nil {
		m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	}
	if m.GetUID() != om.GetUID() {
		return apierrors.NewConflict(r.gr(), req.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", m.GetUID(), om.GetUID()))
	}
	var errs field.ErrorList
	switch req.sub {
	case "status":
		ss, ok := r.Strategy.(registry.StatusStrategy)
		if !ok {
			return notFoundPath()
		}
		r.Strategy.Default(obj)
		ss.PrepareForStatusUpdate(req.ctx, obj, old)
		errs = ss.ValidateStatusUpdate(req.ctx, obj, old)
	case "finalize":
		fs, ok := r.Strategy.(registry.FinalizeStrategy)
		if !ok {
			return notFoundPath()
		}
		r.Strategy.Default(obj)
		fs.PrepareForFinalizeUpdate(req.ctx, obj, old)
		errs = fs.ValidateFinalizeUpdate(req.ctx, obj, old)
	case "binding":
		// The binding changed only what it may; no strategy applies.
	default:
		r.Strategy.Default(obj)
		if svc, ok := obj.(*corev1.Service); ok {
			keepAllocatedValues(svc, old.(*corev1.Service))
		}
		r.Strategy.PrepareForUpdate(req.ctx, obj, old)
		errs = r.Strategy.ValidateUpdate(req.ctx, obj, old)
	}
	if len(errs) > 0 {
		return invalid(r, req.name, errs)
	}
	return nil
}

// shouldDeleteDuringUpdate: an update that removes the last finalizer of
// an object being deleted (with no grace period left) deletes it.
func shouldDeleteDuringUpdate(obj, old runtime.Object) bool {
	m, om := accessor(obj), accessor(old)
	if len(m.GetFinalizers()) > 0 || om.GetDeletionTimestamp() == nil {
		return false
	}
	if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
		return false
	}
	g := om.GetDeletionGracePeriodSeconds()
	return g == nil || *g == 0
}

var errRetry = errors.New("object changed; retry")

// deleteNow removes the object stored at rev and returns it as deleted.
func (s *Server) deleteNow(req *request, obj runtime.Object, rev int64, dry bool) (runtime.Object, error) {
	r := req.r
	m := accessor(obj)
	hook := s.deleteHook(req, obj)
	if dry {
		return obj, nil
	}
	drev, err := s.store.Delete(req.ctx, r.key(m.GetNamespace(), m.GetName()), rev, hook.conds, hook.ops...)
	switch {
	case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		return nil, errRetry
	case err != nil:
		return nil, storageError(err, r.gr(), m.GetName())
	}
	_ = drev
	return obj, nil
}

func metaGK(kind string) schema.GroupKind {
	return schema.GroupKind{Group: metav1.GroupName, Kind: kind}
}
