package apiserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/storage"
)

var listOptionsGK = schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}

// getObject reads the object a request names.
func (s *Server) getObject(req *request) (runtime.Object, error) {
	kv, err := s.store.Get(req.ctx, req.r.key(req.namespace, req.name))
	if err != nil {
		return nil, storageError(err, req.gr(), req.name)
	}
	obj, err := decodeKV(req.r, kv)
	if err != nil {
		return nil, internalError(err)
	}
	return obj, nil
}

func (s *Server) get(req *request) error {
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	kv, err := s.store.Get(req.ctx, req.r.key(req.namespace, req.name))
	if err != nil {
		return storageError(err, req.gr(), req.name)
	}
	if accept == acceptObject && req.r.FromStorage == nil {
		if data := enc.fromStored(kv.Value, kv.ModRevision); data != nil {
			req.c.Header("Content-Type", enc.contentType())
			req.c.Status(http.StatusOK)
			_, _ = req.c.Writer.Write(data)
			return nil
		}
	}
	obj, err := decodeKV(req.r, kv)
	if err != nil {
		return internalError(err)
	}
	return s.respondObject(req, http.StatusOK, obj, accept, enc)
}

// respondObject writes one object as the client asked: the object (in
// JSON or protobuf), a Table or PartialObjectMetadata.
func (s *Server) respondObject(req *request, code int, obj runtime.Object, accept acceptKind, enc wire) error {
	switch accept {
	case acceptTable:
		t, err := s.table(req, obj)
		if err != nil {
			return err
		}
		writeJSON(req.c, code, t)
	case acceptPartialMetadata:
		writeJSON(req.c, code, partialMetadata(obj))
	case acceptPartialMetadataList, acceptDiscoveryAggregated:
		return notAcceptable()
	default:
		if enc == wireProto {
			data, err := encodeProto(obj)
			if err != nil {
				return internalError(err)
			}
			req.c.Header("Content-Type", protobufType)
			req.c.Status(code)
			_, _ = req.c.Writer.Write(data)
			return nil
		}
		writeJSON(req.c, code, obj)
	}
	return nil
}

// partialMetadata returns obj's whole ObjectMeta as a
// PartialObjectMetadata, as kube-apiserver's metadata-only responses do:
// the garbage collector and the namespace controller read owner
// references, finalizers and the deletion timestamp from them.
func partialMetadata(obj runtime.Object) *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{}
	var om *metav1.ObjectMeta
	if oma, ok := obj.(metav1.ObjectMetaAccessor); ok {
		om, _ = oma.GetObjectMeta().(*metav1.ObjectMeta)
	}
	if om != nil {
		p.ObjectMeta = *om
	} else {
		m := accessor(obj)
		p.ObjectMeta = metav1.ObjectMeta{Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(),
			UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(),
			CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
			DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(), Labels: m.GetLabels(), Annotations: m.GetAnnotations(),
			OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(), ManagedFields: m.GetManagedFields()}
	}
	p.APIVersion, p.Kind = "meta.k8s.io/v1", "PartialObjectMetadata"
	return p
}

// table converts obj (an object or list) to a Table, keeping of each row's
// object what includeObject asks for.
func (s *Server) table(req *request, obj runtime.Object) (*metav1.Table, error) {
	include := metav1.IncludeObjectPolicy(req.c.Query("includeObject"))
	switch include {
	case "":
		include = metav1.IncludeMetadata
	case metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
	default:
		return nil, badRequest("includeObject must be one of None, Metadata, Object")
	}
	opts := &metav1.TableOptions{NoHeaders: req.c.Query("noHeaders") == "true", IncludeObject: include}
	t, err := req.r.Strategy.ConvertToTable(req.ctx, obj, opts)
	if err != nil {
		return nil, internalError(fmt.Errorf("convert to table: %w", err))
	}
	for i := range t.Rows {
		o := t.Rows[i].Object.Object
		if o == nil {
			continue
		}
		switch include {
		case metav1.IncludeNone:
			t.Rows[i].Object = runtime.RawExtension{}
		case metav1.IncludeMetadata:
			t.Rows[i].Object = runtime.RawExtension{Object: partialMetadata(o)}
		}
	}
	if l, err := meta.ListAccessor(obj); err == nil {
		t.ResourceVersion = l.GetResourceVersion()
		t.Continue = l.GetContinue()
		t.RemainingItemCount = l.GetRemainingItemCount()
	} else if m, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
	if opts.NoHeaders {
		t.ColumnDefinitions = nil
	}
	t.APIVersion, t.Kind = "meta.k8s.io/v1", "Table"
	return t, nil
}

