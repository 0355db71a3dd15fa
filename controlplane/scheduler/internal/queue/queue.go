// Package queue is the scheduler's queue of pending pods, modelled on the
// Kubernetes scheduling queue:
//
//   - activeQ, a heap ordered by the profile's QueueSort plugin (priority,
//     then the time the pod was queued), from which the scheduler pops;
//   - backoffQ, pods waiting out an exponential backoff (1 s doubling to
//     10 s by default) after a failed attempt, ordered by expiry and moved to
//     activeQ once it passes;
//   - unschedulable pods, which wait for a cluster event that may help them
//     (a node added, a pod deleted, ...). Each plugin registers the events
//     that can undo its rejections, with a hint function that looks at the
//     event's objects; only those events move a pod back, so a busy cluster
//     does not turn pending pods into a hot loop. Pods left there longer than
//     five minutes are retried anyway.
//
// Events that arrive while a pod is being scheduled are remembered, so a pod
// whose cycle raced with a helpful event goes to backoffQ instead of waiting
// for another one.
package queue

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Defaults, as upstream.
const (
	DefaultInitialBackoff     = 1 * time.Second
	DefaultMaxBackoff         = 10 * time.Second
	DefaultMaxInUnschedulable = 5 * time.Minute

	backoffFlushPeriod       = time.Second
	unschedulableFlushPeriod = 30 * time.Second
	// maxInFlightEvents bounds the events remembered during one cycle;
	// beyond it any failed pod is requeued, as if an event had matched.
	maxInFlightEvents = 10000
)

// ErrClosed is returned by Pop once the queue is closed.
var ErrClosed = errors.New("scheduling queue is closed")

// Options configure a PriorityQueue.
type Options struct {
	Log *slog.Logger
	// Less orders activeQ (the QueueSort plugin).
	Less func(a, b *framework.QueuedPodInfo) bool
	// PreEnqueue plugins may keep a pod out of activeQ (scheduling gates).
	PreEnqueue []framework.PreEnqueuePlugin
	// Hints maps each plugin with EnqueueExtensions to the events it
	// registered. Rejections by plugins not in the map are undone by any
	// event.
	Hints map[string][]framework.ClusterEventWithHint

	InitialBackoff     time.Duration
	MaxBackoff         time.Duration
	MaxInUnschedulable time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

type recordedEvent struct {
	event          framework.ClusterEvent
	oldObj, newObj any
}

type inFlight struct {
	// firstEvent is the index in PriorityQueue.events of the first event
	// recorded after the pod was popped.
	firstEvent int
	// updated is set when the pod itself changed during its cycle.
	updated bool
}

// PriorityQueue is the scheduling queue. It is safe for concurrent use.
type PriorityQueue struct {
	log                *slog.Logger
	now                func() time.Time
	preEnqueue         []framework.PreEnqueuePlugin
	hints              map[string][]framework.ClusterEventWithHint
	initialBackoff     time.Duration
	maxBackoff         time.Duration
	maxInUnschedulable time.Duration

	mu            sync.Mutex
	cond          sync.Cond
	activeQ       *podHeap
	backoffQ      *podHeap
	unschedulable map[string]*framework.QueuedPodInfo

	inFlight       map[string]*inFlight
	events         []recordedEvent
	eventsOverflow bool
	closed         bool
}

// New returns an empty queue.
func New(o Options) *PriorityQueue {
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxInUnschedulable <= 0 {
		o.MaxInUnschedulable = DefaultMaxInUnschedulable
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p := &PriorityQueue{
		log:                o.Log,
		now:                o.Now,
		preEnqueue:         o.PreEnqueue,
		hints:              o.Hints,
		initialBackoff:     o.InitialBackoff,
		maxBackoff:         o.MaxBackoff,
		maxInUnschedulable: o.MaxInUnschedulable,
		activeQ:            newPodHeap(o.Less),
		backoffQ: newPodHeap(func(a, b *framework.QueuedPodInfo) bool {
			return a.BackoffExpiration.Before(b.BackoffExpiration)
		}),
		unschedulable: make(map[string]*framework.QueuedPodInfo),
		inFlight:      make(map[string]*inFlight),
	}
	p.cond.L = &p.mu
	return p
}

// Run moves pods whose backoff completed to activeQ every second and
// retries pods left unschedulable too long every 30 seconds, until ctx
// ends. It closes the queue when it returns.
func (p *PriorityQueue) Run(ctx context.Context) {
	defer p.Close()
	backoff := time.NewTicker(backoffFlushPeriod)
	defer backoff.Stop()
	leftover := time.NewTicker(unschedulableFlushPeriod)
	defer leftover.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-backoff.C:
			p.FlushBackoffQCompleted()
		case <-leftover.C:
			p.FlushUnschedulableLeftover()
		}
	}
}

