package interpodaffinity

import (
	"context"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Hostname-scoped terms are decided per node. Checking a node means
// matching the terms against the labels of each pod on it, which is a chain
// of cache misses per pod: it dominated the scheduler's profile with
// anti-affinity. The structures here keep, across cycles and per node (by
// NodeInfo.Index), how many pods match a set of terms, following the
// snapshot's change log so that each cycle recomputes only the nodes that
// changed. A cycle then copies the counts it needs, and Filter reads one
// integer per node.

// maxHostCounts bounds the term sets whose counts are kept.
const maxHostCounts = 16

// hostCounts counts, per node, the pods that match any of a set of terms
// (anti-affinity) or all of them (affinity).
type hostCounts struct {
	terms    []framework.AffinityTerm
	all      bool
	token    framework.ChangeToken
	counts   []int32
	total    int64
	lastUsed uint64
}

func (h *hostCounts) countNode(ni *framework.NodeInfo) int32 {
	var n int32
	for _, p := range ni.Pods {
		if h.all {
			if podMatchesAllAffinityTerms(h.terms, p.Pod) {
				n++
			}
		} else if podMatchesAnyAffinityTerm(h.terms, p.Pod) {
			n++
		}
	}
	return n
}

func (h *hostCounts) update(ctx context.Context, par framework.Parallelizer, lister framework.NodeInfoLister) {
	nodes := lister.List()
	changed, all, next := lister.Changes(h.token)
	h.token = next
	if all || len(nodes) != len(h.counts) {
		h.counts = make([]int32, len(nodes))
		par.Until(ctx, len(nodes), func(i int) { h.counts[i] = h.countNode(nodes[i]) })
		h.total = 0
		for _, c := range h.counts {
			h.total += int64(c)
		}
		return
	}
	for _, i := range changed {
		c := h.countNode(nodes[i])
		h.total += int64(c - h.counts[i])
		h.counts[i] = c
	}
}

// hostCountCaches is a small LRU of hostCounts by the signature of their
// terms.
type hostCountCaches struct {
	mu      sync.Mutex
	tick    uint64
	entries map[string]*hostCounts
}

// counts returns a copy of the per-node counts of pods matching the terms
// (all of them when all is set, else any) and their total.
func (hc *hostCountCaches) counts(ctx context.Context, par framework.Parallelizer, lister framework.NodeInfoLister, terms []framework.AffinityTerm, all bool) ([]int32, int64) {
	var b strings.Builder
	if all {
		b.WriteString("all")
	} else {
		b.WriteString("any")
	}
	for i := range terms {
		b.WriteByte(1)
		b.WriteString(terms[i].Signature())
	}
	key := b.String()
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.tick++
	h, ok := hc.entries[key]
	if !ok {
		if len(hc.entries) >= maxHostCounts {
			var oldestKey string
			var oldest uint64
			for k, e := range hc.entries {
				if oldestKey == "" || e.lastUsed < oldest {
					oldestKey, oldest = k, e.lastUsed
				}
			}
			delete(hc.entries, oldestKey)
		}
		h = &hostCounts{terms: terms, all: all}
		hc.entries[key] = h
	}
	h.lastUsed = hc.tick
	h.update(ctx, par, lister)
	return append([]int32(nil), h.counts...), h.total
}

// antiEntry is one distinct hostname anti-affinity term held by existing
// pods, with the nodes (by index) where such pods run.
type antiEntry struct {
	key   string
	term  framework.AffinityTerm
	nodes map[int32]int32
}

// existingAntiIndex indexes the hostname anti-affinity terms of the pods in
// the snapshot by their signature.
type existingAntiIndex struct {
	mu      sync.Mutex
	token   framework.ChangeToken
	entries map[string]*antiEntry
	// perNode lists, by node index, the entries the node's pods hold.
	perNode [][]*antiEntry
}

func (x *existingAntiIndex) add(ni *framework.NodeInfo) {
	i := ni.Index
	for _, p := range ni.PodsWithRequiredAntiAffinity {
		for j := range p.RequiredAntiAffinityTerms {
			t := &p.RequiredAntiAffinityTerms[j]
			if t.TopologyKey != v1.LabelHostname {
				continue
			}
			key := t.Signature()
			e, ok := x.entries[key]
			if !ok {
				e = &antiEntry{key: key, term: *t, nodes: make(map[int32]int32)}
				x.entries[key] = e
			}
			e.nodes[i]++
			x.perNode[i] = append(x.perNode[i], e)
		}
	}
}

func (x *existingAntiIndex) remove(i int32) {
	for _, e := range x.perNode[i] {
		if e.nodes[i]--; e.nodes[i] <= 0 {
			delete(e.nodes, i)
			if len(e.nodes) == 0 {
				delete(x.entries, e.key)
			}
		}
	}
	clear(x.perNode[i])
	x.perNode[i] = x.perNode[i][:0]
}

// matching returns, per node, how many pods have a hostname anti-affinity
// term that the incoming pod matches; nil when none does.
func (x *existingAntiIndex) matching(lister framework.NodeInfoLister, pod *v1.Pod, nsLabels map[string]string) []int32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	nodes := lister.List()
	changed, all, next := lister.Changes(x.token)
	x.token = next
	if all || len(nodes) != len(x.perNode) {
		x.entries = make(map[string]*antiEntry)
		x.perNode = make([][]*antiEntry, len(nodes))
		for _, ni := range lister.HavePodsWithRequiredAntiAffinityList() {
			if ni.Index >= 0 && int(ni.Index) < len(nodes) {
				x.add(ni)
			}
		}
	} else {
		for _, i := range changed {
			x.remove(i)
			x.add(nodes[i])
		}
	}
	var out []int32
	for _, e := range x.entries {
		if !e.term.Matches(pod, nsLabels) {
			continue
		}
		if out == nil {
			out = make([]int32, len(nodes))
		}
		for i, c := range e.nodes {
			out[i] += c
		}
	}
	return out
}
