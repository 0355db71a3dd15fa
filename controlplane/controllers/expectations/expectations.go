// Package expectations records the creates and deletes a controller has
// issued but not yet seen in its informer cache, so that a sync running
// before the cache catches up does not create or delete the same objects a
// second time. It follows kube-controller-manager's ControllerExpectations
// and UIDTrackingControllerExpectations: creations are counted, deletions
// are tracked by object key so that each is observed exactly once (as a
// deletionTimestamp update or as the delete itself), and expectations expire
// after a TTL so that a lost watch event cannot wedge a controller.
package expectations

import (
	"sync"
	"time"
)

// DefaultTTL is how long unmet expectations hold a controller back
// (kube-controller-manager's ExpectationsTimeout).
const DefaultTTL = 5 * time.Minute

// Expectations holds the outstanding creates and deletes per controller key
// ("namespace/name" of the ReplicaSet). It is safe for concurrent use.
type Expectations struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	records map[string]*record
}

type record struct {
	adds      int
	deletions map[string]struct{}
	timestamp time.Time
}

// New returns empty expectations with DefaultTTL and the wall clock.
func New() *Expectations {
	return NewWithClock(DefaultTTL, time.Now)
}

// NewWithClock returns empty expectations with the given TTL and clock.
func NewWithClock(ttl time.Duration, now func() time.Time) *Expectations {
	return &Expectations{ttl: ttl, now: now, records: map[string]*record{}}
}

// Satisfied reports whether the controller keyed by key may sync: it has no
// outstanding creates or deletes, has none recorded at all, or they expired.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return true
	}
	if r.adds <= 0 && len(r.deletions) == 0 {
		return true
	}
	return e.now().Sub(r.timestamp) > e.ttl
}

// ExpectCreations records that n creates are about to be issued for key,
// replacing any previous record.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[key] = &record{adds: n, deletions: map[string]struct{}{}, timestamp: e.now()}
}

// ExpectDeletions records that the objects named by objectKeys are about to
// be deleted for key, replacing any previous record.
func (e *Expectations) ExpectDeletions(key string, objectKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := make(map[string]struct{}, len(objectKeys))
	for _, k := range objectKeys {
		d[k] = struct{}{}
	}
	e.records[key] = &record{deletions: d, timestamp: e.now()}
}

// CreationObserved lowers the outstanding creates of key by one: the
// informer saw a created object, or a create failed and will not be seen.
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok && r.adds > 0 {
		r.adds--
	}
}

// DeletionObserved records that objectKey is gone (or going): it counts
// only if objectKey was expected, and only once.
func (e *Expectations) DeletionObserved(key, objectKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		delete(r.deletions, objectKey)
	}
}

// Delete forgets key, for a controller object that is gone.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
}

// Pending returns the outstanding creates and deletes of key.
func (e *Expectations) Pending(key string) (adds, deletes int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		return r.adds, len(r.deletions)
	}
	return 0, 0
}
