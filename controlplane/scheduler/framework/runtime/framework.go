// Package runtime runs a scheduling profile: it builds the profile's plugins
// from a registry of factories and runs them at each extension point, in the
// order the profile lists them. Filter and Score run over nodes in parallel
// on the profile's Parallelizer.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Registry maps plugin names to factories.
type Registry map[string]framework.PluginFactory

// Merge adds the factories of o; a name in both is an error.
func (r Registry) Merge(o Registry) error {
	for name, f := range o {
		if _, ok := r[name]; ok {
			return fmt.Errorf("plugin %q already registered", name)
		}
		r[name] = f
	}
	return nil
}

// PluginConfig enables one plugin in a profile.
type PluginConfig struct {
	Name string
	// Weight multiplies the plugin's normalised scores; 0 means 1.
	Weight int32
	// Args are the plugin's arguments (the type its factory expects); nil
	// for defaults.
	Args any
}

// Profile is a named set of plugins. Every plugin runs at every extension
// point it implements (upstream's "multiPoint"), in the order listed.
type Profile struct {
	// SchedulerName is the spec.schedulerName of the pods the profile
	// schedules.
	SchedulerName string
	Plugins       []PluginConfig
	// PercentageOfNodesToScore caps how many feasible nodes a cycle looks
	// for; 0 uses the adaptive rule (50% minus 1% per 125 nodes, at least
	// 5%, at least 100 nodes).
	PercentageOfNodesToScore int32
}

// Options are what the framework hands to plugins through the Handle.
type Options struct {
	Log             *slog.Logger
	Client          kubernetes.Interface
	InformerFactory informers.SharedInformerFactory
	EventRecorder   events.EventRecorder
	Snapshot        framework.SharedLister
	Parallelizer    framework.Parallelizer
}

type scorePlugin struct {
	pl     framework.ScorePlugin
	ext    framework.ScoreExtensions
	weight int64
}

// Framework runs one profile's plugins. It is the plugins' Handle.
type Framework struct {
	opts    Options
	profile Profile

	queueSort  framework.QueueSortPlugin
	preEnqueue []framework.PreEnqueuePlugin
	preFilter  []framework.PreFilterPlugin
	filter     []framework.FilterPlugin
	postFilter []framework.PostFilterPlugin
	preScore   []framework.PreScorePlugin
	score      []scorePlugin
	reserve    []framework.ReservePlugin
	permit     []framework.PermitPlugin
	preBind    []framework.PreBindPlugin
	bind       []framework.BindPlugin
	postBind   []framework.PostBindPlugin
	hints      map[string][]framework.ClusterEventWithHint
	plugins    map[string]framework.Plugin

	scoreBufs sync.Pool
}

var _ framework.Handle = (*Framework)(nil)

// New builds the profile's plugins from the registry.
func New(ctx context.Context, r Registry, profile Profile, opts Options) (*Framework, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Parallelizer == nil {
		opts.Parallelizer = framework.NewParallelizer(1)
	}
	f := &Framework{
		opts:    opts,
		profile: profile,
		hints:   make(map[string][]framework.ClusterEventWithHint),
		plugins: make(map[string]framework.Plugin),
	}
	for _, pc := range profile.Plugins {
		if _, dup := f.plugins[pc.Name]; dup {
			return nil, fmt.Errorf("plugin %q enabled twice in profile %q", pc.Name, profile.SchedulerName)
		}
		factory, ok := r[pc.Name]
		if !ok {
			return nil, fmt.Errorf("plugin %q of profile %q is not registered", pc.Name, profile.SchedulerName)
		}
		pl, err := factory(ctx, pc.Args, f)
		if err != nil {
			return nil, fmt.Errorf("build plugin %q: %w", pc.Name, err)
		}
		f.plugins[pc.Name] = pl
		f.add(pl, pc)
	}
	if f.queueSort == nil {
		return nil, fmt.Errorf("profile %q has no QueueSort plugin", profile.SchedulerName)
	}
	if len(f.bind) == 0 {
		return nil, fmt.Errorf("profile %q has no Bind plugin", profile.SchedulerName)
	}
	if profile.PercentageOfNodesToScore < 0 || profile.PercentageOfNodesToScore > 100 {
		return nil, fmt.Errorf("percentageOfNodesToScore %d of profile %q is not in [0, 100]", profile.PercentageOfNodesToScore, profile.SchedulerName)
	}
	return f, nil
}

