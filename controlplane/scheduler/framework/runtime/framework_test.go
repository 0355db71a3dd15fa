package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

// The fakes below each implement one extension point (PreFilter plugins
// also Filter) and append "<plugin>.<Point>" or "<plugin>.<Point>(<node>)"
// to a shared call log, so a test can assert which plugins ran, in which
// order, and which were skipped.

// callLog is safe for the Filter and Score calls that run in parallel.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

var errBoom = errors.New("boom")

type fakeQueueSort struct{}

func (fakeQueueSort) Name() string                            { return "QueueSort" }
func (fakeQueueSort) Less(a, b *framework.QueuedPodInfo) bool { return a.Timestamp.Before(b.Timestamp) }

type fakeReserve struct {
	name   string
	status *framework.Status
	log    *callLog
}

func (p *fakeReserve) Name() string { return p.name }

func (p *fakeReserve) Reserve(_ context.Context, _ *framework.CycleState, _ *v1.Pod, node string) *framework.Status {
	p.log.add("%s.Reserve(%s)", p.name, node)
	return p.status
}

func (p *fakeReserve) Unreserve(_ context.Context, _ *framework.CycleState, _ *v1.Pod, node string) {
	p.log.add("%s.Unreserve(%s)", p.name, node)
}

type fakePostFilter struct {
	name   string
	result *framework.PostFilterResult
	status *framework.Status
	log    *callLog
}

func (p *fakePostFilter) Name() string { return p.name }

func (p *fakePostFilter) PostFilter(context.Context, *framework.CycleState, *v1.Pod, *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	p.log.add("%s.PostFilter", p.name)
	return p.result, p.status
}

// fakeFilter rejects the nodes in reject with status (Unschedulable when
// nil).
type fakeFilter struct {
	name   string
	reject sets.Set[string]
	status *framework.Status
	log    *callLog
}

func (p *fakeFilter) Name() string { return p.name }

func (p *fakeFilter) Filter(_ context.Context, _ *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	node := ni.Node().Name
	p.log.add("%s.Filter(%s)", p.name, node)
	if !p.reject.Has(node) {
		return nil
	}
	if p.status != nil {
		return p.status
	}
	return framework.NewStatus(framework.Unschedulable, p.name+" rejects "+node)
}

// fakePreFilter is a PreFilter and Filter plugin, with PreFilterExtensions.
type fakePreFilter struct {
	fakeFilter
	result    *framework.PreFilterResult
	preStatus *framework.Status
}

func (p *fakePreFilter) PreFilter(context.Context, *framework.CycleState, *v1.Pod, []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	p.log.add("%s.PreFilter", p.name)
	return p.result, p.preStatus
}

func (p *fakePreFilter) PreFilterExtensions() framework.PreFilterExtensions { return p }

func (p *fakePreFilter) AddPod(context.Context, *framework.CycleState, *v1.Pod, *framework.PodInfo, *framework.NodeInfo) *framework.Status {
	p.log.add("%s.AddPod", p.name)
	return nil
}

func (p *fakePreFilter) RemovePod(context.Context, *framework.CycleState, *v1.Pod, *framework.PodInfo, *framework.NodeInfo) *framework.Status {
	p.log.add("%s.RemovePod", p.name)
	return nil
}

// fakeScore scores a node from a table; normalize, when set, is its
// NormalizeScore.
type fakeScore struct {
	name      string
	scores    map[string]int64
	status    *framework.Status
	normalize func(framework.NodeScoreList) *framework.Status
	log       *callLog
}

func (p *fakeScore) Name() string { return p.name }

func (p *fakeScore) Score(_ context.Context, _ *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	p.log.add("%s.Score(%s)", p.name, ni.Node().Name)
	return p.scores[ni.Node().Name], p.status
}

func (p *fakeScore) ScoreExtensions() framework.ScoreExtensions {
	if p.normalize == nil {
		return nil
	}
	return p
}

func (p *fakeScore) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	names := make([]string, len(scores))
	for i, s := range scores {
		names[i] = s.Name
	}
	p.log.add("%s.NormalizeScore(%s)", p.name, strings.Join(names, ","))
	return p.normalize(scores)
}

// fakePreScoreScore is a Score plugin with a PreScore.
type fakePreScoreScore struct {
	fakeScore
	preStatus *framework.Status
}

func (p *fakePreScoreScore) PreScore(context.Context, *framework.CycleState, *v1.Pod, []*framework.NodeInfo) *framework.Status {
	p.log.add("%s.PreScore", p.name)
	return p.preStatus
}

