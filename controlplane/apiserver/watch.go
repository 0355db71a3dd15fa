package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// minWatchTimeout is kube-apiserver's --min-request-timeout: a watch
// without timeoutSeconds lasts between one and two of it.
const minWatchTimeout = 30 * time.Minute

type watchParams struct {
	sel               selector
	rv                int64
	rvSet             bool
	sendInitialEvents *bool
	bookmarks         bool
	timeout           time.Duration
}

func parseWatchParams(req *request) (watchParams, error) {
	var p watchParams
	var err error
	if req.name != "" {
		// A watch of one object is a watch of its collection filtered
		// by name.
		q := req.c.Request.URL.Query()
		fs := q.Get("fieldSelector")
		nameSel := fields.OneTermEqualSelector("metadata.name", req.name).String()
		if fs == "" {
			fs = nameSel
		} else {
			fs = fs + "," + nameSel
		}
		q.Set("fieldSelector", fs)
		req.c.Request.URL.RawQuery = q.Encode()
	}
	if p.sel, err = parseSelector(req); err != nil {
		return p, err
	}
	q := req.c.Query
	rvs := q("resourceVersion")
	if p.rv, err = parseRV(rvs); err != nil {
		return p, err
	}
	p.rvSet = rvs != "" && rvs != "0"
	if v := q("sendInitialEvents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, badRequest("invalid sendInitialEvents %q", v)
		}
		p.sendInitialEvents = &b
	}
	if v := q("allowWatchBookmarks"); v != "" {
		if p.bookmarks, err = strconv.ParseBool(v); err != nil {
			return p, badRequest("invalid allowWatchBookmarks %q", v)
		}
	}
	match := metav1.ResourceVersionMatch(q("resourceVersionMatch"))
	var errs field.ErrorList
	if p.sendInitialEvents != nil && match != metav1.ResourceVersionMatchNotOlderThan {
		errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
	}
	if match != "" {
		if p.sendInitialEvents == nil {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
		}
		if match != metav1.ResourceVersionMatchNotOlderThan {
			errs = append(errs, field.NotSupported(field.NewPath("resourceVersionMatch"), match, []string{string(metav1.ResourceVersionMatchNotOlderThan)}))
		}
	}
	if len(errs) > 0 {
		return p, apierrors.NewInvalid(listOptionsGK, "", errs)
	}
	if v := q("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, badRequest("invalid timeoutSeconds %q", v)
		}
		p.timeout = time.Duration(n) * time.Second
	}
	if p.timeout == 0 {
		p.timeout = minWatchTimeout + time.Duration(rand.Int64N(int64(minWatchTimeout)))
	}
	return p, nil
}

// watchStream writes watch events to the response: JSON objects one per
// line, or length-prefixed protobuf WatchEvents (wire.go).
type watchStream struct {
	req        *request
	s          *Server
	accept     acceptKind
	enc        wire
	sentHeader bool
	flusher    http.Flusher
}

func (w *watchStream) encodeObject(obj runtime.Object) ([]byte, error) {
	switch w.accept {
	case acceptTable:
		t, err := w.s.table(w.req, obj)
		if err != nil {
			return nil, err
		}
		if w.sentHeader {
			t.ColumnDefinitions = nil
		}
		w.sentHeader = true
		return json.Marshal(t)
	case acceptPartialMetadata, acceptPartialMetadataList:
		return json.Marshal(partialMetadata(obj))
	}
	return w.enc.encode(obj)
}

func (w *watchStream) send(typ watch.EventType, obj runtime.Object) error {
	data, err := w.encodeObject(obj)
	if err != nil {
		return err
	}
	return w.sendRaw(typ, data)
}