func (f *Framework) add(pl framework.Plugin, pc PluginConfig) {
	if p, ok := pl.(framework.QueueSortPlugin); ok {
		if f.queueSort == nil {
			f.queueSort = p
		}
	}
	if p, ok := pl.(framework.PreEnqueuePlugin); ok {
		f.preEnqueue = append(f.preEnqueue, p)
	}
	if p, ok := pl.(framework.PreFilterPlugin); ok {
		f.preFilter = append(f.preFilter, p)
	}
	if p, ok := pl.(framework.FilterPlugin); ok {
		f.filter = append(f.filter, p)
	}
	if p, ok := pl.(framework.PostFilterPlugin); ok {
		f.postFilter = append(f.postFilter, p)
	}
	if p, ok := pl.(framework.PreScorePlugin); ok {
		f.preScore = append(f.preScore, p)
	}
	if p, ok := pl.(framework.ScorePlugin); ok {
		w := int64(pc.Weight)
		if w == 0 {
			w = 1
		}
		f.score = append(f.score, scorePlugin{pl: p, ext: p.ScoreExtensions(), weight: w})
	}
	if p, ok := pl.(framework.ReservePlugin); ok {
		f.reserve = append(f.reserve, p)
	}
	if p, ok := pl.(framework.PermitPlugin); ok {
		f.permit = append(f.permit, p)
	}
	if p, ok := pl.(framework.PreBindPlugin); ok {
		f.preBind = append(f.preBind, p)
	}
	if p, ok := pl.(framework.BindPlugin); ok {
		f.bind = append(f.bind, p)
	}
	if p, ok := pl.(framework.PostBindPlugin); ok {
		f.postBind = append(f.postBind, p)
	}
	if p, ok := pl.(framework.EnqueueExtensions); ok {
		f.hints[pl.Name()] = p.EventsToRegister()
	}
}

// ProfileName is the profile's scheduler name.
func (f *Framework) ProfileName() string { return f.profile.SchedulerName }

// PercentageOfNodesToScore returns the profile's setting (0 = adaptive).
func (f *Framework) PercentageOfNodesToScore() int32 { return f.profile.PercentageOfNodesToScore }

// QueueSortLess is the QueueSort plugin's order.
func (f *Framework) QueueSortLess() func(a, b *framework.QueuedPodInfo) bool { return f.queueSort.Less }

// PreEnqueuePlugins returns the PreEnqueue plugins.
func (f *Framework) PreEnqueuePlugins() []framework.PreEnqueuePlugin { return f.preEnqueue }

// EnqueueHints returns the events each plugin registered.
func (f *Framework) EnqueueHints() map[string][]framework.ClusterEventWithHint { return f.hints }

// Plugin returns an enabled plugin by name.
func (f *Framework) Plugin(name string) (framework.Plugin, bool) {
	p, ok := f.plugins[name]
	return p, ok
}

// HasFilterPlugins reports whether any Filter plugin is enabled.
func (f *Framework) HasFilterPlugins() bool { return len(f.filter) > 0 }

// HasScorePlugins reports whether any Score plugin is enabled.
func (f *Framework) HasScorePlugins() bool { return len(f.score) > 0 }

// HasPostFilterPlugins reports whether any PostFilter plugin is enabled.
func (f *Framework) HasPostFilterPlugins() bool { return len(f.postFilter) > 0 }

// Handle.

// SnapshotSharedLister implements framework.Handle.
func (f *Framework) SnapshotSharedLister() framework.SharedLister { return f.opts.Snapshot }

// Parallelizer implements framework.Handle.
func (f *Framework) Parallelizer() framework.Parallelizer { return f.opts.Parallelizer }

// ClientSet implements framework.Handle.
func (f *Framework) ClientSet() kubernetes.Interface { return f.opts.Client }

// SharedInformerFactory implements framework.Handle.
func (f *Framework) SharedInformerFactory() informers.SharedInformerFactory {
	return f.opts.InformerFactory
}

// EventRecorder implements framework.Handle.
func (f *Framework) EventRecorder() events.EventRecorder { return f.opts.EventRecorder }

// Log implements framework.Handle.
func (f *Framework) Log() *slog.Logger { return f.opts.Log }

// Extension points.