type fakeBind struct {
	name   string
	status *framework.Status
	log    *callLog
}

func (p *fakeBind) Name() string { return p.name }

func (p *fakeBind) Bind(_ context.Context, _ *framework.CycleState, _ *v1.Pod, node string) *framework.Status {
	p.log.add("%s.Bind(%s)", p.name, node)
	return p.status
}

// scaleTo100 is a NormalizeScore that scales the highest score to
// MaxNodeScore.
func scaleTo100(scores framework.NodeScoreList) *framework.Status {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	if highest == 0 {
		return nil
	}
	for i := range scores {
		scores[i].Score = scores[i].Score * framework.MaxNodeScore / highest
	}
	return nil
}

// newFramework builds a profile of a QueueSort plugin, pls in order, and a
// Bind plugin that binds unless pls has its own. weights are the Score
// plugins' weights by name (0 or absent means 1).
func newFramework(t *testing.T, weights map[string]int32, pls ...framework.Plugin) *runtime.Framework {
	t.Helper()
	all := append([]framework.Plugin{fakeQueueSort{}}, pls...)
	if !slices.ContainsFunc(pls, func(p framework.Plugin) bool { _, ok := p.(framework.BindPlugin); return ok }) {
		all = append(all, &fakeBind{name: "DefaultBind", log: &callLog{}})
	}
	reg := runtime.Registry{}
	profile := runtime.Profile{SchedulerName: "test"}
	for _, pl := range all {
		reg[pl.Name()] = func(context.Context, any, framework.Handle) (framework.Plugin, error) { return pl, nil }
		profile.Plugins = append(profile.Plugins, runtime.PluginConfig{Name: pl.Name(), Weight: weights[pl.Name()]})
	}
	f, err := runtime.New(context.Background(), reg, profile, runtime.Options{
		Log:          st.TestLogger(t),
		Parallelizer: framework.NewParallelizer(4),
	})
	if err != nil {
		t.Fatalf("new framework: %v", err)
	}
	return f
}

func nodeInfos(names ...string) []*framework.NodeInfo {
	out := make([]*framework.NodeInfo, len(names))
	for i, n := range names {
		out[i] = framework.NewNodeInfo()
		out[i].SetNode(st.MakeNode().Name(n).Obj())
	}
	return out
}

func testPod() *v1.Pod { return st.MakePod().Name("p").UID("p").Obj() }

// statusWant is what a test expects of a status: its code, its message
// (when msg is set), the plugin it names, and the error it wraps (when
// wrapped is set).
type statusWant struct {
	code    framework.Code
	msg     string
	plugin  string
	wrapped error
}

func checkStatus(t *testing.T, got *framework.Status, want statusWant) {
	t.Helper()
	if got.Code() != want.code {
		t.Errorf("got status %v, want code %v", got, want.code)
	}
	if want.msg != "" && got.Message() != want.msg {
		t.Errorf("got message %q, want %q", got.Message(), want.msg)
	}
	if got.Plugin() != want.plugin {
		t.Errorf("got status of plugin %q, want %q", got.Plugin(), want.plugin)
	}
	if want.wrapped != nil && !errors.Is(got.AsError(), want.wrapped) {
		t.Errorf("got error %v, want it to wrap %v", got.AsError(), want.wrapped)
	}
}

func checkCalls(t *testing.T, log *callLog, want []string) {
	t.Helper()
	if got := log.get(); !slices.Equal(got, want) {
		t.Errorf("got calls %q, want %q", got, want)
	}
}

