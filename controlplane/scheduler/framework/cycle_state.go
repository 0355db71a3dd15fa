package framework

import (
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
)

// ErrNotFound is returned by CycleState.Read for a key nobody wrote.
var ErrNotFound = errors.New("not found")

// StateKey names one plugin's data in a CycleState.
type StateKey string

// StateData is what a plugin keeps in the CycleState between extension
// points of one scheduling cycle.
type StateData interface {
	// Clone returns a copy that can be changed without changing the
	// original; data that is never changed after PreFilter may return itself.
	Clone() StateData
}

// CycleState carries plugin data through one scheduling cycle of one pod.
//
// It is not locked: plugins write to it only in the extension points that run
// once per cycle (PreFilter, PreScore, Reserve, Permit), and read it from
// Filter and Score, which may run in parallel but never write.
type CycleState struct {
	// storage is a short list searched linearly: a handful of plugins
	// write to it, and comparing constant keys is cheaper than hashing
	// them on every Filter call.
	storage []stateEntry

	// SkipFilterPlugins holds the plugins whose PreFilter returned Skip;
	// SkipScorePlugins those whose PreScore returned Skip.
	SkipFilterPlugins map[string]struct{}
	SkipScorePlugins  map[string]struct{}

	// filterPlugins and scorePlugins are the plugins left after the skips,
	// computed once per cycle by the runtime so that the per-node loops do
	// no set lookups.
	filterPlugins []FilterPlugin
	scorePlugins  []int

	// podInfo is the scheduled pod's PodInfo, parsed once when it was
	// queued.
	podInfo *PodInfo
}

// SetPodInfo records the PodInfo of the pod being scheduled.
func (c *CycleState) SetPodInfo(pi *PodInfo) { c.podInfo = pi }

// PodInfo returns the PodInfo of pod: the one recorded for the cycle when
// it is for the same object, otherwise a freshly parsed one.
func (c *CycleState) PodInfo(pod *v1.Pod) *PodInfo {
	if c != nil && c.podInfo != nil && c.podInfo.Pod == pod {
		return c.podInfo
	}
	return NewPodInfo(pod)
}

// SetActiveFilterPlugins records the Filter plugins to run for this cycle.
func (c *CycleState) SetActiveFilterPlugins(p []FilterPlugin) { c.filterPlugins = p }

// ActiveFilterPlugins returns them; nil when not recorded.
func (c *CycleState) ActiveFilterPlugins() []FilterPlugin { return c.filterPlugins }

// SetActiveScorePlugins records the indexes of the Score plugins to run.
func (c *CycleState) SetActiveScorePlugins(idx []int) { c.scorePlugins = idx }

// ActiveScorePlugins returns them; nil when not recorded.
func (c *CycleState) ActiveScorePlugins() []int { return c.scorePlugins }

type stateEntry struct {
	key  StateKey
	data StateData
}

// NewCycleState returns an empty CycleState.
func NewCycleState() *CycleState {
	return &CycleState{storage: make([]stateEntry, 0, 12)}
}

// Read returns the data stored under key, or ErrNotFound.
func (c *CycleState) Read(key StateKey) (StateData, error) {
	for i := range c.storage {
		if c.storage[i].key == key {
			return c.storage[i].data, nil
		}
	}
	return nil, fmt.Errorf("read %q: %w", key, ErrNotFound)
}

// Write stores data under key.
func (c *CycleState) Write(key StateKey, data StateData) {
	for i := range c.storage {
		if c.storage[i].key == key {
			c.storage[i].data = data
			return
		}
	}
	c.storage = append(c.storage, stateEntry{key: key, data: data})
}

// Delete removes key.
func (c *CycleState) Delete(key StateKey) {
	for i := range c.storage {
		if c.storage[i].key == key {
			c.storage = append(c.storage[:i], c.storage[i+1:]...)
			return
		}
	}
}

// Clone returns a copy whose entries are the entries' clones. It is used
// where plugins simulate changes to the cluster (nominated pods, preemption)
// without affecting the cycle's state.
func (c *CycleState) Clone() *CycleState {
	if c == nil {
		return nil
	}
	out := &CycleState{storage: make([]stateEntry, len(c.storage), cap(c.storage))}
	for i, e := range c.storage {
		out.storage[i].key = e.key
		if e.data != nil {
			out.storage[i].data = e.data.Clone()
		}
	}
	out.SkipFilterPlugins = c.SkipFilterPlugins
	out.SkipScorePlugins = c.SkipScorePlugins
	out.filterPlugins = c.filterPlugins
	out.scorePlugins = c.scorePlugins
	out.podInfo = c.podInfo
	return out
}