// selector is a request's label and field selector.
type selector struct {
	labels labels.Selector
	fields fields.Selector
}

func (sel selector) empty() bool { return sel.labels.Empty() && sel.fields.Empty() }

func (sel selector) matches(r *resource, obj runtime.Object) bool {
	if sel.empty() {
		return true
	}
	if !sel.labels.Empty() && !sel.labels.Matches(labels.Set(accessor(obj).GetLabels())) {
		return false
	}
	if !sel.fields.Empty() && !sel.fields.Matches(r.Strategy.SelectableFields(obj)) {
		return false
	}
	return true
}

// parseSelector reads labelSelector and fieldSelector; a field the
// resource cannot select on is 400, as kube-apiserver answers.
func parseSelector(req *request) (selector, error) {
	ls, err := labels.Parse(req.c.Query("labelSelector"))
	if err != nil {
		return selector{}, badRequest("unable to parse requirement: %v", err)
	}
	fs, err := fields.ParseSelector(req.c.Query("fieldSelector"))
	if err != nil {
		return selector{}, badRequest("invalid field selector: %v", err)
	}
	for _, rq := range fs.Requirements() {
		if _, ok := req.r.selectable[rq.Field]; !ok {
			return selector{}, badRequest("field label not supported: %s", rq.Field)
		}
	}
	return selector{labels: ls, fields: fs}, nil
}

type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(key, prefix string, rev int64) string {
	t := continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rev, StartKey: strings.TrimPrefix(key, prefix)}
	data, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(data)
}

func decodeContinue(token, prefix string) (string, int64, error) {
	bad := func(why string) error {
		return badRequest("continue key is not valid: %s", why)
	}
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", 0, bad(err.Error())
	}
	var t continueToken
	if err := json.Unmarshal(data, &t); err != nil {
		return "", 0, bad(err.Error())
	}
	if t.APIVersion != "meta.k8s.io/v1" {
		return "", 0, bad("server does not recognize this encoded version")
	}
	if t.ResourceVersion == 0 {
		return "", 0, bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if t.StartKey == "" {
		return "", 0, bad("encoded start key empty (version meta.k8s.io/v1)")
	}
	key := t.StartKey
	if !strings.HasPrefix(key, "/") {
		key = "/" + key
	}
	if path.Clean(key) != key {
		return "", 0, bad(t.StartKey)
	}
	return prefix + key[1:], t.ResourceVersion, nil
}

// listParams are a list's options after validation.
type listParams struct {
	sel       selector
	limit     int64
	startKey  string
	readRev   int64
	minRev    int64
	continued bool
}

