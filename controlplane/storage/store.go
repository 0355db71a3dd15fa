package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Observer receives the duration of every etcd request; the API server
// feeds it into its etcd latency histogram. It may be nil.
type Observer func(op string, d time.Duration)

// Store implements Interface with an etcd client/v3 client.
type Store struct {
	client  *clientv3.Client
	log     *slog.Logger
	observe Observer
}

var _ Interface = (*Store)(nil)

// NewStore returns a Store on client. observe may be nil.
func NewStore(client *clientv3.Client, log *slog.Logger, observe Observer) *Store {
	if observe == nil {
		observe = func(string, time.Duration) {}
	}
	return &Store{client: client, log: log, observe: observe}
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.client }

func (s *Store) timed(op string, start time.Time) {
	s.observe(op, time.Since(start))
}

// Get implements Interface.
func (s *Store) Get(ctx context.Context, key string) (KeyValue, error) {
	defer s.timed("get", time.Now())
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return KeyValue{}, fmt.Errorf("get %s: %w", key, translate(err))
	}
	if len(resp.Kvs) == 0 {
		return KeyValue{}, ErrNotFound
	}
	return kv(resp.Kvs[0]), nil
}

// GetSerializable implements Interface.
func (s *Store) GetSerializable(ctx context.Context, key string) (KeyValue, error) {
	defer s.timed("get", time.Now())
	resp, err := s.client.Get(ctx, key, clientv3.WithSerializable())
	if err != nil {
		return KeyValue{}, fmt.Errorf("get %s: %w", key, translate(err))
	}
	if len(resp.Kvs) == 0 {
		return KeyValue{}, ErrNotFound
	}
	return kv(resp.Kvs[0]), nil
}

func kv(k *mvccpb.KeyValue) KeyValue {
	return KeyValue{Key: string(k.Key), Value: k.Value, CreateRevision: k.CreateRevision, ModRevision: k.ModRevision}
}

func cmps(conds []Condition) []clientv3.Cmp {
	out := make([]clientv3.Cmp, 0, len(conds))
	for _, c := range conds {
		switch {
		case c.ModRevision != 0:
			out = append(out, clientv3.Compare(clientv3.ModRevision(c.Key), "=", c.ModRevision))
		case c.Exists:
			out = append(out, clientv3.Compare(clientv3.CreateRevision(c.Key), ">", 0))
		default:
			out = append(out, clientv3.Compare(clientv3.CreateRevision(c.Key), "=", 0))
		}
	}
	return out
}

func ops(extra []Op) []clientv3.Op {
	out := make([]clientv3.Op, 0, len(extra))
	for _, o := range extra {
		if o.Delete {
			out = append(out, clientv3.OpDelete(o.Key))
		} else {
			out = append(out, clientv3.OpPut(o.Key, string(o.Value)))
		}
	}
	return out
}

// Create implements Interface.
func (s *Store) Create(ctx context.Context, key string, value []byte, conds []Condition, extra ...Op) (int64, error) {
	defer s.timed("create", time.Now())
	c := append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, cmps(conds)...)
	o := append([]clientv3.Op{clientv3.OpPut(key, string(value))}, ops(extra)...)
	resp, err := s.client.Txn(ctx).If(c...).Then(o...).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return 0, ErrExists
		}
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// Update implements Interface.
func (s *Store) Update(ctx context.Context, key string, value []byte, rev int64, conds []Condition, extra ...Op) (int64, error) {
	defer s.timed("update", time.Now())
	c := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, cmps(conds)...)
	o := append([]clientv3.Op{clientv3.OpPut(key, string(value))}, ops(extra)...)
	resp, err := s.client.Txn(ctx).If(c...).Then(o...).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return 0, ErrNotFound
		}
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// Delete implements Interface.
func (s *Store) Delete(ctx context.Context, key string, rev int64, conds []Condition, extra ...Op) (int64, error) {
	defer s.timed("delete", time.Now())
	var c []clientv3.Cmp
	if rev != 0 {
		c = append(c, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	} else {
		c = append(c, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
	}
	c = append(c, cmps(conds)...)
	o := append([]clientv3.Op{clientv3.OpDelete(key)}, ops(extra)...)
	resp, err := s.client.Txn(ctx).If(c...).Then(o...).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return 0, ErrNotFound
		}
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// Txn implements Interface.
func (s *Store) Txn(ctx context.Context, conds []Condition, o ...Op) (bool, int64, error) {
	defer s.timed("txn", time.Now())
	resp, err := s.client.Txn(ctx).If(cmps(conds)...).Then(ops(o)...).Commit()
	if err != nil {
		return false, 0, fmt.Errorf("txn: %w", translate(err))
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// List implements Interface.
func (s *Store) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	defer s.timed("list", time.Now())
	start := prefix
	if opts.StartKey != "" {
		if !strings.HasPrefix(opts.StartKey, prefix) {
			return ListResult{}, fmt.Errorf("list %s: start key %q outside the prefix", prefix, opts.StartKey)
		}
		start = opts.StartKey
	}
	o := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if opts.Revision > 0 {
		o = append(o, clientv3.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		o = append(o, clientv3.WithLimit(opts.Limit))
	}
	if opts.KeysOnly {
		o = append(o, clientv3.WithKeysOnly())
	}
	resp, err := s.client.Get(ctx, start, o...)
	if err != nil {
		return ListResult{}, fmt.Errorf("list %s: %w", prefix, s.translateRev(ctx, err, opts.Revision))
	}
	res := ListResult{Items: make([]KeyValue, len(resp.Kvs)), Revision: resp.Header.Revision, More: resp.More}
	if opts.Revision > 0 {
		res.Revision = opts.Revision
	}
	for i, k := range resp.Kvs {
		res.Items[i] = kv(k)
	}
	if resp.More {
		res.Remaining = resp.Count - int64(len(resp.Kvs))
	}
	return res, nil
}

// Count implements Interface.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	defer s.timed("count", time.Now())
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", prefix, translate(err))
	}
	return resp.Count, nil
}

// Revision implements Interface. It is a linearizable read, so the revision
// is at least that of every write acknowledged before the call.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	defer s.timed("revision", time.Now())
	// A range over a key nobody writes returns the store's revision.
	resp, err := s.client.Get(ctx, "/skiff-revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", translate(err))
	}
	return resp.Header.Revision, nil
}