// TestReserve: Reserve runs in profile order and stops at the first
// failure, whose status is returned with its code (a rejection stays a
// rejection, anything else becomes an Error wrapping the plugin's error)
// and names the plugin. The caller then runs Unreserve, which calls every
// Reserve plugin in reverse order, including those after the failure whose
// Reserve never ran (upstream's contract: Unreserve must be idempotent).
func TestReserve(t *testing.T) {
	tests := []struct {
		name   string
		status map[string]*framework.Status // Reserve's status by plugin
		want   statusWant
		calls  []string
	}{
		{
			name:  "all succeed",
			want:  statusWant{code: framework.Success},
			calls: []string{"A.Reserve(n1)", "B.Reserve(n1)", "C.Reserve(n1)"},
		},
		{
			name:   "second rejects",
			status: map[string]*framework.Status{"B": framework.NewStatus(framework.Unschedulable, "no room")},
			want:   statusWant{code: framework.Unschedulable, msg: "no room", plugin: "B"},
			calls: []string{
				"A.Reserve(n1)", "B.Reserve(n1)",
				"C.Unreserve(n1)", "B.Unreserve(n1)", "A.Unreserve(n1)",
			},
		},
		{
			name:   "first rejects unresolvably",
			status: map[string]*framework.Status{"A": framework.NewStatus(framework.UnschedulableAndUnresolvable, "never")},
			want:   statusWant{code: framework.UnschedulableAndUnresolvable, msg: "never", plugin: "A"},
			calls: []string{
				"A.Reserve(n1)",
				"C.Unreserve(n1)", "B.Unreserve(n1)", "A.Unreserve(n1)",
			},
		},
		{
			name:   "last fails with an error",
			status: map[string]*framework.Status{"C": framework.AsStatus(errBoom)},
			want:   statusWant{code: framework.Error, msg: `running Reserve plugin "C": boom`, plugin: "C", wrapped: errBoom},
			calls: []string{
				"A.Reserve(n1)", "B.Reserve(n1)", "C.Reserve(n1)",
				"C.Unreserve(n1)", "B.Unreserve(n1)", "A.Unreserve(n1)",
			},
		},
		{
			// Reserve may not Skip: an error that says so, not an
			// empty or nil one.
			name:   "skip is an error",
			status: map[string]*framework.Status{"B": framework.NewStatus(framework.Skip)},
			want:   statusWant{code: framework.Error, msg: `running Reserve plugin "B": returned Skip`, plugin: "B"},
			calls: []string{
				"A.Reserve(n1)", "B.Reserve(n1)",
				"C.Unreserve(n1)", "B.Unreserve(n1)", "A.Unreserve(n1)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			var pls []framework.Plugin
			for _, name := range []string{"A", "B", "C"} {
				pls = append(pls, &fakeReserve{name: name, status: tc.status[name], log: log})
			}
			f := newFramework(t, nil, pls...)
			ctx := context.Background()
			state := framework.NewCycleState()
			pod := testPod()
			s := f.RunReservePluginsReserve(ctx, state, pod, "n1")
			if !s.IsSuccess() {
				// What scheduleOne does with a failed Reserve.
				f.RunReservePluginsUnreserve(ctx, state, pod, "n1")
			}
			checkStatus(t, s, tc.want)
			checkCalls(t, log, tc.calls)
		})
	}
}

// TestUnreserveAfterSuccess: Unreserve after a successful Reserve (a later
// Permit or bind failure) also runs in reverse order.
func TestUnreserveAfterSuccess(t *testing.T) {
	log := &callLog{}
	f := newFramework(t, nil, &fakeReserve{name: "A", log: log}, &fakeReserve{name: "B", log: log})
	ctx, state, pod := context.Background(), framework.NewCycleState(), testPod()
	if s := f.RunReservePluginsReserve(ctx, state, pod, "n1"); !s.IsSuccess() {
		t.Fatalf("got Reserve status %v, want success", s)
	}
	f.RunReservePluginsUnreserve(ctx, state, pod, "n1")
	checkCalls(t, log, []string{"A.Reserve(n1)", "B.Reserve(n1)", "B.Unreserve(n1)", "A.Unreserve(n1)"})
}

