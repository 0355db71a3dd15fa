package plugintest

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// RunFilter runs a plugin's PreFilter (when it has one) and Filter for pod
// against every node of the handle's snapshot, as the framework would, and
// returns the status per node name. A PreFilter rejection is returned for
// every node; a PreFilter Skip passes every node.
func RunFilter(t testing.TB, h *Handle, pl framework.Plugin, pod *v1.Pod) map[string]*framework.Status {
	t.Helper()
	ctx := context.Background()
	nodes := h.Snap.NodeInfos().List()
	state := framework.NewCycleState()
	out := make(map[string]*framework.Status, len(nodes))
	var allowed map[string]bool
	if pf, ok := pl.(framework.PreFilterPlugin); ok {
		res, s := pf.PreFilter(ctx, state, pod, nodes)
		switch {
		case s.IsSkip():
			for _, ni := range nodes {
				out[ni.Node().Name] = nil
			}
			return out
		case !s.IsSuccess():
			for _, ni := range nodes {
				out[ni.Node().Name] = s
			}
			return out
		}
		if !res.AllNodes() {
			allowed = make(map[string]bool)
			for n := range res.NodeNames {
				allowed[n] = true
			}
		}
	}
	f, ok := pl.(framework.FilterPlugin)
	if !ok {
		t.Fatalf("plugin %s has no Filter", pl.Name())
	}
	for _, ni := range nodes {
		name := ni.Node().Name
		if allowed != nil && !allowed[name] {
			out[name] = framework.NewStatus(framework.UnschedulableAndUnresolvable, "excluded by PreFilter")
			continue
		}
		out[name] = f.Filter(ctx, state, pod, ni)
	}
	return out
}

// RunScore runs a plugin's PreScore (when it has one), Score for every node
// of the snapshot, and NormalizeScore, and returns the scores by node name.
// A PreScore Skip returns nil.
func RunScore(t testing.TB, h *Handle, pl framework.ScorePlugin, pod *v1.Pod) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	nodes := h.Snap.NodeInfos().List()
	state := framework.NewCycleState()
	if ps, ok := pl.(framework.PreScorePlugin); ok {
		s := ps.PreScore(ctx, state, pod, nodes)
		if s.IsSkip() {
			return nil
		}
		if !s.IsSuccess() {
			t.Fatalf("PreScore: %v", s)
		}
	}
	scores := make(framework.NodeScoreList, len(nodes))
	for i, ni := range nodes {
		s, st := pl.Score(ctx, state, pod, ni)
		if !st.IsSuccess() {
			t.Fatalf("Score %s: %v", ni.Node().Name, st)
		}
		scores[i] = framework.NodeScore{Name: ni.Node().Name, Score: s}
	}
	if ext := pl.ScoreExtensions(); ext != nil {
		if st := ext.NormalizeScore(ctx, state, pod, scores); !st.IsSuccess() {
			t.Fatalf("NormalizeScore: %v", st)
		}
	}
	out := make(map[string]int64, len(scores))
	for _, s := range scores {
		out[s.Name] = s.Score
	}
	return out
}

// StatusString renders a status for comparisons in tests: "" for success,
// otherwise "<Code>: <message>".
func StatusString(s *framework.Status) string {
	if s.IsSuccess() {
		return ""
	}
	return s.String()
}
