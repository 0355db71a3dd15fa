package interpodaffinity

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const preFilterStateKey framework.StateKey = "PreFilter" + Name

// Rejection reasons, as upstream.
const (
	ErrReasonExistingAntiAffinityRulesNotMatch = "node(s) didn't satisfy existing pods anti-affinity rules"
	ErrReasonAffinityRulesNotMatch             = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinityRulesNotMatch         = "node(s) didn't match pod anti-affinity rules"
)

type topologyPair struct {
	key   string
	value string
}

// topologyToMatchedTermCount counts matching pods per topology domain.
type topologyToMatchedTermCount map[topologyPair]int64

func (m topologyToMatchedTermCount) update(node *v1.Node, key string, delta int64) {
	if v, ok := node.Labels[key]; ok {
		p := topologyPair{key: key, value: v}
		m[p] += delta
		if m[p] == 0 {
			delete(m, p)
		}
	}
}

func (m topologyToMatchedTermCount) clone() topologyToMatchedTermCount {
	out := make(topologyToMatchedTermCount, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type preFilterState struct {
	podInfo         *framework.PodInfo
	namespaceLabels labels.Set

	// requiredAffinity and requiredAnti are the incoming pod's terms with
	// namespace selectors resolved.
	requiredAffinity []framework.AffinityTerm
	requiredAnti     []framework.AffinityTerm

	// Terms whose topology key is the hostname are checked against the
	// node's own pods; the others against per-domain counts. Affinity
	// terms are host-scoped only when all of them are.
	hostScopedAffinity []framework.AffinityTerm
	clusterAffinity    []framework.AffinityTerm
	hostScopedAnti     []framework.AffinityTerm
	clusterAnti        []framework.AffinityTerm

	// existingAntiCounts counts, per domain, existing pods whose
	// non-hostname required anti-affinity terms match the incoming pod.
	existingAntiCounts topologyToMatchedTermCount
	// affinityCounts and antiCounts count, per domain, existing pods
	// matching the incoming pod's cluster-wide terms.
	affinityCounts topologyToMatchedTermCount
	antiCounts     topologyToMatchedTermCount
	// hostScopedAffinityMatches counts pods anywhere matching all the
	// host-scoped affinity terms (for the first-pod exception).
	hostScopedAffinityMatches int64

	// Per node (by NodeInfo.Index): pods matching all host-scoped affinity
	// terms, pods matching any host-scoped anti-affinity term, and pods
	// whose hostname anti-affinity terms match the incoming pod. nil when
	// there is nothing to count; indexed says whether the last one was
	// computed (nil then means "none").
	hostAffinityCounts []int32
	hostAntiCounts     []int32
	existingHostAnti   []int32
	indexed            bool
	numNodes           int
}

func countAt(counts []int32, ni *framework.NodeInfo) (int32, bool) {
	if i := ni.Index; i >= 0 && int(i) < len(counts) {
		return counts[i], true
	}
	return 0, false
}

func addAt(counts []int32, ni *framework.NodeInfo, delta int32) {
	if i := ni.Index; i >= 0 && int(i) < len(counts) {
		counts[i] += delta
	}
}

// Clone implements framework.StateData.
func (s *preFilterState) Clone() framework.StateData {
	if s == nil {
		return nil
	}
	c := *s
	c.existingAntiCounts = s.existingAntiCounts.clone()
	c.affinityCounts = s.affinityCounts.clone()
	c.antiCounts = s.antiCounts.clone()
	c.hostAffinityCounts = append([]int32(nil), s.hostAffinityCounts...)
	c.hostAntiCounts = append([]int32(nil), s.hostAntiCounts...)
	c.existingHostAnti = append([]int32(nil), s.existingHostAnti...)
	return &c
}

// updateWithPod adds (delta 1) or removes (-1) an existing pod.
func (s *preFilterState) updateWithPod(pi *framework.PodInfo, ni *framework.NodeInfo, delta int64) {
	node := ni.Node()
	if s == nil || node == nil {
		return
	}
	incoming := s.podInfo.Pod
	for i := range pi.RequiredAntiAffinityTerms {
		t := &pi.RequiredAntiAffinityTerms[i]
		if !t.Matches(incoming, s.namespaceLabels) {
			continue
		}
		if t.TopologyKey != v1.LabelHostname {
			s.existingAntiCounts.update(node, t.TopologyKey, delta)
		} else if s.indexed {
			if s.existingHostAnti == nil {
				s.existingHostAnti = make([]int32, s.numNodes)
			}
			addAt(s.existingHostAnti, ni, int32(delta))
		}
	}
	if len(s.hostScopedAnti) > 0 && podMatchesAnyAffinityTerm(s.hostScopedAnti, pi.Pod) {
		addAt(s.hostAntiCounts, ni, int32(delta))
	}
	if podMatchesAllAffinityTerms(s.clusterAffinity, pi.Pod) {
		for _, t := range s.clusterAffinity {
			s.affinityCounts.update(node, t.TopologyKey, delta)
		}
	}
	for i := range s.clusterAnti {
		if s.clusterAnti[i].Matches(pi.Pod, nil) {
			s.antiCounts.update(node, s.clusterAnti[i].TopologyKey, delta)
		}
	}
	if len(s.hostScopedAffinity) > 0 && podMatchesAllAffinityTerms(s.hostScopedAffinity, pi.Pod) {
		s.hostScopedAffinityMatches += delta
		addAt(s.hostAffinityCounts, ni, int32(delta))
	}
}

// PreFilter implements framework.PreFilterPlugin.
func (pl *InterPodAffinity) PreFilter(ctx context.Context, state *framework.CycleState, pod *v1.Pod, allNodes []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	lister := pl.sharedLister.NodeInfos()
	withAnti := lister.HavePodsWithRequiredAntiAffinityList()
	withNonHostAnti := lister.HavePodsWithNonHostnameRequiredAntiAffinityList()
	podHasTerms := pod.Spec.Affinity != nil && (pod.Spec.Affinity.PodAffinity != nil || pod.Spec.Affinity.PodAntiAffinity != nil)
	if !podHasTerms && len(withAnti) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}

	s := &preFilterState{}
	if podHasTerms {
		s.podInfo = state.PodInfo(pod)
		if s.podInfo.ParseErr != nil {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("parsing pod: %+v", s.podInfo.ParseErr))
		}
	} else {
		s.podInfo = &framework.PodInfo{Pod: pod}
	}
	var err error
	if s.requiredAffinity, err = pl.mergeNamespaces(s.podInfo.RequiredAffinityTerms); err != nil {
		return nil, framework.AsStatus(err)
	}
	if s.requiredAnti, err = pl.mergeNamespaces(s.podInfo.RequiredAntiAffinityTerms); err != nil {
		return nil, framework.AsStatus(err)
	}
	s.namespaceLabels = pl.namespaceLabels(pod.Namespace)

	allHostScoped := true
	for _, t := range s.requiredAffinity {
		if t.TopologyKey != v1.LabelHostname {
			allHostScoped = false
			break
		}
	}
	if allHostScoped {
		s.hostScopedAffinity = s.requiredAffinity
	} else {
		s.clusterAffinity = s.requiredAffinity
	}
	for _, t := range s.requiredAnti {
		if t.TopologyKey == v1.LabelHostname {
			s.hostScopedAnti = append(s.hostScopedAnti, t)
		} else {
			s.clusterAnti = append(s.clusterAnti, t)
		}
	}

	s.existingAntiCounts = pl.existingAntiAffinityCounts(ctx, pod, s.namespaceLabels, withNonHostAnti)
	if len(withAnti) > 0 {
		s.existingHostAnti = pl.existing.matching(lister, pod, s.namespaceLabels)
	}
	s.indexed, s.numNodes = true, len(allNodes)
	s.affinityCounts, s.antiCounts = pl.incomingCounts(ctx, s.clusterAffinity, s.clusterAnti, allNodes)
	if len(s.hostScopedAffinity) > 0 {
		s.hostAffinityCounts, s.hostScopedAffinityMatches = pl.hostCounts.counts(ctx, pl.parallelizer, lister, s.hostScopedAffinity, true)
	}
	if len(s.hostScopedAnti) > 0 {
		s.hostAntiCounts, _ = pl.hostCounts.counts(ctx, pl.parallelizer, lister, s.hostScopedAnti, false)
	}

	if len(s.existingAntiCounts) == 0 && s.existingHostAnti == nil && len(s.requiredAffinity) == 0 && len(s.requiredAnti) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterStateKey, s)
	return nil, nil
}