func parseListParams(req *request) (listParams, error) {
	var p listParams
	var err error
	if p.sel, err = parseSelector(req); err != nil {
		return p, err
	}
	q := req.c.Query
	if l := q("limit"); l != "" {
		if p.limit, err = strconv.ParseInt(l, 10, 64); err != nil || p.limit < 0 {
			return p, badRequest("invalid limit %q", l)
		}
	}
	rvs, match, cont := q("resourceVersion"), metav1.ResourceVersionMatch(q("resourceVersionMatch")), q("continue")
	var errs field.ErrorList
	if match != "" {
		if rvs == "" {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden unless resourceVersion is provided"))
		}
		if cont != "" {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden when continue is provided"))
		}
		switch match {
		case metav1.ResourceVersionMatchExact:
			if rvs == "0" {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
			}
		case metav1.ResourceVersionMatchNotOlderThan:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("resourceVersionMatch"), match, []string{string(metav1.ResourceVersionMatchExact), string(metav1.ResourceVersionMatchNotOlderThan)}))
		}
	}
	if len(errs) > 0 {
		return p, apierrors.NewInvalid(listOptionsGK, "", errs)
	}
	rv, err := parseRV(rvs)
	if err != nil {
		return p, err
	}
	if cont != "" {
		if rvs != "" && rvs != "0" {
			return p, badRequest("specifying resource version is not allowed when using continue")
		}
		p.startKey, p.readRev, err = decodeContinue(cont, req.r.listPrefix(req.namespace))
		if err != nil {
			return p, err
		}
		if p.readRev < 0 {
			p.readRev = 0
		}
		p.continued = true
		return p, nil
	}
	if rv > 0 {
		switch {
		case match == metav1.ResourceVersionMatchExact, match == "" && p.limit > 0:
			p.readRev = rv
		default:
			p.minRev = rv
		}
	}
	return p, nil
}

// listObjects reads the objects a list selects, one page when limited.
func (s *Server) listObjects(req *request, p listParams) ([]runtime.Object, metav1.ListMeta, error) {
	var objs []runtime.Object
	lm, err := s.scanList(req, p, true, func(_ storage.KeyValue, obj runtime.Object) error {
		objs = append(objs, obj)
		return nil
	})
	return objs, lm, err
}

// listBatch is how many keys a list reads from etcd at a time, so that a
// large list never holds more than one batch of raw values.
const listBatch = 500

// scanList visits, in key order, the objects a list selects (at most
// p.limit, then a continue token). The visitor gets the decoded object
// when decode asks for it or a selector needed it, else nil (it then uses
// the stored bytes). A selector that sparseSelectable allows reads only
// what it needs.
func (s *Server) scanList(req *request, p listParams, decode bool, visit func(kv storage.KeyValue, obj runtime.Object) error) (metav1.ListMeta, error) {
	r := req.r
	prefix := r.listPrefix(req.namespace)
	filtered := !p.sel.empty()
	var lm metav1.ListMeta
	rev := p.readRev
	start := p.startKey
	var n int64
	for {
		batch := int64(listBatch)
		if !filtered && p.limit > 0 && p.limit-n < batch {
			batch = p.limit - n
		}
		page, err := s.store.List(req.ctx, prefix, storage.ListOptions{Revision: rev, StartKey: start, Limit: batch})
		if err != nil {
			return lm, listError(err, p, prefix)
		}
		rev = page.Revision
		if p.minRev > 0 && rev < p.minRev {
			return lm, tooLargeRV(p.minRev, rev)
		}
		sparse := !decode && filtered && sparseSelectable(r, p.sel)
		for i, kv := range page.Items {
			var obj runtime.Object
			matched := false
			if sparse {
				// Read just what the selector needs (selectsparse.go).
				match, ok := sparseMatches(r, p.sel, kv.Value)
				if ok && !match {
					continue
				}
				matched = ok
			}
			if !matched && (decode || filtered) {
				if obj, err = decodeKV(r, kv); err != nil {
					return lm, internalError(err)
				}
				if !p.sel.matches(r, obj) {
					continue
				}
			}
			if err := visit(kv, obj); err != nil {
				return lm, err
			}
			n++
			if p.limit > 0 && n == p.limit {
				if i < len(page.Items)-1 || page.More {
					lm.Continue = encodeContinue(kv.Key+"\x00", prefix, rev)
					if !filtered {
						rem := page.Remaining + int64(len(page.Items)-1-i)
						lm.RemainingItemCount = &rem
					}
				}
				lm.ResourceVersion = strconv.FormatInt(rev, 10)
				return lm, nil
			}
		}
		if !page.More || len(page.Items) == 0 {
			break
		}
		start = page.Items[len(page.Items)-1].Key + "\x00"
	}
	lm.ResourceVersion = strconv.FormatInt(rev, 10)
	return lm, nil
}

func tooLargeRV(want, have int64) error {
	err := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", want, have), 1)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
	return err
}