// TestPostFilter: PostFilter plugins run in order until one returns
// Success (its result wins, the rest do not run), UnschedulableAndUnresolvable
// (returned as is, the rest do not run) or an error (returned as an Error
// naming the plugin, without a result). When all return Unschedulable, the
// status is Unschedulable with every plugin's reasons, naming the first
// plugin, and the result is the first one a plugin proposed. Skip is not a
// PostFilter code and is an error, not a success.
func TestPostFilter(t *testing.T) {
	type plugin struct {
		name   string
		result string // NominatedNodeName; "" for no result
		status *framework.Status
	}
	tests := []struct {
		name      string
		plugins   []plugin
		want      statusWant
		nominated string // "" for no result
		calls     []string
	}{
		{
			name: "first success wins",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.Unschedulable, "A cannot help")},
				{name: "B", result: "n2"},
				{name: "C", result: "n3"},
			},
			want:      statusWant{code: framework.Success},
			nominated: "n2",
			calls:     []string{"A.PostFilter", "B.PostFilter"},
		},
		{
			name: "all unschedulable",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.Unschedulable, "no victims")},
				{name: "B", status: framework.NewStatus(framework.Unschedulable, "too costly")},
			},
			want:  statusWant{code: framework.Unschedulable, msg: "no victims, too costly", plugin: "A"},
			calls: []string{"A.PostFilter", "B.PostFilter"},
		},
		{
			name: "a rejecting plugin's result is kept",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.Unschedulable, "no victims")},
				{name: "B", result: "n1", status: framework.NewStatus(framework.Unschedulable, "victims still terminating")},
			},
			want:      statusWant{code: framework.Unschedulable, msg: "no victims, victims still terminating", plugin: "A"},
			nominated: "n1",
			calls:     []string{"A.PostFilter", "B.PostFilter"},
		},
		{
			name: "error stops",
			plugins: []plugin{
				{name: "A", result: "n1", status: framework.AsStatus(errBoom)},
				{name: "B", result: "n2"},
			},
			want:  statusWant{code: framework.Error, msg: "boom", plugin: "A", wrapped: errBoom},
			calls: []string{"A.PostFilter"},
		},
		{
			name: "unresolvable stops",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.UnschedulableAndUnresolvable, "preemption cannot help")},
				{name: "B", result: "n2"},
			},
			want:  statusWant{code: framework.UnschedulableAndUnresolvable, msg: "preemption cannot help", plugin: "A"},
			calls: []string{"A.PostFilter"},
		},
		{
			name: "skip is an error",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.Skip)},
				{name: "B", result: "n2"},
			},
			want:  statusWant{code: framework.Error, msg: `PostFilter plugin "A" returned Skip`, plugin: "A"},
			calls: []string{"A.PostFilter"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			var pls []framework.Plugin
			for _, p := range tc.plugins {
				fp := &fakePostFilter{name: p.name, status: p.status, log: log}
				if p.result != "" {
					fp.result = &framework.PostFilterResult{NominatedNodeName: p.result}
				}
				pls = append(pls, fp)
			}
			f := newFramework(t, nil, pls...)
			if !f.HasPostFilterPlugins() {
				t.Fatalf("got no PostFilter plugins, want %d", len(pls))
			}
			r, s := f.RunPostFilterPlugins(context.Background(), framework.NewCycleState(), testPod(), framework.NewNodeToStatus())
			checkStatus(t, s, tc.want)
			got := ""
			if r != nil {
				got = r.NominatedNodeName
			}
			if got != tc.nominated {
				t.Errorf("got nominated node %q, want %q", got, tc.nominated)
			}
			checkCalls(t, log, tc.calls)
		})
	}
}

