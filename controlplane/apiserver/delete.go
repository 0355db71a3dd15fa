package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// immortalNamespaces may not be deleted (kube's NamespaceLifecycle).
var immortalNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func (s *Server) deleteOptions(req *request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if req.c.Request.ContentLength != 0 {
		data, err := readBody(req.c)
		if err != nil {
			return nil, err
		}
		if len(data) > 0 && mediaType(req.c) == protobufType {
			want := req.r.GroupVersion.WithKind("DeleteOptions")
			if _, _, err := s.proto.Decode(data, &want, opts); err != nil {
				return nil, badRequest("DeleteOptions cannot be decoded: %v", err)
			}
			data = nil
		}
		if len(data) > 0 {
			switch mediaType(req.c) {
			case "", "application/json", "*/*":
			case "application/yaml":
				js, _, err := yamlToJSON(data)
				if err != nil {
					return nil, err
				}
				data = js
			default:
				return nil, unsupportedMediaType(req.c.GetHeader("Content-Type"))
			}
			if err := json.Unmarshal(data, opts); err != nil {
				return nil, badRequest("DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: %v", err)
			}
		}
	}
	q := req.c.Query
	if v := q("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badRequest("invalid gracePeriodSeconds %q", v)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q("orphanDependents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("invalid orphanDependents %q", v)
		}
		opts.OrphanDependents = &b //nolint:staticcheck // still part of the API
	}
	dry, err := dryRun(req.c)
	if err != nil {
		return nil, err
	}
	if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, d := range opts.DryRun {
		if d != metav1.DryRunAll {
			return nil, badRequest("dryRun may only be set to All, got %s", d)
		}
	}
	var errs field.ErrorList
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil { //nolint:staticcheck
		errs = append(errs, field.Invalid(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set"))
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("propagationPolicy"), *p, []string{"Foreground", "Background", "Orphan", "nil"}))
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(metaGK("DeleteOptions"), "", errs)
	}
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		one := int64(1)
		opts.GracePeriodSeconds = &one
	}
	return opts, nil
}

func (s *Server) delete(req *request) error {
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	opts, err := s.deleteOptions(req)
	if err != nil {
		return err
	}
	out, deleted, err := s.deleteObject(req, opts)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if !deleted && opts.OrphanDependents != nil && !*opts.OrphanDependents { //nolint:staticcheck
		code = http.StatusAccepted
	}
	if deleted && !req.r.returnDeleted {
		m := accessor(out)
		writeJSON(req.c, code, &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusSuccess,
			Details:  &metav1.StatusDetails{Name: m.GetName(), Group: req.r.GroupVersion.Group, Kind: req.r.Name, UID: m.GetUID()},
		})
		return nil
	}
	return s.respondObject(req, code, out, accept, enc)
}