// sendRaw sends an event whose object is already encoded.
func (w *watchStream) sendRaw(typ watch.EventType, data []byte) error {
	if w.enc == wireProto {
		_, err := w.req.c.Writer.Write(protoWatchFrame(string(typ), data))
		return err
	}
	buf := make([]byte, 0, len(data)+32)
	buf = append(buf, `{"type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, `","object":`...)
	buf = append(buf, data...)
	buf = append(buf, "}\n"...)
	_, err := w.req.c.Writer.Write(buf)
	return err
}

// sendStored sends an event for a stored object: as stored with the
// revision spliced in when the client takes that form, else decoded
// (obj, when the caller already did) and encoded.
func (w *watchStream) sendStored(typ watch.EventType, stored bool, val []byte, rev int64, obj runtime.Object) error {
	if stored {
		if data := w.enc.fromStored(val, rev); data != nil {
			return w.sendRaw(typ, data)
		}
	}
	if obj == nil {
		var err error
		if obj, err = decodeFromStorage(w.req.r, val, rev); err != nil {
			return internalError(err)
		}
	}
	return w.send(typ, obj)
}

func (w *watchStream) flush() { w.flusher.Flush() }

// bookmark sends a BOOKMARK carrying only the resource version (and, for
// the end of initial events, the annotation that says so).
func (w *watchStream) bookmark(rev int64, initialEnd bool) error {
	obj := w.req.r.New()
	m := accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(w.req.r.GroupVersionKind())
	if w.enc == wireProto {
		data, err := encodeProto(obj)
		if err != nil {
			return err
		}
		return w.sendRaw(watch.Bookmark, data)
	}
	if w.accept == acceptPartialMetadata || w.accept == acceptPartialMetadataList {
		data, err := json.Marshal(partialMetadata(obj))
		if err != nil {
			return err
		}
		return w.sendRaw(watch.Bookmark, data)
	}
	if w.accept == acceptTable {
		data, err := json.Marshal(&metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"},
			ListMeta: metav1.ListMeta{ResourceVersion: m.GetResourceVersion()}})
		if err != nil {
			return err
		}
		return w.sendRaw(watch.Bookmark, data)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return w.sendRaw(watch.Bookmark, data)
}

func (w *watchStream) sendError(err error) {
	st := toStatus(err)
	st.Kind, st.APIVersion = "Status", "v1"
	data, err := w.enc.encode(st)
	if err != nil {
		return
	}
	_ = w.sendRaw(watch.Error, data)
	w.flush()
}

// watch serves a watch: initial events when asked (or when no
// resourceVersion was given), then every change after the start revision,
// until the timeout, the client leaving or the server stopping.
func (s *Server) watch(req *request) error {
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	p, err := parseWatchParams(req)
	if err != nil {
		return err
	}
	flusher, ok := req.c.Writer.(http.Flusher)
	if !ok {
		return internalError(errors.New("streaming unsupported"))
	}
	ctx, cancel := context.WithTimeout(req.ctx, p.timeout)
	defer cancel()
	s.cancelOnStop(ctx, cancel)
	s.metrics.watchStarted(req.r.Name)
	defer s.metrics.watchEnded(req.r.Name)

	initial := !p.rvSet
	if p.sendInitialEvents != nil {
		initial = *p.sendInitialEvents
	}
	// Without a conversion, objects are sent as stored, with their
	// revision spliced in: with a selector, after it decoded them.
	stored := req.r.FromStorage == nil && accept == acceptObject
	// The response starts with the first event, so that an error before
	// it (a too large resourceVersion) is still an HTTP error.
	c := req.c
	var w *watchStream
	begin := func() {
		if w != nil {
			return
		}
		if enc == wireProto {
			c.Header("Content-Type", protobufType+";stream=watch")
		} else {
			c.Header("Content-Type", "application/json")
		}
		c.Header("Cache-Control", "no-cache, private")
		c.Status(http.StatusOK)
		c.Writer.WriteHeaderNow()
		w = &watchStream{req: req, s: s, accept: accept, enc: enc, flusher: flusher}
	}
	var from int64
	if initial {
		// The initial state streams out a batch at a time.
		lp := listParams{sel: p.sel}
		if p.rvSet {
			lp.minRev = p.rv
		}
		lm, err := s.scanList(req, lp, !stored, func(kv storage.KeyValue, obj runtime.Object) error {
			begin()
			return w.sendStored(watch.Added, stored, kv.Value, kv.ModRevision, obj)
		})
		if err != nil {
			if w == nil {
				return err
			}
			w.sendError(err)
			return nil
		}
		from, _ = strconv.ParseInt(lm.ResourceVersion, 10, 64)
	} else {
		from = p.rv
		if from == 0 {
			if from, err = s.store.Revision(ctx); err != nil {
				return internalError(err)
			}
		}
	}
	ch := s.store.Watch(ctx, req.r.listPrefix(req.namespace), from)
	begin()
	if initial && p.sendInitialEvents != nil && *p.sendInitialEvents && p.bookmarks {
		if err := w.bookmark(from, true); err != nil {
			return nil
		}
	}
	w.flush()

	// known is a revision up to which the client has every change: the
	// start, the last event sent, or etcd's last progress notification.
	known := from
	var tick <-chan time.Time
	if p.bookmarks {
		t := time.NewTicker(s.cfg.BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if err := w.bookmark(known, false); err != nil {
				return nil
			}
			w.flush()
		case res, ok := <-ch:
			if !ok {
				return nil
			}
			if res.Err != nil {
				var ce *storage.CompactedError
				if errors.As(res.Err, &ce) {
					w.sendError(apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, ce.Compacted)))
				} else if ctx.Err() == nil {
					w.sendError(internalError(res.Err))
				}
				return nil
			}
			for _, ev := range res.Events {
				typ, val, obj, err := watchEvent(req.r, p.sel, ev, !stored)
				if err != nil {
					w.sendError(internalError(err))
					return nil
				}
				if typ == "" {
					continue
				}
				if err := w.sendStored(typ, stored, val, ev.Revision, obj); err != nil {
					return nil
				}
			}
			if res.Revision > known {
				known = res.Revision
			}
			w.flush()
		}
	}
}