// existingAntiAffinityCounts counts, per domain, the existing pods whose
// non-hostname required anti-affinity terms match the incoming pod.
func (pl *InterPodAffinity) existingAntiAffinityCounts(ctx context.Context, pod *v1.Pod, nsLabels labels.Set, nodes []*framework.NodeInfo) topologyToMatchedTermCount {
	result := make(topologyToMatchedTermCount)
	if len(nodes) == 0 {
		return result
	}
	var mu sync.Mutex
	pl.parallelizer.Until(ctx, len(nodes), func(i int) {
		ni := nodes[i]
		node := ni.Node()
		var local topologyToMatchedTermCount
		for _, existing := range ni.PodsWithRequiredAntiAffinity {
			for j := range existing.RequiredAntiAffinityTerms {
				t := &existing.RequiredAntiAffinityTerms[j]
				if t.TopologyKey == v1.LabelHostname {
					continue
				}
				if t.Matches(pod, nsLabels) {
					if local == nil {
						local = make(topologyToMatchedTermCount)
					}
					local.update(node, t.TopologyKey, 1)
				}
			}
		}
		if len(local) > 0 {
			mu.Lock()
			for k, v := range local {
				result[k] += v
			}
			mu.Unlock()
		}
	})
	return result
}

// incomingCounts counts, per domain, the existing pods that match all the
// incoming pod's cluster-wide affinity terms, and those matching each of
// its cluster-wide anti-affinity terms.
func (pl *InterPodAffinity) incomingCounts(ctx context.Context, affinity, anti []framework.AffinityTerm, nodes []*framework.NodeInfo) (topologyToMatchedTermCount, topologyToMatchedTermCount) {
	affinityCounts := make(topologyToMatchedTermCount)
	antiCounts := make(topologyToMatchedTermCount)
	if len(affinity) == 0 && len(anti) == 0 {
		return affinityCounts, antiCounts
	}
	var mu sync.Mutex
	pl.parallelizer.Until(ctx, len(nodes), func(i int) {
		ni := nodes[i]
		node := ni.Node()
		var aff, an topologyToMatchedTermCount
		for _, existing := range ni.Pods {
			if podMatchesAllAffinityTerms(affinity, existing.Pod) {
				if aff == nil {
					aff = make(topologyToMatchedTermCount)
				}
				for _, t := range affinity {
					aff.update(node, t.TopologyKey, 1)
				}
			}
			for j := range anti {
				if anti[j].Matches(existing.Pod, nil) {
					if an == nil {
						an = make(topologyToMatchedTermCount)
					}
					an.update(node, anti[j].TopologyKey, 1)
				}
			}
		}
		if len(aff) > 0 || len(an) > 0 {
			mu.Lock()
			for k, v := range aff {
				affinityCounts[k] += v
			}
			for k, v := range an {
				antiCounts[k] += v
			}
			mu.Unlock()
		}
	})
	return affinityCounts, antiCounts
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (pl *InterPodAffinity) PreFilterExtensions() framework.PreFilterExtensions { return pl }

// AddPod implements framework.PreFilterExtensions.
func (pl *InterPodAffinity) AddPod(_ context.Context, state *framework.CycleState, _ *v1.Pod, podInfoToAdd *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	s.updateWithPod(podInfoToAdd, nodeInfo, 1)
	return nil
}

// RemovePod implements framework.PreFilterExtensions.
func (pl *InterPodAffinity) RemovePod(_ context.Context, state *framework.CycleState, _ *v1.Pod, podInfoToRemove *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	s.updateWithPod(podInfoToRemove, nodeInfo, -1)
	return nil
}

func getPreFilterState(state *framework.CycleState) (*preFilterState, error) {
	d, err := state.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("read prefilter state: %w", err)
	}
	s, ok := d.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to interpodaffinity.preFilterState error", d)
	}
	return s, nil
}

