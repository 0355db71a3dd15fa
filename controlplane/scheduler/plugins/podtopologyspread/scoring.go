package podtopologyspread

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const (
	preScoreStateKey framework.StateKey = "PreScore" + Name
	invalidScore                        = -1
)

type preScoreState struct {
	Constraints []constraint
	// IgnoredNodes lack a topology key; they score 0.
	IgnoredNodes sets.Set[string]
	// TopologyValueToPodCounts maps, per constraint, the domains of the
	// feasible nodes to their matching pods (hostname constraints count
	// the node's own pods in Score instead).
	TopologyValueToPodCounts []map[string]int64
	// TopologyNormalizingWeight weighs constraints by the log of their
	// number of domains, so that a key with few domains does not dominate.
	TopologyNormalizingWeight []float64
	namespace                 string
}

func (s *preScoreState) Clone() framework.StateData { return s }

// PreScore implements framework.PreScorePlugin.
func (pl *PodTopologySpread) PreScore(ctx context.Context, state *framework.CycleState, pod *v1.Pod, filtered []*framework.NodeInfo) *framework.Status {
	all := pl.sharedLister.NodeInfos().List()
	if len(all) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	cs, err := pl.constraints(pod, v1.ScheduleAnyway)
	if err != nil {
		return framework.AsStatus(fmt.Errorf("get soft constraints from pod: %w", err))
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	requireAll := len(pod.Spec.TopologySpreadConstraints) > 0 || !pl.systemDefaulted
	s := &preScoreState{
		Constraints:              cs,
		IgnoredNodes:             sets.New[string](),
		TopologyValueToPodCounts: make([]map[string]int64, len(cs)),
		namespace:                pod.Namespace,
	}
	for i := range cs {
		s.TopologyValueToPodCounts[i] = make(map[string]int64)
	}
	for _, ni := range filtered {
		node := ni.Node()
		if requireAll && !nodeLabelsMatchConstraints(node.Labels, cs) {
			s.IgnoredNodes.Insert(node.Name)
			continue
		}
		for i, c := range cs {
			if c.TopologyKey == v1.LabelHostname {
				continue
			}
			s.TopologyValueToPodCounts[i][node.Labels[c.TopologyKey]] = 0
		}
	}
	s.TopologyNormalizingWeight = make([]float64, len(cs))
	for i, c := range cs {
		size := len(s.TopologyValueToPodCounts[i])
		if c.TopologyKey == v1.LabelHostname {
			size = len(filtered) - len(s.IgnoredNodes)
		}
		s.TopologyNormalizingWeight[i] = math.Log(float64(size + 2))
	}

	// Count matching pods over all eligible nodes, for the domains of the
	// feasible nodes; hostname constraints are counted in Score.
	var zonal []constraint
	var zonalIdx []int
	for i, c := range cs {
		if c.TopologyKey != v1.LabelHostname {
			zonal = append(zonal, c)
			zonalIdx = append(zonalIdx, i)
		}
	}
	if len(zonal) > 0 {
		var counts []map[string]int
		if requireAll && len(zonal) != len(cs) {
			// Eligibility needs every key, hostname included: count with
			// all constraints.
			full := pl.counts.counts(ctx, pl.parallelizer, pod, cs, requireAll, pl.sharedLister.NodeInfos())
			for _, i := range zonalIdx {
				counts = append(counts, full[i])
			}
		} else {
			counts = pl.counts.counts(ctx, pl.parallelizer, pod, zonal, requireAll, pl.sharedLister.NodeInfos())
		}
		for j, i := range zonalIdx {
			for v := range s.TopologyValueToPodCounts[i] {
				s.TopologyValueToPodCounts[i][v] = int64(counts[j][v])
			}
		}
	}
	state.Write(preScoreStateKey, s)
	return nil
}

func getPreScoreState(state *framework.CycleState) (*preScoreState, error) {
	d, err := state.Read(preScoreStateKey)
	if err != nil {
		return nil, fmt.Errorf("read prescore state: %w", err)
	}
	s, ok := d.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to podtopologyspread.preScoreState error", d)
	}
	return s, nil
}

// Score implements framework.ScorePlugin: the weighted sum of matching pods
// in the node's domains (fewer is better; NormalizeScore reverses it).
func (pl *PodTopologySpread) Score(_ context.Context, state *framework.CycleState, _ *v1.Pod, nodeInfo *framework.NodeInfo) (int64, *framework.Status) {
	s, err := getPreScoreState(state)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	node := nodeInfo.Node()
	if s.IgnoredNodes.Has(node.Name) {
		return 0, nil
	}
	var score float64
	for i, c := range s.Constraints {
		v, ok := node.Labels[c.TopologyKey]
		if !ok {
			continue
		}
		var cnt int64
		if c.TopologyKey == v1.LabelHostname {
			cnt = int64(countPodsMatchSelector(nodeInfo.Pods, c.Selector, s.namespace))
		} else {
			cnt = s.TopologyValueToPodCounts[i][v]
		}
		score += float64(cnt)*s.TopologyNormalizingWeight[i] + float64(c.MaxSkew-1)
	}
	return int64(math.Round(score)), nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (pl *PodTopologySpread) ScoreExtensions() framework.ScoreExtensions { return pl }

// NormalizeScore implements framework.ScoreExtensions.
func (pl *PodTopologySpread) NormalizeScore(_ context.Context, state *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	s, err := getPreScoreState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	minScore, maxScore := int64(math.MaxInt64), int64(0)
	for i := range scores {
		if s.IgnoredNodes.Has(scores[i].Name) {
			scores[i].Score = invalidScore
			continue
		}
		minScore = min(minScore, scores[i].Score)
		maxScore = max(maxScore, scores[i].Score)
	}
	for i := range scores {
		if scores[i].Score == invalidScore {
			scores[i].Score = 0
			continue
		}
		if maxScore == 0 {
			scores[i].Score = framework.MaxNodeScore
			continue
		}
		scores[i].Score = framework.MaxNodeScore * (maxScore + minScore - scores[i].Score) / maxScore
	}
	return nil
}