// RunPreFilterPlugins runs the PreFilter plugins. It returns the merged
// PreFilterResult, the status, and the plugins whose results narrowed the
// nodes. Plugins that return Skip have their Filter skipped for the cycle.
// A rejection's status names its plugin.
func (f *Framework) RunPreFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status, sets.Set[string]) {
	var result *framework.PreFilterResult
	withNodes := sets.New[string]()
	var skip map[string]struct{}
	var rejected *framework.Status
	defer func() {
		state.SkipFilterPlugins = skip
		active := make([]framework.FilterPlugin, 0, len(f.filter))
		for _, pl := range f.filter {
			if _, ok := skip[pl.Name()]; !ok {
				active = append(active, pl)
			}
		}
		state.SetActiveFilterPlugins(active)
	}()
	for _, pl := range f.preFilter {
		r, s := pl.PreFilter(ctx, state, pod, nodes)
		if s.IsSkip() {
			if skip == nil {
				skip = make(map[string]struct{})
			}
			skip[pl.Name()] = struct{}{}
			continue
		}
		if !s.IsSuccess() {
			s.WithPlugin(pl.Name())
			switch s.Code() {
			case framework.UnschedulableAndUnresolvable:
				// Preemption cannot help; no need to run the rest.
				return nil, s, nil
			case framework.Unschedulable:
				// Preemption may help: keep running the others so their
				// state exists for it.
				rejected = s
				continue
			default:
				return nil, framework.AsStatus(fmt.Errorf("running PreFilter plugin %q: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name()), nil
			}
		}
		if !r.AllNodes() {
			withNodes.Insert(pl.Name())
		}
		result = result.Merge(r)
		if !result.AllNodes() && len(result.NodeNames) == 0 {
			names := sets.List(withNodes)
			msg := fmt.Sprintf("node(s) didn't satisfy plugin(s) %v simultaneously", names)
			if len(names) == 1 {
				msg = fmt.Sprintf("node(s) didn't satisfy plugin %v", names[0])
			}
			return result, framework.NewStatus(framework.UnschedulableAndUnresolvable, msg), withNodes
		}
	}
	return result, rejected, withNodes
}

// RunFilterPlugins runs the Filter plugins for one node and returns the
// first rejection, with its plugin recorded.
func (f *Framework) RunFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	plugins := state.ActiveFilterPlugins()
	if plugins == nil {
		plugins = f.filter
	}
	for _, pl := range plugins {
		if s := pl.Filter(ctx, state, pod, nodeInfo); !s.IsSuccess() {
			if !s.IsRejected() {
				return framework.AsStatus(fmt.Errorf("running %q filter plugin: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name())
			}
			return s.WithPlugin(pl.Name())
		}
	}
	return nil
}

// RunPreFilterExtensionAddPod tells the PreFilter plugins that a pod is
// (hypothetically) added to a node.
func (f *Framework) RunPreFilterExtensionAddPod(ctx context.Context, state *framework.CycleState, podToSchedule *v1.Pod, podInfoToAdd *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	for _, pl := range f.preFilter {
		if _, skip := state.SkipFilterPlugins[pl.Name()]; skip {
			continue
		}
		if ext := pl.PreFilterExtensions(); ext != nil {
			if s := ext.AddPod(ctx, state, podToSchedule, podInfoToAdd, nodeInfo); !s.IsSuccess() {
				return framework.AsStatus(fmt.Errorf("running AddPod on PreFilter plugin %q: %w", pl.Name(), statusError(s)))
			}
		}
	}
	return nil
}

// RunPreFilterExtensionRemovePod tells the PreFilter plugins that a pod is
// (hypothetically) removed from a node.
func (f *Framework) RunPreFilterExtensionRemovePod(ctx context.Context, state *framework.CycleState, podToSchedule *v1.Pod, podInfoToRemove *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	for _, pl := range f.preFilter {
		if _, skip := state.SkipFilterPlugins[pl.Name()]; skip {
			continue
		}
		if ext := pl.PreFilterExtensions(); ext != nil {
			if s := ext.RemovePod(ctx, state, podToSchedule, podInfoToRemove, nodeInfo); !s.IsSuccess() {
				return framework.AsStatus(fmt.Errorf("running RemovePod on PreFilter plugin %q: %w", pl.Name(), statusError(s)))
			}
		}
	}
	return nil
}

// RunPostFilterPlugins runs the PostFilter plugins, as upstream does, until
// one returns Success, UnschedulableAndUnresolvable (nothing can help: the
// rest do not run) or an error; any code a PostFilter plugin may not
// return (Skip, Wait) is an error. When every plugin returns Unschedulable
// the status is Unschedulable with all their reasons, naming the first.
func (f *Framework) RunPostFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, statuses *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	var reasons []string
	var result *framework.PostFilterResult
	var rejector string
	for _, pl := range f.postFilter {
		r, s := pl.PostFilter(ctx, state, pod, statuses)
		switch s.Code() {
		case framework.Success:
			return r, s
		case framework.UnschedulableAndUnresolvable:
			return r, s.WithPlugin(pl.Name())
		case framework.Unschedulable:
		default:
			// The plugin's own error, as upstream; AsError is nil for
			// Skip, which must not pass for a success.
			err := s.AsError()
			if err == nil {
				err = fmt.Errorf("PostFilter plugin %q returned %v", pl.Name(), s)
			}
			return nil, framework.AsStatus(err).WithPlugin(pl.Name())
		}
		if r != nil && result == nil {
			result = r
		}
		reasons = append(reasons, s.Reasons()...)
		if rejector == "" {
			rejector = pl.Name()
		}
	}
	return result, framework.NewStatus(framework.Unschedulable, reasons...).WithPlugin(rejector)
}

// RunPreScorePlugins runs the PreScore plugins; plugins that return Skip
// have their Score skipped for the cycle.
func (f *Framework) RunPreScorePlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	var skip map[string]struct{}
	for _, pl := range f.preScore {
		s := pl.PreScore(ctx, state, pod, nodes)
		if s.IsSkip() {
			if skip == nil {
				skip = make(map[string]struct{})
			}
			skip[pl.Name()] = struct{}{}
			continue
		}
		if !s.IsSuccess() {
			return framework.AsStatus(fmt.Errorf("running PreScore plugin %q: %w", pl.Name(), statusError(s)))
		}
	}
	state.SkipScorePlugins = skip
	active := make([]int, 0, len(f.score))
	for i, sp := range f.score {
		if _, ok := skip[sp.pl.Name()]; !ok {
			active = append(active, i)
		}
	}
	state.SetActiveScorePlugins(active)
	return nil
}

// scoreBuffers are RunScorePlugins' scratch space, pooled across cycles.
type scoreBuffers struct {
	raw  []int64
	list framework.NodeScoreList
}

// RunScorePlugins scores the nodes with every active Score plugin,
// normalises each plugin's scores, and returns the weighted totals in the
// order of nodes.
func (f *Framework) RunScorePlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) ([]int64, *framework.Status) {
	active := state.ActiveScorePlugins()
	if active == nil {
		active = make([]int, len(f.score))
		for i := range f.score {
			active[i] = i
		}
	}
	n := len(nodes)
	totals := make([]int64, n)
	if len(active) == 0 {
		return totals, nil
	}
	buf, _ := f.scoreBufs.Get().(*scoreBuffers)
	if buf == nil {
		buf = &scoreBuffers{}
	}
	defer f.scoreBufs.Put(buf)
	if cap(buf.raw) < len(active)*n {
		buf.raw = make([]int64, len(active)*n)
	}
	raw := buf.raw[:len(active)*n]

	var errOnce sync.Once
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.opts.Parallelizer.Until(ctx, n, func(i int) {
		ni := nodes[i]
		for j, idx := range active {
			pl := f.score[idx].pl
			s, st := pl.Score(ctx, state, pod, ni)
			if !st.IsSuccess() {
				errOnce.Do(func() {
					firstErr = fmt.Errorf("plugin %q failed with: %w", pl.Name(), statusError(st))
					cancel()
				})
				return
			}
			raw[j*n+i] = s
		}
	})
	if firstErr != nil {
		return nil, framework.AsStatus(fmt.Errorf("running Score plugins: %w", firstErr))
	}
	if err := ctx.Err(); err != nil {
		return nil, framework.AsStatus(err)
	}
	for j, idx := range active {
		sp := f.score[idx]
		scores := raw[j*n : (j+1)*n]
		if sp.ext != nil {
			if cap(buf.list) < n {
				buf.list = make(framework.NodeScoreList, n)
			}
			list := buf.list[:n]
			for i := range list {
				list[i] = framework.NodeScore{Name: nodes[i].Node().Name, Score: scores[i]}
			}
			if st := sp.ext.NormalizeScore(ctx, state, pod, list); !st.IsSuccess() {
				return nil, framework.AsStatus(fmt.Errorf("running Normalize on Score plugins: plugin %q failed with: %w", sp.pl.Name(), statusError(st)))
			}
			for i := range list {
				scores[i] = list[i].Score
			}
		}
		for i, s := range scores {
			if s > framework.MaxNodeScore || s < framework.MinNodeScore {
				return nil, framework.AsStatus(fmt.Errorf("plugin %q returns an invalid score %v, it should be in the range of [%v, %v] after normalizing",
					sp.pl.Name(), s, framework.MinNodeScore, framework.MaxNodeScore))
			}
			totals[i] += s * sp.weight
		}
	}
	return totals, nil
}