// preconditionsHold checks DeleteOptions.Preconditions against obj.
func preconditionsHold(r *resource, obj runtime.Object, opts *metav1.DeleteOptions) error {
	p := opts.Preconditions
	if p == nil {
		return nil
	}
	m := accessor(obj)
	if p.UID != nil && *p.UID != m.GetUID() {
		return apierrors.NewConflict(r.gr(), m.GetName(), fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
		return apierrors.NewConflict(r.gr(), m.GetName(), fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
	}
	return nil
}

// deleteObject deletes the object a request names, as kube-apiserver's
// generic store does: graceful deletion first marks the object,
// finalizers (including those the propagation policy adds) keep it with a
// deletionTimestamp, and otherwise it is removed. It returns the object
// and whether it is gone.
func (s *Server) deleteObject(req *request, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	r := req.r
	dry := len(opts.DryRun) > 0
	if r.Name == "namespaces" && r.GroupVersion.Group == "" && immortalNamespaces[req.name] {
		return nil, false, apierrors.NewForbidden(r.gr(), req.name, errors.New("this namespace may not be deleted"))
	}
	key := r.key(req.namespace, req.name)
	for attempt := 0; attempt < maxRetries; attempt++ {
		kv, err := s.store.Get(req.ctx, key)
		if err != nil {
			return nil, false, storageError(err, r.gr(), req.name)
		}
		obj, err := decodeKV(r, kv)
		if err != nil {
			return nil, false, internalError(err)
		}
		if err := preconditionsHold(r, obj, opts); err != nil {
			return nil, false, err
		}
		if ns, ok := obj.(*corev1.Namespace); ok {
			if ns.DeletionTimestamp == nil {
				out, err := s.markNamespaceTerminating(req, kv, ns, opts, dry)
				if errors.Is(err, errRetry) {
					continue
				}
				return out, false, err
			}
			if len(ns.Spec.Finalizers) != 0 {
				return ns, false, nil
			}
		}
		m := accessor(obj)
		graceful, pending := s.beforeDelete(r, obj, opts)
		if pending {
			return obj, false, nil
		}
		changed, finalizers := deletionFinalizers(m, opts)
		if changed {
			m.SetFinalizers(finalizers)
		}
		switch {
		case graceful:
			// beforeDelete set the deletion timestamp and grace period.
		case len(m.GetFinalizers()) > 0:
			markAsDeleting(m, time.Now())
		default:
			out, err := s.deleteNow(req, obj, kv.ModRevision, dry)
			if errors.Is(err, errRetry) {
				continue
			}
			return out, err == nil, err
		}
		data, err := encodeForStorage(r, obj)
		if err != nil {
			return nil, false, internalError(err)
		}
		if dry {
			return obj, false, nil
		}
		rev, err := s.store.Update(req.ctx, key, data, kv.ModRevision, nil)
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, storageError(err, r.gr(), req.name)
		}
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
		return obj, false, nil
	}
	return nil, false, conflictModified(r.gr(), req.name)
}

// beforeDelete applies the graceful deletion rules (rest.BeforeDelete):
// graceful reports that the object was marked for deletion after a grace
// period (it is then updated, not removed), pending that a graceful
// deletion is already under way and the request changes nothing.
func (s *Server) beforeDelete(r *resource, obj runtime.Object, opts *metav1.DeleteOptions) (graceful, pending bool) {
	gd, ok := r.Strategy.(registry.GracefulDeleter)
	if !ok {
		return false, false
	}
	m := accessor(obj)
	if m.GetDeletionTimestamp() != nil {
		cur := m.GetDeletionGracePeriodSeconds()
		if cur == nil || *cur == 0 {
			return false, false
		}
		if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds >= *cur {
			return false, true
		}
		period := *opts.GracePeriodSeconds
		ts := metav1.NewTime(m.GetDeletionTimestamp().Add(-time.Duration(*cur) * time.Second).Add(time.Duration(period) * time.Second))
		if now := metav1.Now(); ts.Before(&now) {
			ts = now
			if period != 0 {
				period = 1
			}
		}
		if period == 0 {
			return false, false
		}
		m.SetDeletionTimestamp(&ts)
		m.SetDeletionGracePeriodSeconds(&period)
		return true, false
	}
	period, isGraceful := gd.GracePeriod(obj, opts.GracePeriodSeconds)
	if !isGraceful || period <= 0 {
		return false, false
	}
	ts := metav1.NewTime(time.Now().Add(time.Duration(period) * time.Second))
	m.SetDeletionTimestamp(&ts)
	m.SetDeletionGracePeriodSeconds(&period)
	if m.GetGeneration() > 0 {
		m.SetGeneration(m.GetGeneration() + 1)
	}
	return true, false
}

// deletionFinalizers adds or removes the orphan and foregroundDeletion
// finalizers the propagation policy asks for.
func deletionFinalizers(m metav1.Object, opts *metav1.DeleteOptions) (bool, []string) {
	cur := m.GetFinalizers()
	orphan, foreground := false, false
	switch {
	case opts.OrphanDependents != nil: //nolint:staticcheck
		orphan = *opts.OrphanDependents //nolint:staticcheck
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	default:
		for _, f := range cur {
			if f == metav1.FinalizerOrphanDependents {
				orphan = true
				break
			}
			if f == metav1.FinalizerDeleteDependents {
				foreground = true
				break
			}
		}
	}
	var out []string
	for _, f := range cur {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	a, b := slices.Clone(cur), slices.Clone(out)
	slices.Sort(a)
	slices.Sort(b)
	if slices.Equal(slices.Compact(a), slices.Compact(b)) {
		return false, cur
	}
	return true, out
}

// markAsDeleting sets the deletion timestamp (and a zero grace period) of
// an object whose finalizers keep it.
func markAsDeleting(m metav1.Object, now time.Time) {
	if m.GetDeletionTimestamp() == nil && m.GetGeneration() > 0 {
		m.SetGeneration(m.GetGeneration() + 1)
	}
	if ts := m.GetDeletionTimestamp(); ts == nil || ts.After(now) {
		t := metav1.NewTime(now)
		m.SetDeletionTimestamp(&t)
	}
	var zero int64
	m.SetDeletionGracePeriodSeconds(&zero)
}

// deleteCollection deletes every object a list would return.
func (s *Server) deleteCollection(req *request) error {
	opts, err := s.deleteOptions(req)
	if err != nil {
		return err
	}
	p, err := parseListParams(req)
	if err != nil {
		return err
	}
	p.limit = 0
	objs, lm, err := s.listObjects(req, p)
	if err != nil {
		return err
	}
	var deleted []runtime.Object
	for _, o := range objs {
		m := accessor(o)
		sub := *req
		sub.name = m.GetName()
		sub.namespace = m.GetNamespace()
		out, _, err := s.deleteObject(&sub, opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		deleted = append(deleted, out)
	}
	writeJSON(req.c, http.StatusOK, s.newList(req.r, deleted, metav1.ListMeta{ResourceVersion: lm.ResourceVersion}))
	return nil
}