// TestPreFilter: PreFilter plugins run in order. Skip disables that
// plugin's Filter (and its AddPod/RemovePod) for the cycle and nothing
// else; Unschedulable is returned but the rest still run (their state is
// needed by preemption); UnschedulableAndUnresolvable and errors stop at
// once. Results are intersected, the plugins that narrowed the nodes are
// returned, and an empty intersection is UnschedulableAndUnresolvable.
func TestPreFilter(t *testing.T) {
	type plugin struct {
		name   string
		nodes  []string // PreFilterResult; nil for all nodes
		status *framework.Status
	}
	tests := []struct {
		name      string
		plugins   []plugin
		want      statusWant
		result    []string // nil for all nodes
		withNodes []string
		skipped   []string
		calls     []string
	}{
		{
			name:    "all succeed",
			plugins: []plugin{{name: "A"}, {name: "B"}},
			want:    statusWant{code: framework.Success},
			calls:   []string{"A.PreFilter", "B.PreFilter"},
		},
		{
			name:    "skip",
			plugins: []plugin{{name: "A", status: framework.NewStatus(framework.Skip)}, {name: "B"}},
			want:    statusWant{code: framework.Success},
			skipped: []string{"A"},
			calls:   []string{"A.PreFilter", "B.PreFilter"},
		},
		{
			name: "unschedulable runs the rest",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.Unschedulable, "A says no")},
				{name: "B", status: framework.NewStatus(framework.Unschedulable, "B says no")},
				{name: "C"},
			},
			want:  statusWant{code: framework.Unschedulable, msg: "B says no", plugin: "B"},
			calls: []string{"A.PreFilter", "B.PreFilter", "C.PreFilter"},
		},
		{
			name: "unresolvable stops",
			plugins: []plugin{
				{name: "A", status: framework.NewStatus(framework.UnschedulableAndUnresolvable, "never")},
				{name: "B"},
			},
			want:  statusWant{code: framework.UnschedulableAndUnresolvable, msg: "never", plugin: "A"},
			calls: []string{"A.PreFilter"},
		},
		{
			name:    "error stops",
			plugins: []plugin{{name: "A", status: framework.AsStatus(errBoom)}, {name: "B"}},
			want:    statusWant{code: framework.Error, msg: `running PreFilter plugin "A": boom`, plugin: "A", wrapped: errBoom},
			calls:   []string{"A.PreFilter"},
		},
		{
			name: "results intersect",
			plugins: []plugin{
				{name: "A", nodes: []string{"n1", "n2"}},
				{name: "B"},
				{name: "C", nodes: []string{"n2", "n3"}},
			},
			want:      statusWant{code: framework.Success},
			result:    []string{"n2"},
			withNodes: []string{"A", "C"},
			calls:     []string{"A.PreFilter", "B.PreFilter", "C.PreFilter"},
		},
		{
			name: "empty intersection",
			plugins: []plugin{
				{name: "A", nodes: []string{"n1"}},
				{name: "B", nodes: []string{"n2"}},
				{name: "C"},
			},
			want:      statusWant{code: framework.UnschedulableAndUnresolvable, msg: "node(s) didn't satisfy plugin(s) [A B] simultaneously"},
			result:    []string{},
			withNodes: []string{"A", "B"},
			calls:     []string{"A.PreFilter", "B.PreFilter"},
		},
		{
			name:      "one plugin keeps no node",
			plugins:   []plugin{{name: "A", nodes: []string{}}, {name: "B"}},
			want:      statusWant{code: framework.UnschedulableAndUnresolvable, msg: "node(s) didn't satisfy plugin A"},
			result:    []string{},
			withNodes: []string{"A"},
			calls:     []string{"A.PreFilter"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			var pls []framework.Plugin
			for _, p := range tc.plugins {
				fp := &fakePreFilter{fakeFilter: fakeFilter{name: p.name, log: log}, preStatus: p.status}
				if p.nodes != nil {
					fp.result = &framework.PreFilterResult{NodeNames: sets.New(p.nodes...)}
				}
				pls = append(pls, fp)
			}
			f := newFramework(t, nil, pls...)
			state := framework.NewCycleState()
			res, s, withNodes := f.RunPreFilterPlugins(context.Background(), state, testPod(), nodeInfos("n1", "n2", "n3"))
			checkStatus(t, s, tc.want)
			checkCalls(t, log, tc.calls)
			switch {
			case tc.result == nil && !res.AllNodes():
				t.Errorf("got result %v, want all nodes", sets.List(res.NodeNames))
			case tc.result != nil && (res.AllNodes() || !res.NodeNames.Equal(sets.New(tc.result...))):
				t.Errorf("got result %v, want %v", res, tc.result)
			}
			if got := sets.List(withNodes); !slices.Equal(got, tc.withNodes) {
				t.Errorf("got plugins with nodes %v, want %v", got, tc.withNodes)
			}
			var skipped []string
			for name := range state.SkipFilterPlugins {
				skipped = append(skipped, name)
			}
			slices.Sort(skipped)
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("got skipped Filter plugins %v, want %v", skipped, tc.skipped)
			}
		})
	}
}

// TestPreFilterSkipDisablesFilter: a plugin whose PreFilter returned Skip
// has neither its Filter nor its AddPod/RemovePod called for the rest of
// the cycle, even though its Filter would reject every node; the other
// plugins' Filters still run. Without RunPreFilterPlugins (a CycleState
// that never saw PreFilter), every Filter runs.
func TestPreFilterSkipDisablesFilter(t *testing.T) {
	log := &callLog{}
	skipper := &fakePreFilter{
		fakeFilter: fakeFilter{name: "Skipper", reject: sets.New("n1"), log: log},
		preStatus:  framework.NewStatus(framework.Skip),
	}
	other := &fakePreFilter{fakeFilter: fakeFilter{name: "Other", log: log}}
	plain := &fakeFilter{name: "Plain", log: log}
	f := newFramework(t, nil, skipper, other, plain)
	ctx, pod := context.Background(), testPod()
	ni := nodeInfos("n1")[0]

	state := framework.NewCycleState()
	if _, s, _ := f.RunPreFilterPlugins(ctx, state, pod, []*framework.NodeInfo{ni}); !s.IsSuccess() {
		t.Fatalf("got PreFilter status %v, want success", s)
	}
	log.reset()
	if s := f.RunFilterPlugins(ctx, state, pod, ni); !s.IsSuccess() {
		t.Errorf("got Filter status %v, want success (the skipped plugin's Filter must not run)", s)
	}
	pi := framework.NewPodInfo(st.MakePod().Name("other").Obj())
	if s := f.RunPreFilterExtensionAddPod(ctx, state, pod, pi, ni); !s.IsSuccess() {
		t.Errorf("got AddPod status %v, want success", s)
	}
	if s := f.RunPreFilterExtensionRemovePod(ctx, state, pod, pi, ni); !s.IsSuccess() {
		t.Errorf("got RemovePod status %v, want success", s)
	}
	checkCalls(t, log, []string{"Other.Filter(n1)", "Plain.Filter(n1)", "Other.AddPod", "Other.RemovePod"})

	// A cycle whose state never went through PreFilter runs every Filter.
	log.reset()
	s := f.RunFilterPlugins(ctx, framework.NewCycleState(), pod, ni)
	checkStatus(t, s, statusWant{code: framework.Unschedulable, msg: "Skipper rejects n1", plugin: "Skipper"})
	checkCalls(t, log, []string{"Skipper.Filter(n1)"})
}