// watchEvent turns a storage event into the watch event the client sees
// through its selector: its type ("" when the client does not see it),
// the stored bytes of the object it carries (the new state, or the last
// one for DELETED) and, when deciding took a decode (a selector), or
// decode asks for it, that object with the event's revision.
func watchEvent(r *resource, sel selector, ev storage.Event, decode bool) (watch.EventType, []byte, runtime.Object, error) {
	filtered := !sel.empty()
	if !filtered && !decode {
		typ, cur := transition(ev, ev.Type == storage.EventPut, ev.PrevValue != nil, false)
		return typ, eventValue(ev, cur), nil, nil
	}
	if !decode && sparseSelectable(r, sel) {
		if typ, val, ok := sparseWatchEvent(r, sel, ev); ok {
			return typ, val, nil, nil
		}
	}
	var cur, prev runtime.Object
	var err error
	if ev.Type == storage.EventPut {
		if cur, err = decodeFromStorage(r, ev.Value, ev.Revision); err != nil {
			return "", nil, nil, err
		}
	}
	if ev.PrevValue != nil && (ev.Type == storage.EventDelete || filtered) {
		if prev, err = decodeFromStorage(r, ev.PrevValue, ev.Revision); err != nil {
			return "", nil, nil, err
		}
	}
	typ, useCur := transition(ev, cur != nil && sel.matches(r, cur), prev != nil && sel.matches(r, prev), filtered)
	if useCur {
		return typ, ev.Value, cur, nil
	}
	return typ, ev.PrevValue, prev, nil
}

// sparseWatchEvent is watchEvent on what sparseFromStored reads: the
// same transitions, no decode. ok is false when a value needs the full
// decode (JSON from an older Skiff).
func sparseWatchEvent(r *resource, sel selector, ev storage.Event) (typ watch.EventType, val []byte, ok bool) {
	var curOK, prevOK bool
	if ev.Type == storage.EventPut {
		if curOK, ok = sparseMatches(r, sel, ev.Value); !ok {
			return "", nil, false
		}
	}
	if ev.PrevValue != nil {
		if prevOK, ok = sparseMatches(r, sel, ev.PrevValue); !ok {
			return "", nil, false
		}
	}
	typ, cur := transition(ev, curOK, prevOK, true)
	return typ, eventValue(ev, cur), true
}

// transition is kube's watch filter: what a watcher sees of ev when its
// selector matches the new state (curOK) and the previous one (prevOK).
// A create is ADDED, a delete DELETED with the last state; with a
// selector (filtered), entering it is ADDED and leaving it DELETED with
// the last state it matched in. cur says whether the event carries the
// new state; typ is "" when the watcher sees nothing.
func transition(ev storage.Event, curOK, prevOK, filtered bool) (typ watch.EventType, cur bool) {
	switch {
	case ev.Type == storage.EventDelete:
		if prevOK {
			return watch.Deleted, false
		}
	case ev.Created || (filtered && curOK && !prevOK):
		if curOK {
			return watch.Added, true
		}
	case curOK:
		return watch.Modified, true
	case prevOK:
		return watch.Deleted, false
	}
	return "", false
}

// eventValue is the stored bytes an event carries: the new state or the
// previous one.
func eventValue(ev storage.Event, cur bool) []byte {
	if cur {
		return ev.Value
	}
	return ev.PrevValue
}

// cancelOnStop calls cancel when the server stops (Close), for work that
// outlives a request's own context; the goroutine ends with ctx.
func (s *Server) cancelOnStop(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
}
