package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey records the last compaction; its etcd Version is the
// logical time that lets several servers on one etcd agree on who compacts,
// as kube-apiserver does.
const compactRevKey = "compact_rev_key"

// Compactor compacts etcd history periodically: at every tick it compacts
// to the revision seen at the previous tick, so at least one interval of
// history stays available for watches to resume from.
type Compactor struct {
	client   *clientv3.Client
	interval time.Duration
	log      *slog.Logger
}

// NewCompactor returns a Compactor; kube-apiserver uses a 5 minute interval.
func NewCompactor(client *clientv3.Client, interval time.Duration, log *slog.Logger) *Compactor {
	return &Compactor{client: client, interval: interval, log: log}
}

// Run compacts every interval until ctx ends.
func (c *Compactor) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	var version, rev int64
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		var compacted int64
		var err error
		version, rev, compacted, err = c.step(ctx, version, rev)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("compaction failed", "err", err)
			}
			continue
		}
		if compacted != 0 {
			c.log.Debug("compacted etcd history", "revision", compacted)
		}
	}
}

// step is one round: if nobody else compacted since our last round (the
// key's version is what we saw), record the current revision and compact
// to the one recorded last round.
func (c *Compactor) step(ctx context.Context, expectVersion, rev int64) (version, curRev, compacted int64, err error) {
	resp, err := c.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(compactRevKey), "=", expectVersion)).
		Then(clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10))).
		Else(clientv3.OpGet(compactRevKey)).Commit()
	if err != nil {
		return expectVersion, rev, 0, fmt.Errorf("compaction txn: %w", err)
	}
	curRev = resp.Header.Revision
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0, curRev, 0, nil
		}
		return kvs[0].Version, curRev, 0, nil
	}
	if rev == 0 {
		return expectVersion + 1, curRev, 0, nil
	}
	if _, err := c.client.Compact(ctx, rev); err != nil {
		if err := translate(err); !errors.Is(err, ErrCompacted) {
			return expectVersion + 1, curRev, 0, fmt.Errorf("compact to %d: %w", rev, err)
		}
	}
	return expectVersion + 1, curRev, rev, nil
}