// Close wakes Pop, which then returns ErrClosed.
func (p *PriorityQueue) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cond.Broadcast()
}

func (p *PriorityQueue) newQueuedPodInfo(pod *v1.Pod) *framework.QueuedPodInfo {
	return &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: p.now()}
}

// runPreEnqueue reports whether the pod may enter activeQ, and records the
// gating plugin otherwise.
func (p *PriorityQueue) runPreEnqueue(pInfo *framework.QueuedPodInfo) bool {
	pInfo.Gated, pInfo.GatingPlugin = false, ""
	for _, pl := range p.preEnqueue {
		if s := pl.PreEnqueue(context.Background(), pInfo.Pod); !s.IsSuccess() {
			pInfo.Gated, pInfo.GatingPlugin = true, pl.Name()
			return false
		}
	}
	return true
}

// moveToActiveQ puts a pod in activeQ, or among the unschedulable pods when
// a PreEnqueue plugin gates it. The caller holds the lock.
func (p *PriorityQueue) moveToActiveQ(pInfo *framework.QueuedPodInfo) {
	key := framework.PodKey(pInfo.Pod)
	if !p.runPreEnqueue(pInfo) {
		p.backoffQ.Delete(key)
		p.unschedulable[key] = pInfo
		return
	}
	p.backoffQ.Delete(key)
	delete(p.unschedulable, key)
	p.activeQ.AddOrUpdate(pInfo)
	p.cond.Broadcast()
}

// Add queues a new pending pod.
func (p *PriorityQueue) Add(pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := framework.PodKey(pod)
	if p.existsLocked(key) {
		p.updateLocked(nil, pod)
		return
	}
	p.moveToActiveQ(p.newQueuedPodInfo(pod))
}

func (p *PriorityQueue) existsLocked(key string) bool {
	if _, ok := p.activeQ.Get(key); ok {
		return true
	}
	if _, ok := p.backoffQ.Get(key); ok {
		return true
	}
	_, ok := p.unschedulable[key]
	return ok
}

// Pop blocks until a pod is active and returns it, or returns ErrClosed.
// The pod counts as in flight until Done or AddUnschedulableIfNotPresent.
func (p *PriorityQueue) Pop() (*framework.QueuedPodInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.activeQ.Len() == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return nil, ErrClosed
	}
	pInfo := p.activeQ.Pop()
	pInfo.Attempts++
	if pInfo.InitialAttemptTimestamp == nil {
		t := p.now()
		pInfo.InitialAttemptTimestamp = &t
	}
	p.inFlight[framework.PodKey(pInfo.Pod)] = &inFlight{firstEvent: len(p.events)}
	return pInfo, nil
}

// Done ends a pod's cycle without requeuing it (it was assumed or dropped).
func (p *PriorityQueue) Done(pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneLocked(framework.PodKey(pod))
}

func (p *PriorityQueue) doneLocked(key string) {
	delete(p.inFlight, key)
	if len(p.inFlight) == 0 {
		clear(p.events)
		p.events = p.events[:0]
		p.eventsOverflow = false
	}
}

// backoffDuration is initial * 2^(attempts-1), at most max.
func (p *PriorityQueue) backoffDuration(attempts int) time.Duration {
	d := p.initialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= p.maxBackoff {
			return p.maxBackoff
		}
	}
	return min(d, p.maxBackoff)
}

