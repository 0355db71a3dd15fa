// Package storage is the API server's persistence: a versioned key-value
// store on etcd. It owns starting an embedded etcd in a data directory (or
// connecting to an external cluster), the operations the API server needs
// (create-if-absent, get, conditional update and delete, paged lists at a
// revision, watches from a revision, multi-key transactions) and periodic
// compaction of old revisions.
//
// Keys are strings such as /registry/pods/default/web-0 and values are
// opaque bytes; revisions are etcd revisions, which the API server exposes
// as resourceVersion. Nothing here knows about Kubernetes objects.
package storage

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Callers check them with errors.Is.
var (
	// ErrNotFound: the key does not exist (at the revision asked for).
	ErrNotFound = errors.New("key not found")
	// ErrExists: a create found the key already present.
	ErrExists = errors.New("key exists")
	// ErrConflict: a precondition on a key's revision or existence failed.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted: the revision asked for has been compacted away.
	ErrCompacted = errors.New("revision compacted")
	// ErrFutureRevision: the revision asked for is newer than the store's.
	ErrFutureRevision = errors.New("revision is in the future")
)

// CompactedError says which revision a request asked for and the oldest
// revision the store still has. It wraps ErrCompacted.
type CompactedError struct {
	Requested int64
	// Compacted is the revision the store was compacted to; revisions
	// after it are still available.
	Compacted int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("revision %d compacted (compacted to %d)", e.Requested, e.Compacted)
}

// Unwrap lets errors.Is(err, ErrCompacted) match.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

// KeyValue is one stored key at a revision.
type KeyValue struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// ListOptions selects the keys of a List.
type ListOptions struct {
	// Revision to read at; 0 reads the latest.
	Revision int64
	// StartKey, when set, is the first key to return (it must have the
	// listed prefix); used to continue a paged list.
	StartKey string
	// Limit on the number of keys returned; 0 is unlimited.
	Limit int64
	// KeysOnly returns keys and revisions without values.
	KeysOnly bool
}

// ListResult is one page of a List.
type ListResult struct {
	Items []KeyValue
	// Revision the list was read at.
	Revision int64
	// More is true when keys after the last returned one remain.
	More bool
	// Remaining is how many keys remain after this page (when More).
	Remaining int64
}

// EventType is the kind of change a watch reports.
type EventType int

// Event types.
const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change to a key.
type Event struct {
	Type EventType
	Key  string
	// Value is the new value (nil on delete).
	Value []byte
	// PrevValue is the value before the change (nil on a create).
	PrevValue []byte
	// Revision of the change (ModRevision of a put, the delete's revision).
	Revision int64
	// Created is true for a put that created the key.
	Created bool
}

// WatchResult is what a watch delivers: a batch of events, a progress
// notification (no events; all changes up to Revision were delivered) or a
// terminal error.
type WatchResult struct {
	Events []Event
	// Revision: every change up to it has been delivered.
	Revision int64
	// Err ends the watch; errors.Is(Err, ErrCompacted) when the start
	// revision was compacted.
	Err error
}

// Condition is a precondition of a transaction on one key.
type Condition struct {
	Key string
	// ModRevision the key must have; 0 means the key must not exist.
	ModRevision int64
	// Exists, when true (and ModRevision is 0), requires only that the key
	// exists.
	Exists bool
}

// Op is a write in a transaction: a put of Value or, when Delete, a delete.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
}

// Interface is what the API server uses. *Store implements it on etcd.
type Interface interface {
	// Get returns key at the latest revision, or ErrNotFound.
	Get(ctx context.Context, key string) (KeyValue, error)
	// GetSerializable is Get from the local member's applied state, which
	// may lag the latest revision briefly: for reads that a transaction's
	// revision comparison checks afterwards.
	GetSerializable(ctx context.Context, key string) (KeyValue, error)
	// Create puts key only if it does not exist; ErrExists otherwise. The
	// extra ops are applied in the same transaction and conds must hold too
	// (ErrConflict when one fails). It returns the new revision.
	Create(ctx context.Context, key string, value []byte, conds []Condition, extra ...Op) (int64, error)
	// Update puts key if its ModRevision is rev (ErrConflict otherwise,
	// ErrNotFound when it is gone), applying conds and extra like Create.
	Update(ctx context.Context, key string, value []byte, rev int64, conds []Condition, extra ...Op) (int64, error)
	// Delete deletes key if its ModRevision is rev (0: any), and the extra
	// ops with it. It returns the deletion's revision.
	Delete(ctx context.Context, key string, rev int64, conds []Condition, extra ...Op) (int64, error)
	// Txn applies ops if every condition holds; it reports whether it did
	// and the store's revision afterwards.
	Txn(ctx context.Context, conds []Condition, ops ...Op) (bool, int64, error)
	// List reads keys with prefix.
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Count returns the number of keys with prefix.
	Count(ctx context.Context, prefix string) (int64, error)
	// Revision returns the store's current revision.
	Revision(ctx context.Context) (int64, error)
	// Watch reports changes to keys with prefix (or the one key, when
	// prefix does not end in "/") after revision rev (0: from now), and
	// progress notifications (results without events) that etcd sends
	// periodically. The channel closes when ctx ends or after a result
	// with Err.
	Watch(ctx context.Context, prefix string, rev int64) <-chan WatchResult
	// Compact drops history up to rev.
	Compact(ctx context.Context, rev int64) error
}
