package podtopologyspread

import (
	"context"
	"fmt"
	"maps"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

const preFilterStateKey framework.StateKey = "PreFilter" + Name

// criticalPaths holds the two domains with the fewest matching pods, so
// that the minimum survives a simulated change of one domain.
type criticalPaths [2]struct {
	TopologyValue string
	MatchNum      int
}

func newCriticalPaths() criticalPaths {
	return criticalPaths{{MatchNum: math.MaxInt32}, {MatchNum: math.MaxInt32}}
}

func (p *criticalPaths) update(tpVal string, num int) {
	i := -1
	if tpVal == p[0].TopologyValue {
		i = 0
	} else if tpVal == p[1].TopologyValue {
		i = 1
	}
	if i >= 0 {
		p[i].MatchNum = num
		if p[0].MatchNum > p[1].MatchNum {
			p[0], p[1] = p[1], p[0]
		}
		return
	}
	if num < p[0].MatchNum {
		p[1] = p[0]
		p[0].TopologyValue, p[0].MatchNum = tpVal, num
	} else if num < p[1].MatchNum {
		p[1].TopologyValue, p[1].MatchNum = tpVal, num
	}
}

type preFilterState struct {
	Constraints   []constraint
	CriticalPaths []criticalPaths
	// TpValueToMatchNum maps, per constraint, each eligible domain to its
	// matching pods. The maps are shared with the plugin's count cache and
	// must only be changed after Clone.
	TpValueToMatchNum []map[string]int
	// selfMatch is 1 where the pod matches the constraint's selector.
	selfMatch []int
	// nodes knows each node's domain per constraint; shared with the
	// plugin's count cache, read only.
	nodes *countCache
	// requiredAffinity is the pod's required node affinity, for AddPod and
	// RemovePod.
	requiredAffinity nodeaffinity.RequiredNodeAffinity
	tolerations      []v1.Toleration
	namespace        string
}

// Clone implements framework.StateData.
func (s *preFilterState) Clone() framework.StateData {
	if s == nil {
		return nil
	}
	c := *s
	c.CriticalPaths = append([]criticalPaths(nil), s.CriticalPaths...)
	c.TpValueToMatchNum = make([]map[string]int, len(s.TpValueToMatchNum))
	for i, m := range s.TpValueToMatchNum {
		c.TpValueToMatchNum[i] = maps.Clone(m)
	}
	return &c
}

func (s *preFilterState) minMatchNum(i int, minDomains int32) int {
	m := s.CriticalPaths[i][0].MatchNum
	if len(s.TpValueToMatchNum[i]) < int(minDomains) {
		// Fewer domains than required: the missing ones count as empty.
		return 0
	}
	return m
}

// PreFilter implements framework.PreFilterPlugin.
func (pl *PodTopologySpread) PreFilter(ctx context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	cs, err := pl.constraints(pod, v1.DoNotSchedule)
	if err != nil {
		return nil, framework.AsStatus(fmt.Errorf("get constraints from pod: %w", err))
	}
	if len(cs) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	cc := pl.counts.cache(ctx, pl.parallelizer, pod, cs, true, pl.sharedLister.NodeInfos())
	counts := cc.pods
	s := &preFilterState{
		Constraints:       cs,
		CriticalPaths:     make([]criticalPaths, len(cs)),
		TpValueToMatchNum: counts,
		nodes:             cc,
		selfMatch:         make([]int, len(cs)),
		requiredAffinity:  nodeaffinity.GetRequiredNodeAffinity(pod),
		tolerations:       pod.Spec.Tolerations,
		namespace:         pod.Namespace,
	}
	podLabels := labels.Set(pod.Labels)
	for i := range cs {
		s.CriticalPaths[i] = newCriticalPaths()
		for v, n := range counts[i] {
			s.CriticalPaths[i].update(v, n)
		}
		if cs[i].Selector.Matches(podLabels) {
			s.selfMatch[i] = 1
		}
	}
	state.Write(preFilterStateKey, s)
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (pl *PodTopologySpread) PreFilterExtensions() framework.PreFilterExtensions { return pl }

// AddPod implements framework.PreFilterExtensions.
func (pl *PodTopologySpread) AddPod(_ context.Context, state *framework.CycleState, _ *v1.Pod, podInfoToAdd *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	s.updateWithPod(podInfoToAdd.Pod, nodeInfo.Node(), 1)
	return nil
}

// RemovePod implements framework.PreFilterExtensions.
func (pl *PodTopologySpread) RemovePod(_ context.Context, state *framework.CycleState, _ *v1.Pod, podInfoToRemove *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	s.updateWithPod(podInfoToRemove.Pod, nodeInfo.Node(), -1)
	return nil
}

func (s *preFilterState) updateWithPod(updated *v1.Pod, node *v1.Node, delta int) {
	if s == nil || node == nil || updated.Namespace != s.namespace {
		return
	}
	if !nodeLabelsMatchConstraints(node.Labels, s.Constraints) {
		return
	}
	c := &countCache{affinity: s.requiredAffinity, tolerations: s.tolerations}
	podLabels := labels.Set(updated.Labels)
	for i := range s.Constraints {
		con := &s.Constraints[i]
		if !con.Selector.Matches(podLabels) || !c.matchInclusionPolicies(con, node) {
			continue
		}
		v := node.Labels[con.TopologyKey]
		s.TpValueToMatchNum[i][v] += delta
		s.CriticalPaths[i].update(v, s.TpValueToMatchNum[i][v])
	}
}

func getPreFilterState(state *framework.CycleState) (*preFilterState, error) {
	d, err := state.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("read prefilter state: %w", err)
	}
	s, ok := d.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to podtopologyspread.preFilterState error", d)
	}
	return s, nil
}

// Filter implements framework.FilterPlugin.
func (pl *PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, _ *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return framework.AsStatus(err)
	}
	for i := range s.Constraints {
		c := &s.Constraints[i]
		tpVal, present, known := s.nodes.nodeValue(nodeInfo, i)
		if !known {
			tpVal, present = nodeInfo.Node().Labels[c.TopologyKey]
		}
		if !present {
			return pl.missingLabel
		}
		skew := s.TpValueToMatchNum[i][tpVal] + s.selfMatch[i] - s.minMatchNum(i, c.MinDomains)
		if skew > int(c.MaxSkew) {
			return pl.skewTooLarge
		}
	}
	return nil
}
