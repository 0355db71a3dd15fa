package endpointslice

import (
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// tracker remembers the writes of recent syncs until the informer cache
// shows them, so that a sync never plans from a cache that misses its own
// last writes (which would create duplicate slices). It plays the role of
// upstream's EndpointSliceTracker, keyed by slice name instead of
// generation.
type tracker struct {
	mu  sync.Mutex
	svc map[string]map[string]expectation // service key -> slice name -> expectation
}

type expectKind int

const (
	expectCreated expectKind = iota // the slice must be in the cache
	expectUpdated                   // the cache must not show oldRV any more
	expectDeleted                   // the slice (uid) must be gone
)

type expectation struct {
	kind  expectKind
	oldRV string
	newRV string
	uid   types.UID
}

func newTracker() *tracker {
	return &tracker{svc: map[string]map[string]expectation{}}
}

func (t *tracker) expect(svcKey, name string, e expectation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.svc[svcKey]
	if !ok {
		m = map[string]expectation{}
		t.svc[svcKey] = m
	}
	m[name] = e
}

// created records a slice the sync created.
func (t *tracker) created(svcKey string, s *discoveryv1.EndpointSlice) {
	t.expect(svcKey, s.Name, expectation{kind: expectCreated, uid: s.UID})
}

// updated records an update from oldRV to the written object.
func (t *tracker) updated(svcKey, oldRV string, s *discoveryv1.EndpointSlice) {
	t.expect(svcKey, s.Name, expectation{kind: expectUpdated, oldRV: oldRV, newRV: s.ResourceVersion})
}

// deleted records a deletion.
func (t *tracker) deleted(svcKey string, s *discoveryv1.EndpointSlice) {
	t.expect(svcKey, s.Name, expectation{kind: expectDeleted, uid: s.UID})
}

// observedDelete forgets what was expected of a slice the informer saw
// deleted (a created slice that someone else deleted before the cache
// showed it would otherwise be awaited forever).
func (t *tracker) observedDelete(svcKey, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.svc[svcKey]; ok {
		delete(m, name)
		if len(m) == 0 {
			delete(t.svc, svcKey)
		}
	}
}

// forget drops everything known about a Service.
func (t *tracker) forget(svcKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.svc, svcKey)
}

// stale reports whether cached (the cache's slices of the Service, by name)
// misses a write of an earlier sync. Expectations the cache meets are
// dropped.
func (t *tracker) stale(svcKey string, cached map[string]*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.svc[svcKey]
	if !ok {
		return false
	}
	stale := false
	for name, e := range m {
		s, present := cached[name]
		met := false
		switch e.kind {
		case expectCreated:
			met = present
		case expectUpdated:
			met = !present || s.ResourceVersion == e.newRV || s.ResourceVersion != e.oldRV
		case expectDeleted:
			met = !present || s.UID != e.uid
		}
		if met {
			delete(m, name)
		} else {
			stale = true
		}
	}
	if len(m) == 0 {
		delete(t.svc, svcKey)
	}
	return stale
}
