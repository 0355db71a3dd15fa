// Package worker runs a controller's rate-limited work queue: it waits for
// the informer caches, runs N goroutines that take keys off the queue and
// sync them, retries failed keys with the queue's rate limiter (up to a limit,
// then drops them until their next change), requeues a key when its sync asks
// to be called again later, and shuts the queue down and waits for the workers
// when the context ends. It exists so that this loop, which every queue-driven
// controller needs and which is easy to get subtly wrong (a missing Done, a
// Forget on the wrong path, workers still running after Run returned), is
// written and tested once instead of once per controller.
package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Loop runs a controller's rate-limited work queue. Queue and Sync are
// required; the other fields are optional.
type Loop struct {
	Queue workqueue.TypedRateLimitingInterface[string]
	// Sync handles one key. On success a positive duration requeues the key
	// after it; on failure the duration is ignored and the key is retried
	// with the queue's rate limiter.
	Sync func(ctx context.Context, key string) (time.Duration, error)
	// Start, when set, runs once after the caches have synced and before the
	// workers start (to rebuild state the syncs rely on, or to queue keys no
	// event will bring). Its error ends Run.
	Start func() error
	Log   *slog.Logger
	// Kind is what a key names ("service", "pod", ...): the attribute key
	// under which logs carry it. Empty means "key".
	Kind string
	// MaxRetries is how many rate-limited retries a failing key gets before
	// it is dropped until its next change; 0 retries forever.
	MaxRetries int
	// RequeueDropped, when positive, brings a dropped key back after it
	// instead of waiting for its next change.
	RequeueDropped time.Duration
	// Observe, when set, is called with the result of every sync (for a
	// sync-result metric).
	Observe func(err error)
}

// errNotSynced is Run's error when the caches did not sync though ctx is
// still live.
var errNotSynced = errors.New("caches did not sync")

// ErrorOnly adapts a sync that never asks to be called again later to
// Loop.Sync.
func ErrorOnly(sync func(ctx context.Context, key string) error) func(context.Context, string) (time.Duration, error) {
	return func(ctx context.Context, key string) (time.Duration, error) {
		return 0, sync(ctx, key)
	}
}

// Run waits for the caches, calls Start, then runs workers goroutines (at
// least one) until ctx ends. It shuts the queue down on every return and,
// once workers were started, waits for them all to return. It returns nil
// when ctx ends (also before the caches synced), Start's error, or an error
// when the caches did not sync though ctx is live.
func (l *Loop) Run(ctx context.Context, workers int, synced ...cache.InformerSynced) error {
	defer l.Queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errNotSynced
	}
	if l.Start != nil {
		if err := l.Start(); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for l.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	l.logger().Info("stopping")
	l.Queue.ShutDown()
	wg.Wait()
	return nil
}

// processNext syncs the next key; it returns false once the queue is shut
// down and empty.
func (l *Loop) processNext(ctx context.Context) bool {
	key, quit := l.Queue.Get()
	if quit {
		return false
	}
	defer l.Queue.Done(key)
	after, err := l.Sync(ctx, key)
	if l.Observe != nil {
		l.Observe(err)
	}
	switch {
	case err == nil:
		l.Queue.Forget(key)
		if after > 0 {
			l.Queue.AddAfter(key, after)
		}
	case l.MaxRetries <= 0 || l.Queue.NumRequeues(key) < l.MaxRetries:
		l.logger().Debug("sync failed, retrying", l.kind(), key, "err", err)
		l.Queue.AddRateLimited(key)
	case l.RequeueDropped > 0:
		l.logger().Warn("sync failed, dropping the retries", l.kind(), key, "nextSync", l.RequeueDropped, "err", err)
		l.Queue.Forget(key)
		l.Queue.AddAfter(key, l.RequeueDropped)
	default:
		l.logger().Warn("sync failed, dropping until the next change", l.kind(), key, "err", err)
		l.Queue.Forget(key)
	}
	return true
}

func (l *Loop) logger() *slog.Logger {
	if l.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Log
}

func (l *Loop) kind() string {
	if l.Kind == "" {
		return "key"
	}
	return l.Kind
}
