// Package eventrecorder records events.k8s.io/v1 Events, as client-go's
// tools/events broadcaster does, with a bounded memory.
//
// client-go keeps every event it recorded for six minutes to fold repeats
// into a series. A scheduler that places 1,000 pods a second records a
// Scheduled event for each, so it held 360,000 events at that rate (11 MB
// of a 10,000-pod benchmark's heap). Here the events that may still
// become a series are an LRU of at most MaxSeries entries, each the key
// and what is needed to write the series, not the whole event.
//
// What users see is client-go's behaviour: events with the same type,
// reason, action, reporting controller and instance, regarding and
// related objects within six minutes of the last one are one Event whose
// series count goes up (the note is not part of the key, as upstream).
// Series counts are written as they change, with at most one write in
// flight per series, instead of when the series ends. A full queue drops
// events (as client-go's broadcaster does when its queue is full); the
// caller never blocks.
package eventrecorder

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
)

// Defaults.
const (
	// SeriesWindow is how long after an event a repeat joins its series
	// (client-go's finishTime).
	SeriesWindow = 6 * time.Minute
	// DefaultMaxSeries bounds the events remembered for series, as
	// client-go's core/v1 correlator bounds its LRU.
	DefaultMaxSeries = 4096
	// DefaultQueue is how many writes may wait. client-go writes each
	// event from a goroutine of its own, so it never drops one at these
	// rates; a scheduler records up to a few thousand a second.
	DefaultQueue = 16384
	// DefaultWorkers write events concurrently: at 30-50 ms a write under
	// load, 64 keep up with 1,000 events a second and more.
	DefaultWorkers = 64
	// maxNoteBytes is the API's limit on an Event's note.
	maxNoteBytes = 1024
	maxTries     = 5
)

// Config configures a Recorder.
type Config struct {
	Client kubernetes.Interface
	// Controller is reportingController, as "default-scheduler".
	Controller string
	// Instance is reportingInstance; default Controller-<hostname>.
	Instance  string
	Log       *slog.Logger
	MaxSeries int
	Queue     int
	Workers   int
	// Now is the clock (tests).
	Now func() time.Time
	// RetryDelay is the pause between tries of a failed write (default 1 s).
	RetryDelay time.Duration
}

// Recorder is an events.EventRecorder. Run writes what it records.
type Recorder struct {
	cfg   Config
	queue chan *series

	mu     sync.Mutex
	byKey  map[key]*list.Element
	lru    *list.List // of *series, most recent first
	closed bool
	// lastNano makes event names (<object>.<nanoseconds in hex>, as
	// client-go names them) unique even when the clock repeats itself.
	lastNano int64
}

var _ events.EventRecorder = (*Recorder)(nil)

// key is what makes two events one series (client-go's getKey).
type key struct {
	eventType, action, reason string
	regarding, related        corev1.ObjectReference
}

// series is an event and its repeats; its fields are guarded by
// Recorder.mu.
type series struct {
	key       key
	name, ns  string
	note      string
	eventTime metav1.MicroTime
	count     int32
	last      time.Time
	// created: the event exists on the server; queued: a write of this
	// series waits in the queue or is in flight.
	created, queued bool
}

// New returns a Recorder; events are written once Run runs.
func New(cfg Config) *Recorder {
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		cfg.Instance = cfg.Controller + "-" + host
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	return &Recorder{cfg: cfg, queue: make(chan *series, cfg.Queue), byKey: map[key]*list.Element{}, lru: list.New()}
}