// TestPreFilterSkipAll: when every Filter plugin is skipped, every node
// passes (no fallback to the full list of Filters).
func TestPreFilterSkipAll(t *testing.T) {
	log := &callLog{}
	skipper := &fakePreFilter{
		fakeFilter: fakeFilter{name: "Skipper", reject: sets.New("n1"), log: log},
		preStatus:  framework.NewStatus(framework.Skip),
	}
	f := newFramework(t, nil, skipper)
	ctx, state, pod := context.Background(), framework.NewCycleState(), testPod()
	ni := nodeInfos("n1")[0]
	if _, s, _ := f.RunPreFilterPlugins(ctx, state, pod, []*framework.NodeInfo{ni}); !s.IsSuccess() {
		t.Fatalf("got PreFilter status %v, want success", s)
	}
	if s := f.RunFilterPlugins(ctx, state, pod, ni); !s.IsSuccess() {
		t.Errorf("got Filter status %v, want success", s)
	}
	checkCalls(t, log, []string{"Skipper.PreFilter"})
}

// TestFilter: for one node, Filter plugins run in order and the first that
// does not succeed ends the node's evaluation (this framework, like
// upstream today, has no mode that runs all Filters to collect every
// reason). A rejection keeps its code; anything else becomes an Error
// wrapping the plugin's error. Either names the plugin.
func TestFilter(t *testing.T) {
	tests := []struct {
		name  string
		node  string
		want  statusWant
		calls []string
	}{
		{
			name:  "all pass",
			node:  "ok",
			want:  statusWant{code: framework.Success},
			calls: []string{"A.Filter(ok)", "B.Filter(ok)", "C.Filter(ok)", "D.Filter(ok)"},
		},
		{
			name:  "second rejects",
			node:  "b-rejects",
			want:  statusWant{code: framework.Unschedulable, msg: "B rejects b-rejects", plugin: "B"},
			calls: []string{"A.Filter(b-rejects)", "B.Filter(b-rejects)"},
		},
		{
			name:  "first rejects unresolvably",
			node:  "a-rejects",
			want:  statusWant{code: framework.UnschedulableAndUnresolvable, msg: "A never fits", plugin: "A"},
			calls: []string{"A.Filter(a-rejects)"},
		},
		{
			name:  "error",
			node:  "c-fails",
			want:  statusWant{code: framework.Error, msg: `running "C" filter plugin: boom`, plugin: "C", wrapped: errBoom},
			calls: []string{"A.Filter(c-fails)", "B.Filter(c-fails)", "C.Filter(c-fails)"},
		},
		{
			// Filter may not Skip (only PreFilter can skip a Filter).
			name:  "skip is an error",
			node:  "d-skips",
			want:  statusWant{code: framework.Error, msg: `running "D" filter plugin: returned Skip`, plugin: "D"},
			calls: []string{"A.Filter(d-skips)", "B.Filter(d-skips)", "C.Filter(d-skips)", "D.Filter(d-skips)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			f := newFramework(t, nil,
				&fakeFilter{name: "A", reject: sets.New("a-rejects"), status: framework.NewStatus(framework.UnschedulableAndUnresolvable, "A never fits"), log: log},
				&fakeFilter{name: "B", reject: sets.New("b-rejects"), log: log},
				&fakeFilter{name: "C", reject: sets.New("c-fails"), status: framework.AsStatus(errBoom), log: log},
				&fakeFilter{name: "D", reject: sets.New("d-skips"), status: framework.NewStatus(framework.Skip), log: log},
			)
			s := f.RunFilterPlugins(context.Background(), framework.NewCycleState(), testPod(), nodeInfos(tc.node)[0])
			checkStatus(t, s, tc.want)
			checkCalls(t, log, tc.calls)
		})
	}
}

