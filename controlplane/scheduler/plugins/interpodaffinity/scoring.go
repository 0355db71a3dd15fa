package interpodaffinity

import (
	"context"
	"fmt"
	"math"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const preScoreStateKey framework.StateKey = "PreScore" + Name

// scoreMap is topology key -> value -> score.
type scoreMap map[string]map[string]int64

func (m scoreMap) processTerm(t *framework.AffinityTerm, weight int32, pod *v1.Pod, nsLabels labels.Set, node *v1.Node, multiplier int32) {
	if !t.Matches(pod, nsLabels) {
		return
	}
	v, ok := node.Labels[t.TopologyKey]
	if !ok {
		return
	}
	if m[t.TopologyKey] == nil {
		m[t.TopologyKey] = make(map[string]int64)
	}
	m[t.TopologyKey][v] += int64(weight * multiplier)
}

func (m scoreMap) processTerms(terms []framework.WeightedAffinityTerm, pod *v1.Pod, nsLabels labels.Set, node *v1.Node, multiplier int32) {
	for i := range terms {
		m.processTerm(&terms[i].AffinityTerm, terms[i].Weight, pod, nsLabels, node, multiplier)
	}
}

func (m scoreMap) add(o scoreMap) {
	for k, vs := range o {
		dst := m[k]
		if dst == nil {
			m[k] = vs
			continue
		}
		for v, s := range vs {
			dst[v] += s
		}
	}
}

type preScoreState struct {
	topologyScore scoreMap
}

func (s *preScoreState) Clone() framework.StateData { return s }

type scoringTerms struct {
	pod             *v1.Pod
	namespaceLabels labels.Set
	preferred       []framework.WeightedAffinityTerm
	preferredAnti   []framework.WeightedAffinityTerm
}

// processExistingPod adds what one existing pod contributes to its node's
// domains: the incoming pod's preferred terms matching it, and its own
// required affinity (hard weight) and preferred terms matching the
// incoming pod.
func (pl *InterPodAffinity) processExistingPod(st *scoringTerms, existing *framework.PodInfo, node *v1.Node, m scoreMap) {
	m.processTerms(st.preferred, existing.Pod, nil, node, 1)
	m.processTerms(st.preferredAnti, existing.Pod, nil, node, -1)
	if w := pl.args.HardPodAffinityWeight; w > 0 {
		for i := range existing.RequiredAffinityTerms {
			m.processTerm(&existing.RequiredAffinityTerms[i], w, st.pod, st.namespaceLabels, node, 1)
		}
	}
	m.processTerms(existing.PreferredAffinityTerms, st.pod, st.namespaceLabels, node, 1)
	m.processTerms(existing.PreferredAntiAffinityTerms, st.pod, st.namespaceLabels, node, -1)
}

// PreScore implements framework.PreScorePlugin. It sums, per domain, the
// weights that the incoming pod's preferred terms and existing pods' terms
// give; a cycle where nothing contributes skips the Score.
func (pl *InterPodAffinity) PreScore(ctx context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	a := pod.Spec.Affinity
	hasConstraints := a != nil && ((a.PodAffinity != nil && len(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0) ||
		(a.PodAntiAffinity != nil && len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0))
	if pl.args.IgnorePreferredTermsOfExistingPods && !hasConstraints {
		return framework.NewStatus(framework.Skip)
	}
	lister := pl.sharedLister.NodeInfos()
	var nodes []*framework.NodeInfo
	if hasConstraints {
		nodes = lister.List()
	} else {
		// Only pods whose own terms score the incoming pod contribute.
		nodes = lister.HavePodsWithScoringAffinityList()
	}
	if len(nodes) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	st := &scoringTerms{pod: pod, namespaceLabels: pl.namespaceLabels(pod.Namespace)}
	if hasConstraints {
		pi := state.PodInfo(pod)
		if pi.ParseErr != nil {
			return framework.AsStatus(fmt.Errorf("parse pod: %w", pi.ParseErr))
		}
		var err error
		if st.preferred, err = pl.mergeWeightedNamespaces(pi.PreferredAffinityTerms); err != nil {
			return framework.AsStatus(err)
		}
		if st.preferredAnti, err = pl.mergeWeightedNamespaces(pi.PreferredAntiAffinityTerms); err != nil {
			return framework.AsStatus(err)
		}
	}

	total := make(scoreMap)
	var mu sync.Mutex
	pl.parallelizer.Until(ctx, len(nodes), func(i int) {
		ni := nodes[i]
		node := ni.Node()
		if len(node.Labels) == 0 {
			return
		}
		pods := ni.PodsWithScoringAffinity
		if hasConstraints {
			pods = ni.Pods
		}
		var local scoreMap
		for _, existing := range pods {
			if local == nil {
				local = make(scoreMap)
			}
			pl.processExistingPod(st, existing, node, local)
		}
		if len(local) > 0 {
			mu.Lock()
			total.add(local)
			mu.Unlock()
		}
	})
	if len(total) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{topologyScore: total})
	return nil
}

// Score implements framework.ScorePlugin: the sum of the node's domains'
// scores.
func (pl *InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	s, err := getPreScoreState(state)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	labels := nodeInfo.Node().Labels
	var score int64
	for key, values := range s.topologyScore {
		if v, ok := labels[key]; ok {
			score += values[v]
		}
	}
	return score, nil
}

func getPreScoreState(state *framework.CycleState) (*preScoreState, error) {
	d, err := state.Read(preScoreStateKey)
	if err != nil {
		return nil, fmt.Errorf("read prescore state: %w", err)
	}
	s, ok := d.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to interpodaffinity.preScoreState error", d)
	}
	return s, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (pl *InterPodAffinity) ScoreExtensions() framework.ScoreExtensions { return pl }

// NormalizeScore implements framework.ScoreExtensions: scores are scaled
// between the lowest (0) and the highest (MaxNodeScore).
func (pl *InterPodAffinity) NormalizeScore(_ context.Context, state *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	s, err := getPreScoreState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(s.topologyScore) == 0 {
		return nil
	}
	minCount, maxCount := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range scores {
		minCount = min(minCount, scores[i].Score)
		maxCount = max(maxCount, scores[i].Score)
	}
	diff := maxCount - minCount
	for i := range scores {
		f := 0.0
		if diff > 0 {
			f = float64(framework.MaxNodeScore) * float64(scores[i].Score-minCount) / float64(diff)
		}
		scores[i].Score = int64(f)
	}
	return nil
}