// Filter implements framework.FilterPlugin.
func (pl *InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, _ *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(s.hostScopedAffinity) > 0 {
		if !nodePodsSatisfyAffinity(s, nodeInfo) {
			return pl.affinityMismatch
		}
	} else if len(s.clusterAffinity) > 0 {
		if !nodeTopologyMatchesAffinity(s, nodeInfo) {
			return pl.affinityMismatch
		}
	}
	if nodeTopologyConflictsWithAntiAffinity(s, nodeInfo) || nodePodsConflictWithAntiAffinity(s, nodeInfo) {
		return pl.antiAffinityMismatch
	}
	if !satisfyExistingPodsAntiAffinity(s, nodeInfo) {
		return pl.existingAntiAffinityMismatch
	}
	return nil
}

// satisfyExistingPodsAntiAffinity checks existing pods' anti-affinity
// against the incoming pod: per-domain counts for non-hostname terms, the
// node's own pods for hostname terms.
func satisfyExistingPodsAntiAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	node := ni.Node()
	if len(s.existingAntiCounts) > 0 {
		for k, v := range node.Labels {
			if s.existingAntiCounts[topologyPair{key: k, value: v}] > 0 {
				return false
			}
		}
	}
	if _, ok := node.Labels[v1.LabelHostname]; ok {
		if n, ok := countAt(s.existingHostAnti, ni); ok {
			return n <= 0
		}
		if s.indexed && s.existingHostAnti == nil {
			return true
		}
		incoming := s.podInfo.Pod
		for _, existing := range ni.PodsWithRequiredAntiAffinity {
			for j := range existing.RequiredAntiAffinityTerms {
				t := &existing.RequiredAntiAffinityTerms[j]
				if t.TopologyKey == v1.LabelHostname && t.Matches(incoming, s.namespaceLabels) {
					return false
				}
			}
		}
	}
	return true
}