// TestScore: every active Score plugin scores every node, then its
// NormalizeScore (if any) sees its scores in the order of the nodes, then
// each plugin's scores, which must be in [0, 100], are multiplied by its
// weight (0 meaning 1) and summed per node; the totals are in the order of
// the nodes. A plugin whose PreScore returned Skip is not scored at all.
func TestScore(t *testing.T) {
	log := &callLog{}
	nodes := nodeInfos("n1", "n2", "n3")
	// Raw 10/20/30, normalised to 33/66/100, weight 2.
	scaled := &fakeScore{name: "Scaled", scores: map[string]int64{"n1": 10, "n2": 20, "n3": 30}, normalize: scaleTo100, log: log}
	// No NormalizeScore, weight 0 (1).
	plain := &fakeScore{name: "Plain", scores: map[string]int64{"n1": 50, "n2": 0, "n3": 10}, log: log}
	// PreScore runs, Score does not; it would make n1 win.
	skipped := &fakePreScoreScore{
		fakeScore: fakeScore{name: "Skipped", scores: map[string]int64{"n1": 100}, log: log},
		preStatus: framework.NewStatus(framework.Skip),
	}
	// PreScore and Score, weight 3.
	pre := &fakePreScoreScore{fakeScore: fakeScore{name: "Pre", scores: map[string]int64{"n2": 5}, log: log}}
	f := newFramework(t, map[string]int32{"Scaled": 2, "Skipped": 5, "Pre": 3}, scaled, plain, skipped, pre)
	if !f.HasScorePlugins() {
		t.Fatal("got no Score plugins, want 4")
	}
	ctx, state, pod := context.Background(), framework.NewCycleState(), testPod()
	if s := f.RunPreScorePlugins(ctx, state, pod, nodes); !s.IsSuccess() {
		t.Fatalf("got PreScore status %v, want success", s)
	}
	if _, ok := state.SkipScorePlugins["Skipped"]; !ok || len(state.SkipScorePlugins) != 1 {
		t.Errorf("got skipped Score plugins %v, want [Skipped]", state.SkipScorePlugins)
	}
	totals, s := f.RunScorePlugins(ctx, state, pod, nodes)
	if !s.IsSuccess() {
		t.Fatalf("got Score status %v, want success", s)
	}
	want := []int64{33*2 + 50, 66*2 + 0 + 5*3, 100*2 + 10}
	if !slices.Equal(totals, want) {
		t.Errorf("got totals %v, want %v", totals, want)
	}
	calls := log.get()
	// Score runs in parallel over nodes: compare as a set, then check
	// that NormalizeScore came after all Scores.
	wantCalls := []string{
		"Skipped.PreScore", "Pre.PreScore",
		"Scaled.Score(n1)", "Scaled.Score(n2)", "Scaled.Score(n3)",
		"Plain.Score(n1)", "Plain.Score(n2)", "Plain.Score(n3)",
		"Pre.Score(n1)", "Pre.Score(n2)", "Pre.Score(n3)",
		"Scaled.NormalizeScore(n1,n2,n3)",
	}
	if !sets.New(calls...).Equal(sets.New(wantCalls...)) || len(calls) != len(wantCalls) {
		t.Errorf("got calls %q, want (in any order of Scores) %q", calls, wantCalls)
	}
	if !slices.Equal(calls[:2], wantCalls[:2]) || calls[len(calls)-1] != "Scaled.NormalizeScore(n1,n2,n3)" {
		t.Errorf("got calls %q, want PreScores first and NormalizeScore last", calls)
	}
}

