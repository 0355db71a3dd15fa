package queue

import (
	"container/heap"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// podHeap is a heap of queued pods with lookup by pod key.
type podHeap struct {
	items []*framework.QueuedPodInfo
	index map[string]int
	less  func(a, b *framework.QueuedPodInfo) bool
}

func newPodHeap(less func(a, b *framework.QueuedPodInfo) bool) *podHeap {
	return &podHeap{index: make(map[string]int), less: less}
}

// heap.Interface, on the unexported side.
type heapImpl struct{ h *podHeap }

func (x heapImpl) Len() int           { return len(x.h.items) }
func (x heapImpl) Less(i, j int) bool { return x.h.less(x.h.items[i], x.h.items[j]) }
func (x heapImpl) Swap(i, j int) {
	h := x.h
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[framework.PodKey(h.items[i].Pod)] = i
	h.index[framework.PodKey(h.items[j].Pod)] = j
}
func (x heapImpl) Push(v any) {
	h := x.h
	p := v.(*framework.QueuedPodInfo)
	h.index[framework.PodKey(p.Pod)] = len(h.items)
	h.items = append(h.items, p)
}
func (x heapImpl) Pop() any {
	h := x.h
	n := len(h.items) - 1
	p := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	delete(h.index, framework.PodKey(p.Pod))
	return p
}

func (h *podHeap) Len() int { return len(h.items) }

// AddOrUpdate inserts p, or replaces the entry with the same key.
func (h *podHeap) AddOrUpdate(p *framework.QueuedPodInfo) {
	key := framework.PodKey(p.Pod)
	if i, ok := h.index[key]; ok {
		h.items[i] = p
		heap.Fix(heapImpl{h}, i)
		return
	}
	heap.Push(heapImpl{h}, p)
}

// Get returns the entry with key.
func (h *podHeap) Get(key string) (*framework.QueuedPodInfo, bool) {
	i, ok := h.index[key]
	if !ok {
		return nil, false
	}
	return h.items[i], true
}

// Delete removes the entry with key.
func (h *podHeap) Delete(key string) (*framework.QueuedPodInfo, bool) {
	i, ok := h.index[key]
	if !ok {
		return nil, false
	}
	return heap.Remove(heapImpl{h}, i).(*framework.QueuedPodInfo), true
}

// Peek returns the first entry.
func (h *podHeap) Peek() *framework.QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

// Pop removes and returns the first entry.
func (h *podHeap) Pop() *framework.QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return heap.Pop(heapImpl{h}).(*framework.QueuedPodInfo)
}

// List returns the entries in no particular order.
func (h *podHeap) List() []*framework.QueuedPodInfo {
	return append([]*framework.QueuedPodInfo(nil), h.items...)
}