// Eventf records an event about regarding (and related, which may be
// nil). It never blocks.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(scheme.Scheme, regarding)
	if err != nil {
		r.cfg.Log.Warn("event not recorded: no reference", "reason", reason, "err", err)
		return
	}
	k := key{eventType: eventtype, action: action, reason: reason, regarding: *ref}
	if related != nil {
		if rel, err := reference.GetReference(scheme.Scheme, related); err == nil {
			k.related = *rel
		}
	}
	if len(args) > 0 {
		note = fmt.Sprintf(note, args...)
	}
	if len(note) > maxNoteBytes {
		note = note[:maxNoteBytes]
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if el, ok := r.byKey[k]; ok {
		s := el.Value.(*series)
		if now.Sub(s.last) < SeriesWindow {
			s.count++
			s.last = now
			r.lru.MoveToFront(el)
			r.enqueueLocked(s)
			return
		}
		r.removeLocked(el)
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	nano := max(now.UnixNano(), r.lastNano+1)
	r.lastNano = nano
	s := &series{key: k, name: fmt.Sprintf("%s.%x", ref.Name, nano), ns: ns, note: note,
		eventTime: metav1.NewMicroTime(now), count: 1, last: now}
	r.byKey[k] = r.lru.PushFront(s)
	for r.lru.Len() > r.cfg.MaxSeries {
		r.removeLocked(r.lru.Back())
	}
	r.enqueueLocked(s)
}

func (r *Recorder) removeLocked(el *list.Element) {
	s := r.lru.Remove(el).(*series)
	delete(r.byKey, s.key)
}

// enqueueLocked queues a write of s unless one is queued already (it will
// write the latest count).
func (r *Recorder) enqueueLocked(s *series) {
	if s.queued {
		return
	}
	select {
	case r.queue <- s:
		s.queued = true
	default:
		r.cfg.Log.Warn("event dropped: queue full", "reason", s.key.reason, "object", s.key.regarding.Name)
	}
}

// Run writes events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-r.queue:
					r.write(ctx, s)
				}
			}
		})
	}
	wg.Wait()
}

// Close stops recording; events already queued are still written while
// Run runs.
func (r *Recorder) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// write creates s's event, or writes its series count.
func (r *Recorder) write(ctx context.Context, s *series) {
	r.mu.Lock()
	s.queued = false
	ev := r.eventLocked(s)
	created := s.created
	r.mu.Unlock()
	c := r.cfg.Client.EventsV1().Events(s.ns)
	for try := 1; ; try++ {
		var err error
		if !created {
			_, err = c.Create(ctx, ev, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// An earlier write of this series won: add the count.
				created, err = ev.Series != nil, nil
			}
		}
		if created && err == nil && ev.Series != nil {
			patch := fmt.Sprintf(`{"series":{"count":%d,"lastObservedTime":%q}}`, ev.Series.Count,
				ev.Series.LastObservedTime.UTC().Format(metav1.RFC3339Micro))
			_, err = c.Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if apierrors.IsNotFound(err) {
				// The event was deleted (or expired): write it again.
				_, err = c.Create(ctx, ev, metav1.CreateOptions{})
			}
		}
		if err == nil {
			r.mu.Lock()
			s.created = true
			r.mu.Unlock()
			return
		}
		if !retriable(err) || try == maxTries || ctx.Err() != nil {
			r.cfg.Log.Warn("event not written", "reason", s.key.reason, "object", s.key.regarding.Name, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.RetryDelay):
		}
	}
}

// eventLocked is the Event of s as it stands.
func (r *Recorder) eventLocked(s *series) *eventsv1.Event {
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: s.name, Namespace: s.ns},
		EventTime:           s.eventTime,
		ReportingController: r.cfg.Controller,
		ReportingInstance:   r.cfg.Instance,
		Action:              s.key.action,
		Reason:              s.key.reason,
		Regarding:           s.key.regarding,
		Note:                s.note,
		Type:                s.key.eventType,
	}
	if s.key.related != (corev1.ObjectReference{}) {
		rel := s.key.related
		ev.Related = &rel
	}
	if s.count > 1 {
		ev.Series = &eventsv1.EventSeries{Count: s.count, LastObservedTime: metav1.NewMicroTime(s.last)}
	}
	return ev
}

// retriable: the server may take it later (it is down, busy or timed
// out); anything else is the event's fault.
func retriable(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return true // transport error
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}
