package framework

import (
	"context"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
)

// Plugin is the base of every plugin: a unique name.
type Plugin interface {
	Name() string
}

// QueueSortPlugin orders the active queue. Exactly one is enabled.
type QueueSortPlugin interface {
	Plugin
	// Less reports whether a should be scheduled before b.
	Less(a, b *QueuedPodInfo) bool
}

// PreEnqueuePlugin decides whether a pod may enter the active queue at all
// (scheduling gates).
type PreEnqueuePlugin interface {
	Plugin
	PreEnqueue(ctx context.Context, pod *v1.Pod) *Status
}

// PreFilterResult narrows the nodes a pod is filtered against. A nil result
// means all nodes.
type PreFilterResult struct {
	// NodeNames are the only nodes worth evaluating.
	NodeNames sets.Set[string]
}

// AllNodes reports whether the result keeps every node.
func (r *PreFilterResult) AllNodes() bool {
	return r == nil || r.NodeNames == nil
}

// Merge intersects two results.
func (r *PreFilterResult) Merge(o *PreFilterResult) *PreFilterResult {
	if r.AllNodes() && o.AllNodes() {
		return nil
	}
	if r.AllNodes() {
		return &PreFilterResult{NodeNames: o.NodeNames.Clone()}
	}
	if o.AllNodes() {
		return &PreFilterResult{NodeNames: r.NodeNames.Clone()}
	}
	return &PreFilterResult{NodeNames: r.NodeNames.Intersection(o.NodeNames)}
}

// PreFilterPlugin runs once per cycle before Filter, to compute state or to
// reject the pod outright. Returning Skip disables the plugin's Filter for
// the cycle.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *v1.Pod, nodes []*NodeInfo) (*PreFilterResult, *Status)
	// PreFilterExtensions returns the AddPod/RemovePod hooks, or nil.
	PreFilterExtensions() PreFilterExtensions
}

// PreFilterExtensions let a plugin update its PreFilter state when the
// framework simulates adding or removing a pod (nominated pods, preemption).
type PreFilterExtensions interface {
	AddPod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToAdd *PodInfo, nodeInfo *NodeInfo) *Status
	RemovePod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToRemove *PodInfo, nodeInfo *NodeInfo) *Status
}

// FilterPlugin rejects nodes that cannot run the pod. It runs for many nodes
// in parallel and must not write to the CycleState.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) *Status
}

// PostFilterResult is what a PostFilter plugin proposes.
type PostFilterResult struct {
	// NominatedNodeName is where the pod is expected to fit once victims
	// are gone; empty to clear a previous nomination.
	NominatedNodeName string
}

// PostFilterPlugin runs when no node fits (preemption).
type PostFilterPlugin interface {
	Plugin
	PostFilter(ctx context.Context, state *CycleState, pod *v1.Pod, statuses *NodeToStatus) (*PostFilterResult, *Status)
}

// PreScorePlugin runs once per cycle before Score over the feasible nodes.
// Returning Skip disables the plugin's Score for the cycle.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *v1.Pod, nodes []*NodeInfo) *Status
}

// NodeScore is a node's score.
type NodeScore struct {
	Name  string
	Score int64
}

// NodeScoreList is the scores of one plugin for the feasible nodes.
type NodeScoreList []NodeScore

// ScorePlugin ranks feasible nodes. Score runs for many nodes in parallel.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) (int64, *Status)
	// ScoreExtensions returns the NormalizeScore hook, or nil.
	ScoreExtensions() ScoreExtensions
}

// ScoreExtensions normalises a plugin's scores to [MinNodeScore,
// MaxNodeScore] once all nodes are scored.
type ScoreExtensions interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *v1.Pod, scores NodeScoreList) *Status
}