func listError(err error, p listParams, prefix string) error {
	switch {
	case errors.Is(err, storage.ErrCompacted) && p.continued:
		st := apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. " +
			"You can start a new list without the continue parameter, or use the continue token in this response to retrieve " +
			"the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that " +
			"were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
		st.ErrStatus.ListMeta.Continue = encodeContinue(p.startKey, prefix, -1)
		return st
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
	case errors.Is(err, storage.ErrFutureRevision):
		return tooLargeRV(p.readRev, 0)
	}
	return internalError(err)
}

func (s *Server) list(req *request) error {
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	p, err := parseListParams(req)
	if err != nil {
		return err
	}
	if accept == acceptObject && enc == wireProto {
		return s.protoList(req, p)
	}
	if accept == acceptObject {
		return s.streamList(req, p)
	}
	objs, lm, err := s.listObjects(req, p)
	if err != nil {
		return err
	}
	if accept == acceptPartialMetadataList {
		pl := &metav1.PartialObjectMetadataList{ListMeta: lm, Items: make([]metav1.PartialObjectMetadata, len(objs))}
		for i, o := range objs {
			pl.Items[i] = *partialMetadata(o)
		}
		pl.APIVersion, pl.Kind = "meta.k8s.io/v1", "PartialObjectMetadataList"
		writeJSON(req.c, http.StatusOK, pl)
		return nil
	}
	list := s.newList(req.r, objs, lm)
	switch accept {
	case acceptTable:
		t, err := s.table(req, list)
		if err != nil {
			return err
		}
		writeJSON(req.c, http.StatusOK, t)
	case acceptObject:
		writeJSON(req.c, http.StatusOK, list)
	default:
		return notAcceptable()
	}
	return nil
}