// TestScoreErrors: a failing PreScore, Score or NormalizeScore, or a score
// out of [0, 100] after normalising, fails the cycle with an Error.
func TestScoreErrors(t *testing.T) {
	failNormalize := func(framework.NodeScoreList) *framework.Status { return framework.AsStatus(errBoom) }
	tests := []struct {
		name    string
		plugin  framework.Plugin
		wantMsg string
		wrapped error
	}{
		{
			name:    "PreScore",
			plugin:  &fakePreScoreScore{fakeScore: fakeScore{name: "S"}, preStatus: framework.AsStatus(errBoom)},
			wantMsg: `running PreScore plugin "S": boom`,
			wrapped: errBoom,
		},
		{
			name:    "Score",
			plugin:  &fakeScore{name: "S", status: framework.AsStatus(errBoom)},
			wantMsg: `running Score plugins: plugin "S" failed with: boom`,
			wrapped: errBoom,
		},
		{
			name:    "NormalizeScore",
			plugin:  &fakeScore{name: "S", normalize: failNormalize},
			wantMsg: `running Normalize on Score plugins: plugin "S" failed with: boom`,
			wrapped: errBoom,
		},
		{
			name:    "score over 100 without NormalizeScore",
			plugin:  &fakeScore{name: "S", scores: map[string]int64{"n2": 101}},
			wantMsg: `plugin "S" returns an invalid score 101, it should be in the range of [0, 100] after normalizing`,
		},
		{
			name: "negative score after NormalizeScore",
			plugin: &fakeScore{name: "S", normalize: func(l framework.NodeScoreList) *framework.Status {
				l[0].Score = -1
				return nil
			}},
			wantMsg: `plugin "S" returns an invalid score -1, it should be in the range of [0, 100] after normalizing`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			switch p := tc.plugin.(type) {
			case *fakeScore:
				p.log = log
			case *fakePreScoreScore:
				p.log = log
			}
			f := newFramework(t, nil, tc.plugin)
			ctx, state, pod, nodes := context.Background(), framework.NewCycleState(), testPod(), nodeInfos("n1", "n2")
			s := f.RunPreScorePlugins(ctx, state, pod, nodes)
			var totals []int64
			if s.IsSuccess() {
				totals, s = f.RunScorePlugins(ctx, state, pod, nodes)
			}
			checkStatus(t, s, statusWant{code: framework.Error, msg: tc.wantMsg, wrapped: tc.wrapped})
			if totals != nil {
				t.Errorf("got totals %v, want none", totals)
			}
		})
	}
}

// TestBind: Bind plugins run in order until one does not return Skip; its
// success binds, its failure is an Error naming it. When all skip, the pod
// is not bound and the status is an Error. A profile without a Bind plugin
// is refused.
func TestBind(t *testing.T) {
	tests := []struct {
		name     string
		statuses []*framework.Status // of binders A, B, C
		want     statusWant
		calls    []string
	}{
		{
			name:  "first binds",
			want:  statusWant{code: framework.Success},
			calls: []string{"A.Bind(n1)"},
		},
		{
			name:     "skip passes to the next",
			statuses: []*framework.Status{framework.NewStatus(framework.Skip), nil, nil},
			want:     statusWant{code: framework.Success},
			calls:    []string{"A.Bind(n1)", "B.Bind(n1)"},
		},
		{
			name:     "error after a skip stops",
			statuses: []*framework.Status{framework.NewStatus(framework.Skip), framework.AsStatus(errBoom), nil},
			want:     statusWant{code: framework.Error, msg: `running Bind plugin "B": boom`, plugin: "B", wrapped: errBoom},
			calls:    []string{"A.Bind(n1)", "B.Bind(n1)"},
		},
		{
			name: "all skip",
			statuses: []*framework.Status{
				framework.NewStatus(framework.Skip), framework.NewStatus(framework.Skip), framework.NewStatus(framework.Skip),
			},
			want:  statusWant{code: framework.Error, msg: "no Bind plugin bound the pod"},
			calls: []string{"A.Bind(n1)", "B.Bind(n1)", "C.Bind(n1)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			var pls []framework.Plugin
			for i, name := range []string{"A", "B", "C"} {
				b := &fakeBind{name: name, log: log}
				if tc.statuses != nil {
					b.status = tc.statuses[i]
				}
				pls = append(pls, b)
			}
			f := newFramework(t, nil, pls...)
			s := f.RunBindPlugins(context.Background(), framework.NewCycleState(), testPod(), "n1")
			checkStatus(t, s, tc.want)
			checkCalls(t, log, tc.calls)
		})
	}

	t.Run("no binder", func(t *testing.T) {
		reg := runtime.Registry{"QueueSort": func(context.Context, any, framework.Handle) (framework.Plugin, error) { return fakeQueueSort{}, nil }}
		_, err := runtime.New(context.Background(), reg, runtime.Profile{SchedulerName: "test", Plugins: []runtime.PluginConfig{{Name: "QueueSort"}}}, runtime.Options{})
		if err == nil || !strings.Contains(err.Error(), "has no Bind plugin") {
			t.Errorf("got error %v, want one saying the profile has no Bind plugin", err)
		}
	})
}