// AddUnschedulableIfNotPresent requeues a pod after a failed attempt.
// rejected is false for errors, which always go to backoffQ. A rejected pod
// goes to backoffQ when an event during its cycle may have helped it or the
// pod changed, and waits among the unschedulable pods otherwise.
func (p *PriorityQueue) AddUnschedulableIfNotPresent(pInfo *framework.QueuedPodInfo, rejected bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := framework.PodKey(pInfo.Pod)
	flight := p.inFlight[key]
	defer p.doneLocked(key)
	if p.existsLocked(key) {
		return errors.New("pod is already present in the scheduling queue")
	}
	pInfo.Timestamp = p.now()
	pInfo.BackoffExpiration = pInfo.Timestamp.Add(p.backoffDuration(pInfo.Attempts))
	if !rejected || (flight != nil && (flight.updated || p.helpedByEventsLocked(pInfo, flight.firstEvent))) {
		p.backoffQ.AddOrUpdate(pInfo)
		return nil
	}
	p.unschedulable[key] = pInfo
	return nil
}

func (p *PriorityQueue) helpedByEventsLocked(pInfo *framework.QueuedPodInfo, from int) bool {
	if p.eventsOverflow {
		return true
	}
	for i := from; i < len(p.events); i++ {
		e := &p.events[i]
		if p.worthRequeuing(pInfo, e.event, e.oldObj, e.newObj) {
			return true
		}
	}
	return false
}

// worthRequeuing asks the plugins that rejected the pod whether the event
// may help it.
func (p *PriorityQueue) worthRequeuing(pInfo *framework.QueuedPodInfo, event framework.ClusterEvent, oldObj, newObj any) bool {
	if event.Resource == framework.WildCard || len(pInfo.UnschedulablePlugins) == 0 {
		return true
	}
	for plugin := range pInfo.UnschedulablePlugins {
		hints, ok := p.hints[plugin]
		if !ok {
			return true
		}
		for _, h := range hints {
			if !h.Event.Match(event) {
				continue
			}
			if h.QueueingHintFn == nil {
				return true
			}
			hint, err := h.QueueingHintFn(p.log, pInfo.Pod, oldObj, newObj)
			if err != nil {
				p.log.Debug("queueing hint failed; requeuing", "plugin", plugin, "pod", pInfo.Pod.Namespace+"/"+pInfo.Pod.Name, "err", err)
				return true
			}
			if hint == framework.Queue {
				return true
			}
		}
	}
	return false
}

// requeueLocked moves a pod out of the unschedulable pods: to backoffQ
// while its backoff runs, else to activeQ.
func (p *PriorityQueue) requeueLocked(pInfo *framework.QueuedPodInfo) {
	key := framework.PodKey(pInfo.Pod)
	if pInfo.BackoffExpiration.After(p.now()) {
		delete(p.unschedulable, key)
		p.backoffQ.AddOrUpdate(pInfo)
		return
	}
	p.moveToActiveQ(pInfo)
}

// Update replaces a pending pod. A pod waiting among the unschedulable
// pods is requeued when its spec or labels changed, since that may make
// it fit.
func (p *PriorityQueue) Update(oldPod, newPod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updateLocked(oldPod, newPod)
}

func (p *PriorityQueue) updateLocked(oldPod, newPod *v1.Pod) {
	key := framework.PodKey(newPod)
	if f, ok := p.inFlight[key]; ok {
		f.updated = true
	}
	if pInfo, ok := p.activeQ.Get(key); ok {
		pInfo.PodInfo = framework.NewPodInfo(newPod)
		p.activeQ.AddOrUpdate(pInfo)
		return
	}
	if pInfo, ok := p.backoffQ.Get(key); ok {
		pInfo.PodInfo = framework.NewPodInfo(newPod)
		p.backoffQ.AddOrUpdate(pInfo)
		return
	}
	if pInfo, ok := p.unschedulable[key]; ok {
		pInfo.PodInfo = framework.NewPodInfo(newPod)
		if oldPod == nil || podChanged(oldPod, newPod) {
			if pInfo.Gated {
				p.moveToActiveQ(pInfo)
				return
			}
			p.requeueLocked(pInfo)
		}
		return
	}
	if _, ok := p.inFlight[key]; ok {
		// Being scheduled; the failure handler requeues it if needed.
		return
	}
	p.moveToActiveQ(p.newQueuedPodInfo(newPod))
}