func (s *Server) newList(r *resource, objs []runtime.Object, lm metav1.ListMeta) runtime.Object {
	list := r.NewList()
	for _, o := range objs {
		// Items carry no kind, as kube-apiserver's lists.
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	if err := meta.SetList(list, objs); err != nil {
		panic(fmt.Sprintf("set list items of %T: %v", list, err))
	}
	la, _ := meta.ListAccessor(list)
	la.SetResourceVersion(lm.ResourceVersion)
	la.SetContinue(lm.Continue)
	la.SetRemainingItemCount(lm.RemainingItemCount)
	list.GetObjectKind().SetGroupVersionKind(r.GroupVersion.WithKind(r.Kind + "List"))
	return list
}

// streamList writes a JSON list as it reads it, a batch at a time, so
// that a list of 10,000 objects does not hold them all decoded. The list's
// metadata comes after the items: it is known only at the end.
func (s *Server) streamList(req *request, p listParams) error {
	r := req.r
	raw := r.FromStorage == nil
	w := req.c.Writer
	started := false
	begin := func() {
		if started {
			return
		}
		started = true
		req.c.Header("Content-Type", "application/json")
		req.c.Status(http.StatusOK)
		_, _ = w.WriteString(`{"kind":"` + r.Kind + `List","apiVersion":"` + r.GroupVersion.String() + `","items":[`)
	}
	n := 0
	lm, err := s.scanList(req, p, !raw, func(kv storage.KeyValue, obj runtime.Object) error {
		var data []byte
		if raw {
			data = wireJSON.fromStored(kv.Value, kv.ModRevision)
		}
		if data == nil {
			var err error
			if obj == nil {
				if obj, err = decodeKV(r, kv); err != nil {
					return internalError(err)
				}
			}
			if data, err = json.Marshal(obj); err != nil {
				return internalError(err)
			}
		}
		begin()
		if n > 0 {
			_, _ = w.WriteString(",")
		}
		n++
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		if !started {
			return err
		}
		// Half a list was sent: break the response so the client sees a
		// failure, not a short list.
		panic(http.ErrAbortHandler)
	}
	begin()
	md, err := json.Marshal(lm)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_, _ = w.WriteString(`],"metadata":`)
	_, _ = w.Write(md)
	_, _ = w.WriteString("}\n")
	return nil
}

// protoListBuffer is how much of a protobuf list is held to send it in
// one piece. The list's envelope starts with its length, so a longer list
// is read twice at its revision: once to count its size, once to send it,
// an item at a time. A list of 10,000 pods (19 MB) then never sits whole
// in memory, as a streamed JSON list does not.
var protoListBuffer = 4 << 20

// protoList writes a protobuf list. Items are stored bytes with their
// resourceVersion put in when there is no conversion.
func (s *Server) protoList(req *request, p listParams) error {
	r := req.r
	raw := r.FromStorage == nil
	item := func(kv storage.KeyValue, obj runtime.Object) ([]byte, error) {
		if raw {
			if it := protoRawWithResourceVersion(protoRaw(kv.Value), kv.ModRevision); it != nil {
				return it, nil
			}
		}
		var err error
		if obj == nil {
			if obj, err = decodeKV(r, kv); err != nil {
				return nil, internalError(err)
			}
		}
		m, ok := obj.(interface{ Marshal() ([]byte, error) })
		if !ok {
			return nil, internalError(fmt.Errorf("%T has no protobuf encoding", obj))
		}
		it, err := m.Marshal()
		if err != nil {
			return nil, internalError(err)
		}
		return it, nil
	}
	l := protoListWriter{apiVersion: r.GroupVersion.String(), kind: r.Kind + "List"}
	counting := false
	lm, err := s.scanList(req, p, !raw, func(kv storage.KeyValue, obj runtime.Object) error {
		if counting && raw {
			// Only the size counts now: no need to build the item.
			if n, ok := protoRawSizeWithResourceVersion(protoRaw(kv.Value), kv.ModRevision); ok {
				l.count(n)
				return nil
			}
		}
		it, err := item(kv, obj)
		if err != nil {
			return err
		}
		if counting {
			l.count(len(it))
			return nil
		}
		l.add(it)
		if l.size > protoListBuffer {
			counting, l.items = true, nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	w := req.c.Writer
	if !counting {
		data, err := l.bytes(&lm)
		if err != nil {
			return internalError(err)
		}
		req.c.Header("Content-Type", protobufType)
		req.c.Status(http.StatusOK)
		_, _ = w.Write(data)
		return nil
	}
	head, err := l.header(&lm)
	if err != nil {
		return internalError(err)
	}
	// The second pass reads the same revision, so it selects the same
	// items, the same limit and continue token included.
	again := p
	again.minRev = 0
	if again.readRev, err = strconv.ParseInt(lm.ResourceVersion, 10, 64); err != nil {
		return internalError(err)
	}
	req.c.Header("Content-Type", protobufType)
	req.c.Status(http.StatusOK)
	_, _ = w.Write(head)
	sent := 0
	var buf []byte
	_, err = s.scanList(req, again, !raw, func(kv storage.KeyValue, obj runtime.Object) error {
		it, err := item(kv, obj)
		if err != nil {
			return err
		}
		buf = appendItem(buf[:0], it)
		sent += len(buf)
		_, err = w.Write(buf)
		return err
	})
	if err != nil || sent != l.size {
		// Part of the list was sent: break the response so the client
		// sees a failure, not a short or corrupt list.
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(protoListTrailer)
	return nil
}

var metadataKey = []byte(`"metadata":{`)

// withResourceVersion returns stored JSON with metadata.resourceVersion
// set to rev, or nil when the data is not in the form encodeForStorage
// writes. The first "metadata":{ in stored JSON is the object's own: the
// keys before it are kind and apiVersion, and a quote inside a string
// value is escaped.
func withResourceVersion(data []byte, rev int64) []byte {
	i := bytes.Index(data, metadataKey)
	if i < 0 {
		return nil
	}
	i += len(metadataKey)
	if i >= len(data) {
		return nil
	}
	out := make([]byte, 0, len(data)+40)
	out = append(out, data[:i]...)
	out = append(out, `"resourceVersion":"`...)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, '"')
	if data[i] != '}' {
		out = append(out, ',')
	}
	out = append(out, data[i:]...)
	return out
}