// nodeTopologyConflictsWithAntiAffinity: a domain of the node holds pods
// matching one of the incoming pod's cluster-wide anti-affinity terms.
func nodeTopologyConflictsWithAntiAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	if len(s.antiCounts) == 0 {
		return false
	}
	labels := ni.Node().Labels
	for _, t := range s.clusterAnti {
		if v, ok := labels[t.TopologyKey]; ok && s.antiCounts[topologyPair{key: t.TopologyKey, value: v}] > 0 {
			return true
		}
	}
	return false
}

// nodePodsConflictWithAntiAffinity: a pod on the node matches one of the
// incoming pod's hostname anti-affinity terms.
func nodePodsConflictWithAntiAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	if len(s.hostScopedAnti) == 0 {
		return false
	}
	if _, ok := ni.Node().Labels[v1.LabelHostname]; !ok {
		return false
	}
	if n, ok := countAt(s.hostAntiCounts, ni); ok {
		return n > 0
	}
	for _, existing := range ni.Pods {
		for j := range s.hostScopedAnti {
			if s.hostScopedAnti[j].Matches(existing.Pod, nil) {
				return true
			}
		}
	}
	return false
}

// nodePodsSatisfyAffinity: a pod on the node matches all the incoming pod's
// hostname affinity terms, or the first-pod exception applies.
func nodePodsSatisfyAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	if _, ok := ni.Node().Labels[v1.LabelHostname]; !ok {
		return false
	}
	if n, ok := countAt(s.hostAffinityCounts, ni); ok {
		if n > 0 {
			return true
		}
	} else {
		for _, existing := range ni.Pods {
			if podMatchesAllAffinityTerms(s.hostScopedAffinity, existing.Pod) {
				return true
			}
		}
	}
	return satisfiesSelfAffinity(s, ni)
}

// nodeTopologyMatchesAffinity: every cluster-wide affinity term has
// matching pods in the node's domain, or the first-pod exception applies.
func nodeTopologyMatchesAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	labels := ni.Node().Labels
	podsExist := true
	for _, t := range s.clusterAffinity {
		v, ok := labels[t.TopologyKey]
		if !ok {
			return false
		}
		if s.affinityCounts[topologyPair{key: t.TopologyKey, value: v}] <= 0 {
			podsExist = false
		}
	}
	if podsExist {
		return true
	}
	return len(s.affinityCounts) == 0 && satisfiesSelfAffinity(s, ni)
}

// satisfiesSelfAffinity is the first-pod exception: when no pod anywhere
// matches the affinity terms but the incoming pod matches them itself, it
// may go to any node that has the terms' topology keys.
func satisfiesSelfAffinity(s *preFilterState, ni *framework.NodeInfo) bool {
	if len(s.hostScopedAffinity) > 0 && s.hostScopedAffinityMatches > 0 {
		return false
	}
	if !podMatchesAllAffinityTerms(s.requiredAffinity, s.podInfo.Pod) {
		return false
	}
	labels := ni.Node().Labels
	for _, t := range s.requiredAffinity {
		if _, ok := labels[t.TopologyKey]; !ok {
			return false
		}
	}
	return true
}