// RunReservePluginsReserve runs Reserve; on failure the caller runs
// Unreserve.
func (f *Framework) RunReservePluginsReserve(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	for _, pl := range f.reserve {
		if s := pl.Reserve(ctx, state, pod, nodeName); !s.IsSuccess() {
			if s.IsRejected() {
				return s.WithPlugin(pl.Name())
			}
			return framework.AsStatus(fmt.Errorf("running Reserve plugin %q: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name())
		}
	}
	return nil
}

// RunReservePluginsUnreserve runs Unreserve in reverse order.
func (f *Framework) RunReservePluginsUnreserve(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) {
	for i := len(f.reserve) - 1; i >= 0; i-- {
		f.reserve[i].Unreserve(ctx, state, pod, nodeName)
	}
}

// errPermitWait is returned for a Permit plugin that asks to wait, which
// this framework does not support.
var errPermitWait = errors.New("permit plugins that wait are not supported")

// RunPermitPlugins runs Permit.
func (f *Framework) RunPermitPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	for _, pl := range f.permit {
		s, _ := pl.Permit(ctx, state, pod, nodeName)
		switch {
		case s.IsSuccess():
		case s.IsRejected():
			return s.WithPlugin(pl.Name())
		case s.IsWait():
			return framework.AsStatus(fmt.Errorf("plugin %q: %w", pl.Name(), errPermitWait)).WithPlugin(pl.Name())
		default:
			return framework.AsStatus(fmt.Errorf("running Permit plugin %q: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name())
		}
	}
	return nil
}

// RunPreBindPlugins runs PreBind.
func (f *Framework) RunPreBindPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	for _, pl := range f.preBind {
		if s := pl.PreBind(ctx, state, pod, nodeName); !s.IsSuccess() && !s.IsSkip() {
			return framework.AsStatus(fmt.Errorf("running PreBind plugin %q: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name())
		}
	}
	return nil
}

// RunBindPlugins runs Bind plugins until one does not skip.
func (f *Framework) RunBindPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	for _, pl := range f.bind {
		s := pl.Bind(ctx, state, pod, nodeName)
		if s.IsSkip() {
			continue
		}
		if !s.IsSuccess() {
			return framework.AsStatus(fmt.Errorf("running Bind plugin %q: %w", pl.Name(), statusError(s))).WithPlugin(pl.Name())
		}
		return nil
	}
	return framework.NewStatus(framework.Error, "no Bind plugin bound the pod")
}

// RunPostBindPlugins runs PostBind.
func (f *Framework) RunPostBindPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) {
	for _, pl := range f.postBind {
		pl.PostBind(ctx, state, pod, nodeName)
	}
}

// FeasibleNodesToFind is how many feasible nodes a cycle looks for among
// numAllNodes before it stops filtering: all of them below 100 nodes,
// otherwise the profile's percentage or the adaptive one (50% minus 1% per
// 125 nodes, at least 5%), and never fewer than 100.
func (f *Framework) FeasibleNodesToFind(numAllNodes int) int {
	const minFeasible = 100
	const minPercentage = 5
	if numAllNodes < minFeasible {
		return numAllNodes
	}
	percentage := int(f.profile.PercentageOfNodesToScore)
	if percentage == 0 {
		percentage = 50 - numAllNodes/125
		if percentage < minPercentage {
			percentage = minPercentage
		}
	}
	n := numAllNodes * percentage / 100
	if n < minFeasible {
		return minFeasible
	}
	return n
}

// statusError is a plugin's status that is neither a success nor a
// rejection, as an error: its error or message, or, when it has neither
// (a Skip where the extension point does not allow one, or a bare Error),
// its code, so that "running X: returned Skip" never reads as an empty or
// nil error.
func statusError(s *framework.Status) error {
	if err := s.AsError(); err != nil && err.Error() != "" {
		return err
	}
	return fmt.Errorf("returned %v", s.Code())
}