// Compact implements Interface.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	defer s.timed("compact", time.Now())
	if _, err := s.client.Compact(ctx, rev); err != nil {
		if errors.Is(translate(err), ErrCompacted) {
			return nil // someone compacted at least as far
		}
		return fmt.Errorf("compact to %d: %w", rev, translate(err))
	}
	return nil
}

// Watch implements Interface.
func (s *Store) Watch(ctx context.Context, prefix string, rev int64) <-chan WatchResult {
	out := make(chan WatchResult, 16)
	o := []clientv3.OpOption{clientv3.WithPrevKV(), clientv3.WithProgressNotify()}
	if strings.HasSuffix(prefix, "/") {
		o = append(o, clientv3.WithPrefix())
	}
	if rev > 0 {
		o = append(o, clientv3.WithRev(rev+1))
	}
	// The etcd watch must end with this watch: cancel it when the reader
	// stops, whatever ctx does.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.client.Watch(wctx, prefix, o...)
	go func() {
		defer close(out)
		defer cancel()
		send := func(r WatchResult) bool {
			select {
			case out <- r:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(WatchResult{Err: &CompactedError{Requested: rev, Compacted: resp.CompactRevision}})
				return
			}
			if err := resp.Err(); err != nil {
				send(WatchResult{Err: fmt.Errorf("watch %s: %w", prefix, translate(err))})
				return
			}
			r := WatchResult{Revision: resp.Header.Revision}
			if len(resp.Events) > 0 {
				r.Events = make([]Event, len(resp.Events))
				for i, e := range resp.Events {
					ev := Event{Key: string(e.Kv.Key), Revision: e.Kv.ModRevision}
					if e.PrevKv != nil {
						ev.PrevValue = e.PrevKv.Value
					}
					if e.Type == clientv3.EventTypeDelete {
						ev.Type = EventDelete
					} else {
						ev.Type = EventPut
						ev.Value = e.Kv.Value
						ev.Created = e.IsCreate()
					}
					r.Events[i] = ev
				}
				// Header.Revision of an event batch may be ahead of the
				// batch's last event only when later events are still to
				// come in this watch; report the last event's revision.
				r.Revision = r.Events[len(r.Events)-1].Revision
			}
			if !send(r) {
				return
			}
		}
		if ctx.Err() == nil {
			send(WatchResult{Err: fmt.Errorf("watch %s: closed by etcd", prefix)})
		}
	}()
	return out
}

// translateRev maps etcd errors to this package's, filling in the store's
// compacted revision for ErrCompacted.
func (s *Store) translateRev(ctx context.Context, err error, rev int64) error {
	err = translate(err)
	if errors.Is(err, ErrCompacted) {
		return &CompactedError{Requested: rev, Compacted: s.compactedRevision(ctx)}
	}
	return err
}

// compactedRevision finds the store's compacted revision: a watch from
// revision 1 fails with it. It returns 0 when it cannot tell.
func (s *Store) compactedRevision(ctx context.Context) int64 {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for resp := range s.client.Watch(wctx, "/skiff-revision-probe", clientv3.WithRev(1)) {
		return resp.CompactRevision
	}
	return 0
}

func translate(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%w: %w", ErrFutureRevision, err)
	}
	return err
}