// podChanged reports whether anything but status and bookkeeping metadata
// changed.
func podChanged(oldPod, newPod *v1.Pod) bool {
	strip := func(p *v1.Pod) *v1.Pod {
		c := *p
		c.ResourceVersion = ""
		c.Generation = 0
		c.ManagedFields = nil
		c.Status = v1.PodStatus{}
		return &c
	}
	return !reflect.DeepEqual(strip(oldPod), strip(newPod))
}

// Delete removes a pod from the queue.
func (p *PriorityQueue) Delete(pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := framework.PodKey(pod)
	p.activeQ.Delete(key)
	p.backoffQ.Delete(key)
	delete(p.unschedulable, key)
}

// MoveAllToActiveOrBackoffQueue requeues the unschedulable pods that the
// event may help. preCheck, when not nil, must also accept the pod.
func (p *PriorityQueue) MoveAllToActiveOrBackoffQueue(event framework.ClusterEvent, oldObj, newObj any, preCheck func(*v1.Pod) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inFlight) > 0 {
		if len(p.events) < maxInFlightEvents {
			p.events = append(p.events, recordedEvent{event: event, oldObj: oldObj, newObj: newObj})
		} else {
			p.eventsOverflow = true
		}
	}
	if len(p.unschedulable) == 0 {
		return
	}
	var move []*framework.QueuedPodInfo
	for _, pInfo := range p.unschedulable {
		if pInfo.Gated {
			continue
		}
		if preCheck != nil && !preCheck(pInfo.Pod) {
			continue
		}
		if p.worthRequeuing(pInfo, event, oldObj, newObj) {
			move = append(move, pInfo)
		}
	}
	for _, pInfo := range move {
		p.requeueLocked(pInfo)
	}
	if len(move) > 0 {
		p.log.Debug("pods moved back to the queue", "event", event.Label, "pods", len(move))
	}
}

// FlushBackoffQCompleted moves pods whose backoff has passed to activeQ.
func (p *PriorityQueue) FlushBackoffQCompleted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for {
		pInfo := p.backoffQ.Peek()
		if pInfo == nil || pInfo.BackoffExpiration.After(now) {
			return
		}
		p.backoffQ.Pop()
		p.moveToActiveQ(pInfo)
	}
}

// FlushUnschedulableLeftover retries pods that waited among the
// unschedulable pods longer than the maximum.
func (p *PriorityQueue) FlushUnschedulableLeftover() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var move []*framework.QueuedPodInfo
	for _, pInfo := range p.unschedulable {
		if !pInfo.Gated && now.Sub(pInfo.Timestamp) > p.maxInUnschedulable {
			move = append(move, pInfo)
		}
	}
	for _, pInfo := range move {
		p.requeueLocked(pInfo)
	}
}

// Lens returns the sizes of activeQ, backoffQ and the unschedulable pods
// (gated pods included).
func (p *PriorityQueue) Lens() (active, backoff, unschedulable int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.activeQ.Len(), p.backoffQ.Len(), len(p.unschedulable)
}

// Where tells which part of the queue holds a pod: "active", "backoff",
// "unschedulable", "gated", or "" when absent. For tests and debugging.
func (p *PriorityQueue) Where(pod *v1.Pod) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := framework.PodKey(pod)
	if _, ok := p.activeQ.Get(key); ok {
		return "active"
	}
	if _, ok := p.backoffQ.Get(key); ok {
		return "backoff"
	}
	if pInfo, ok := p.unschedulable[key]; ok {
		if pInfo.Gated {
			return "gated"
		}
		return "unschedulable"
	}
	return ""
}

// PendingPods returns the pods in the queue.
func (p *PriorityQueue) PendingPods() []*v1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*v1.Pod
	for _, pi := range p.activeQ.List() {
		out = append(out, pi.Pod)
	}
	for _, pi := range p.backoffQ.List() {
		out = append(out, pi.Pod)
	}
	for _, pi := range p.unschedulable {
		out = append(out, pi.Pod)
	}
	return out
}

// LensByKind returns the sizes of activeQ and backoffQ and the numbers of
// unschedulable and gated pods.
func (p *PriorityQueue) LensByKind() (active, backoff, unschedulable, gated int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pi := range p.unschedulable {
		if pi.Gated {
			gated++
		}
	}
	return p.activeQ.Len(), p.backoffQ.Len(), len(p.unschedulable) - gated, gated
}