// ReservePlugin is told when a pod is assumed on a node (Reserve) and when
// that is undone (Unreserve, which must be idempotent).
type ReservePlugin interface {
	Plugin
	Reserve(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
	Unreserve(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string)
}

// PermitPlugin approves or rejects a reserved pod before binding. This
// framework supports Success and rejection; Wait is treated as an error.
type PermitPlugin interface {
	Plugin
	Permit(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) (*Status, time.Duration)
}

// PreBindPlugin runs in the binding cycle before Bind.
type PreBindPlugin interface {
	Plugin
	PreBind(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
}

// BindPlugin binds the pod to the node. Bind plugins run in order until one
// does not return Skip.
type BindPlugin interface {
	Plugin
	Bind(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
}

// PostBindPlugin is told after a successful bind.
type PostBindPlugin interface {
	Plugin
	PostBind(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string)
}

// QueueingHint is a plugin's verdict on whether a cluster event may make a
// pod it rejected schedulable.
type QueueingHint int

const (
	// QueueSkip: the event does not help the pod.
	QueueSkip QueueingHint = iota
	// Queue: the event may help; move the pod back to the queue.
	Queue
)

// QueueingHintFn decides for one pending pod and one event; oldObj and
// newObj are the event's objects (nil for adds or deletes respectively).
type QueueingHintFn func(log *slog.Logger, pod *v1.Pod, oldObj, newObj any) (QueueingHint, error)

// ClusterEventWithHint is an event a plugin registers, with an optional hint
// function (nil means Queue).
type ClusterEventWithHint struct {
	Event          ClusterEvent
	QueueingHintFn QueueingHintFn
}

// EnqueueExtensions lets a plugin say which cluster events may make a pod
// that it rejected schedulable; the queue moves the pod back only on those.
// A plugin without EnqueueExtensions is moved back by every event.
type EnqueueExtensions interface {
	Plugin
	EventsToRegister() []ClusterEventWithHint
}

// NodeInfoLister lists the NodeInfos of a snapshot.
type NodeInfoLister interface {
	// List returns all NodeInfos that have a node.
	List() []*NodeInfo
	// HavePodsWithAffinityList returns the NodeInfos with pods that have
	// pod affinity or anti-affinity.
	HavePodsWithAffinityList() []*NodeInfo
	// HavePodsWithRequiredAntiAffinityList returns the NodeInfos with pods
	// that have required anti-affinity.
	HavePodsWithRequiredAntiAffinityList() []*NodeInfo
	// HavePodsWithScoringAffinityList returns the NodeInfos with pods whose
	// terms score incoming pods.
	HavePodsWithScoringAffinityList() []*NodeInfo
	// HavePodsWithNonHostnameRequiredAntiAffinityList returns the
	// NodeInfos with pods that have a required anti-affinity term whose
	// topology key is not the hostname.
	HavePodsWithNonHostnameRequiredAntiAffinityList() []*NodeInfo
	// Get returns the NodeInfo of a node.
	Get(nodeName string) (*NodeInfo, error)
	// Changes tells a plugin that keeps per-node state across cycles
	// (indexed by NodeInfo.Index) which NodeInfos changed since it last
	// looked: their indexes, or all=true when it must recompute
	// everything (first call, nodes added or removed, or too many changes
	// since). The returned token is for the next call.
	Changes(since ChangeToken) (changed []int32, all bool, next ChangeToken)
}

// ChangeToken marks how far a plugin has followed the snapshot's changes;
// the zero token means "never".
type ChangeToken struct {
	valid       bool
	listVersion uint64
	seq         uint64
}

// NewChangeToken is for snapshot implementations.
func NewChangeToken(listVersion, seq uint64) ChangeToken {
	return ChangeToken{valid: true, listVersion: listVersion, seq: seq}
}

// Valid reports whether the token was returned by Changes.
func (t ChangeToken) Valid() bool { return t.valid }

// ListVersion and Seq are for snapshot implementations.
func (t ChangeToken) ListVersion() uint64 { return t.listVersion }

// Seq is the position in the snapshot's change log.
func (t ChangeToken) Seq() uint64 { return t.seq }

// SharedLister gives plugins read access to the cycle's snapshot.
type SharedLister interface {
	NodeInfos() NodeInfoLister
}

// Parallelizer runs work over many pieces on a fixed number of goroutines.
type Parallelizer interface {
	// Until calls fn for every piece in [0, pieces), in parallel, and
	// returns when all calls have returned or ctx is done.
	Until(ctx context.Context, pieces int, fn func(i int))
	// Workers is the number of goroutines.
	Workers() int
}

// Handle is what the framework gives plugins when it builds them.
type Handle interface {
	// SnapshotSharedLister is the snapshot of the current cycle.
	SnapshotSharedLister() SharedLister
	// Parallelizer runs per-node work in parallel.
	Parallelizer() Parallelizer
	// ClientSet talks to the API server.
	ClientSet() kubernetes.Interface
	// SharedInformerFactory gives listers (namespaces, ...).
	SharedInformerFactory() informers.SharedInformerFactory
	// EventRecorder records events.
	EventRecorder() events.EventRecorder
	// Log is the scheduler's logger.
	Log() *slog.Logger
}

// PluginFactory builds a plugin from its arguments (nil for defaults).
type PluginFactory func(ctx context.Context, args any, h Handle) (Plugin, error)

// QueuedPodInfo is a pod in the scheduling queue with its queueing state.
type QueuedPodInfo struct {
	*PodInfo
	// Timestamp is when the pod was last added to the queue.
	Timestamp time.Time
	// Attempts counts scheduling attempts.
	Attempts int
	// InitialAttemptTimestamp is when the pod was first popped, for the
	// end-to-end latency metric.
	InitialAttemptTimestamp *time.Time
	// UnschedulablePlugins are the plugins that rejected the pod in its
	// last attempt; only events those plugins registered move it back.
	UnschedulablePlugins sets.Set[string]
	// BackoffExpiration is when the pod leaves the backoff queue.
	BackoffExpiration time.Time
	// Gated is set while a PreEnqueue plugin keeps the pod out of the
	// active queue.
	Gated bool
	// GatingPlugin is the PreEnqueue plugin that gated the pod.
	GatingPlugin string
}

// DeepCopy copies the queueing state; the PodInfo is shared.
func (q *QueuedPodInfo) DeepCopy() *QueuedPodInfo {
	out := *q
	if q.UnschedulablePlugins != nil {
		out.UnschedulablePlugins = q.UnschedulablePlugins.Clone()
	}
	return &out
}
