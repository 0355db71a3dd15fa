package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// ErrNoNodesAvailable is the error of a cycle in a cluster without nodes.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// noteLengthLimit is the longest event note the API accepts.
const noteLengthLimit = 1024

type scheduleResult struct {
	host      string
	evaluated int
	feasible  int
	// nominated is what a PostFilter plugin said about the pod's
	// nominated node after it fit nowhere: nil to leave it as it is, else
	// the node to set (empty clears it), as upstream's NominatingInfo in
	// ModeOverride.
	nominated *string
}

// scheduleOne runs one scheduling cycle. It returns false when the queue is
// closed.
func (inst *instance) scheduleOne(ctx context.Context) bool {
	qpi, err := inst.queue.Pop()
	if err != nil {
		return false
	}
	pod := qpi.Pod
	if pod.DeletionTimestamp != nil {
		inst.recorder.Eventf(pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling", "skip schedule deleting pod: %v/%v", pod.Namespace, pod.Name)
		inst.queue.Done(pod)
		return true
	}
	if inst.cache.IsAssumedPod(pod) {
		inst.queue.Done(pod)
		return true
	}

	start := time.Now()
	state := framework.NewCycleState()
	state.SetPodInfo(qpi.PodInfo)
	result, status := inst.schedulingCycle(ctx, state, qpi)
	if !status.IsSuccess() {
		inst.handleSchedulingFailure(ctx, qpi, status, result.nominated, start)
		return true
	}

	// Assume the pod on the node now, so the next cycles count it, and bind
	// in the background.
	assumedPod := pod.DeepCopy()
	assumedPod.Spec.NodeName = result.host
	assumedInfo := *qpi.PodInfo
	assumedInfo.Pod = assumedPod
	if err := inst.cache.AssumePod(&assumedInfo); err != nil {
		inst.handleSchedulingFailure(ctx, qpi, framework.AsStatus(fmt.Errorf("assume pod: %w", err)), nil, start)
		return true
	}
	if st := inst.fwk.RunReservePluginsReserve(ctx, state, assumedPod, result.host); !st.IsSuccess() {
		inst.unreserveAndForget(ctx, state, assumedPod, result.host)
		inst.handleSchedulingFailure(ctx, qpi, rejectedOnHost(pod, result.host, st), nil, start)
		return true
	}
	if st := inst.fwk.RunPermitPlugins(ctx, state, assumedPod, result.host); !st.IsSuccess() {
		inst.unreserveAndForget(ctx, state, assumedPod, result.host)
		inst.handleSchedulingFailure(ctx, qpi, rejectedOnHost(pod, result.host, st), nil, start)
		return true
	}
	inst.queue.Done(pod)
	inst.evaluatedNodes += int64(result.evaluated)

	select {
	case inst.bindSem <- struct{}{}:
	case <-ctx.Done():
		inst.unreserveAndForget(ctx, state, assumedPod, result.host)
		return false
	}
	inst.bindWG.Add(1)
	go func() {
		defer inst.bindWG.Done()
		defer func() { <-inst.bindSem }()
		inst.bindingCycle(ctx, state, qpi, assumedPod, result.host, start)
	}()
	return true
}

// rejectedOnHost turns a Reserve or Permit rejection on the chosen host
// into a FitError, as upstream does, so that the pod waits for an event
// the rejecting plugin cares about (not any event) and the message has
// the usual "0/1 nodes are available: ..." form. Errors stay as they are.
func rejectedOnHost(pod *v1.Pod, host string, st *framework.Status) *framework.Status {
	if !st.IsRejected() {
		return st
	}
	d := framework.Diagnosis{NodeToStatus: framework.NewNodeToStatus()}
	d.NodeToStatus.Set(host, st)
	d.AddPluginStatus(st)
	return framework.NewStatus(st.Code()).WithError(&framework.FitError{Pod: pod, NumAllNodes: 1, Diagnosis: d})
}

func (inst *instance) unreserveAndForget(ctx context.Context, state *framework.CycleState, assumedPod *v1.Pod, host string) {
	inst.fwk.RunReservePluginsUnreserve(ctx, state, assumedPod, host)
	if err := inst.cache.ForgetPod(assumedPod); err != nil {
		inst.log.Error("forget assumed pod", "pod", assumedPod.Namespace+"/"+assumedPod.Name, "err", err)
	}
}

// schedulingCycle updates the snapshot and picks a node.
func (inst *instance) schedulingCycle(ctx context.Context, state *framework.CycleState, qpi *framework.QueuedPodInfo) (scheduleResult, *framework.Status) {
	if err := inst.cache.UpdateSnapshot(inst.snapshot); err != nil {
		return scheduleResult{}, framework.AsStatus(fmt.Errorf("update snapshot: %w", err))
	}
	start := time.Now()
	defer func() { inst.s.metrics.algorithm.Observe(time.Since(start).Seconds()) }()

	result, err := inst.schedulePod(ctx, state, qpi.Pod)
	if err == nil {
		return result, nil
	}
	if errors.Is(err, ErrNoNodesAvailable) {
		return result, framework.NewStatus(framework.UnschedulableAndUnresolvable).WithError(err)
	}
	var fitErr *framework.FitError
	if !errors.As(err, &fitErr) {
		return result, framework.AsStatus(err)
	}
	if inst.fwk.HasPostFilterPlugins() {
		pfr, st := inst.fwk.RunPostFilterPlugins(ctx, state, qpi.Pod, fitErr.Diagnosis.NodeToStatus)
		fitErr.Diagnosis.PostFilterMsg = st.Message()
		if pfr != nil {
			inst.log.Debug("pod nominated", "pod", qpi.Pod.Namespace+"/"+qpi.Pod.Name, "node", pfr.NominatedNodeName)
			result.nominated = &pfr.NominatedNodeName
		}
	}
	return result, framework.NewStatus(framework.Unschedulable).WithError(fitErr)
}

// schedulePod filters and scores the nodes for pod.
func (inst *instance) schedulePod(ctx context.Context, state *framework.CycleState, pod *v1.Pod) (scheduleResult, error) {
	numNodes := inst.snapshot.NumNodes()
	if numNodes == 0 {
		return scheduleResult{}, ErrNoNodesAvailable
	}
	feasible, d, err := inst.findNodesThatFitPod(ctx, state, pod)
	if err != nil {
		return scheduleResult{}, err
	}
	if len(feasible) == 0 {
		return scheduleResult{}, &framework.FitError{Pod: pod, NumAllNodes: numNodes, Diagnosis: d.Diagnosis}
	}
	if len(feasible) == 1 {
		return scheduleResult{host: feasible[0].Node().Name, evaluated: 1 + d.evaluatedRejected, feasible: 1}, nil
	}
	if st := inst.fwk.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
		return scheduleResult{}, st.AsError()
	}
	totals, st := inst.fwk.RunScorePlugins(ctx, state, pod, feasible)
	if !st.IsSuccess() {
		return scheduleResult{}, st.AsError()
	}
	return scheduleResult{
		host:      selectHost(feasible, totals),
		evaluated: len(feasible) + d.evaluatedRejected,
		feasible:  len(feasible),
	}, nil
}

// selectHost returns the node with the highest score, breaking ties
// uniformly at random.
func selectHost(nodes []*framework.NodeInfo, scores []int64) string {
	best, ties := 0, 1
	for i := 1; i < len(nodes); i++ {
		switch {
		case scores[i] > scores[best]:
			best, ties = i, 1
		case scores[i] == scores[best]:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return nodes[best].Node().Name
}

// diagnosis wraps framework.Diagnosis with the count of nodes rejected by
// Filter, which is all the success path needs; the per-node statuses are
// only kept when the pod fits nowhere.
type diagnosis struct {
	framework.Diagnosis
	evaluatedRejected int
}

// findNodesThatFitPod runs PreFilter and Filter. It evaluates nodes from
// where the previous cycle stopped and stops once it has found as many
// feasible nodes as the profile wants to score.
func (inst *instance) findNodesThatFitPod(ctx context.Context, state *framework.CycleState, pod *v1.Pod) ([]*framework.NodeInfo, *diagnosis, error) {
	d := &diagnosis{Diagnosis: framework.Diagnosis{NodeToStatus: framework.NewNodeToStatus()}}
	allNodes := inst.snapshot.List()
	preRes, s, withNodes := inst.fwk.RunPreFilterPlugins(ctx, state, pod, allNodes)
	d.UnschedulablePlugins = withNodes
	if !s.IsSuccess() {
		if !s.IsRejected() {
			return nil, d, s.AsError()
		}
		d.NodeToStatus.SetAbsentNodesStatus(s)
		d.PreFilterMsg = s.Message()
		d.AddPluginStatus(s)
		return nil, d, nil
	}

	nodes := allNodes
	if !preRes.AllNodes() {
		nodes = make([]*framework.NodeInfo, 0, len(preRes.NodeNames))
		for name := range preRes.NodeNames {
			if ni, err := inst.snapshot.Get(name); err == nil {
				nodes = append(nodes, ni)
			}
		}
		d.NodeToStatus.SetAbsentNodesStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable,
			fmt.Sprintf("node(s) didn't satisfy plugin(s) %v", sets.List(withNodes))))
	}
	feasible, err := inst.findNodesThatPassFilters(ctx, state, pod, d, nodes, len(nodes) == len(allNodes))
	if err != nil {
		return nil, d, err
	}
	return feasible, d, nil
}

func (inst *instance) findNodesThatPassFilters(ctx context.Context, state *framework.CycleState, pod *v1.Pod, d *diagnosis, nodes []*framework.NodeInfo, rotate bool) ([]*framework.NodeInfo, error) {
	n := len(nodes)
	if n == 0 {
		return nil, nil
	}
	toFind := inst.fwk.FeasibleNodesToFind(n)
	if !inst.fwk.HasScorePlugins() {
		toFind = 1
	}
	start := 0
	if rotate {
		start = inst.nextStartNodeIndex % n
	}
	if cap(inst.feasibleBuf) < toFind {
		inst.feasibleBuf = make([]*framework.NodeInfo, toFind)
	}
	feasible := inst.feasibleBuf[:toFind]
	if !inst.fwk.HasFilterPlugins() {
		for i := range feasible {
			feasible[i] = nodes[(start+i)%n]
		}
		return feasible, nil
	}
	if cap(inst.statusBuf) < n {
		inst.statusBuf = make([]*framework.Status, n)
	}
	statuses := inst.statusBuf[:n]
	defer clear(statuses)

	var found, rejected atomic.Int32
	var stop atomic.Bool
	var errOnce atomic.Pointer[error]
	inst.fwk.Parallelizer().Until(ctx, n, func(i int) {
		if stop.Load() {
			return
		}
		ni := nodes[(start+i)%n]
		st := inst.fwk.RunFilterPlugins(ctx, state, pod, ni)
		switch {
		case st.IsSuccess():
			l := found.Add(1)
			if int(l) > toFind {
				stop.Store(true)
				found.Add(-1)
				return
			}
			feasible[l-1] = ni
		case st.Code() == framework.Error:
			err := st.AsError()
			errOnce.CompareAndSwap(nil, &err)
			stop.Store(true)
		default:
			statuses[i] = st
			rejected.Add(1)
		}
	})
	if e := errOnce.Load(); e != nil {
		return nil, *e
	}
	feasible = feasible[:found.Load()]
	d.evaluatedRejected = int(rejected.Load())
	if rotate {
		inst.nextStartNodeIndex = (start + len(feasible) + d.evaluatedRejected) % n
	}
	if len(feasible) == 0 {
		for i, st := range statuses {
			if st == nil {
				continue
			}
			d.NodeToStatus.Set(nodes[(start+i)%n].Node().Name, st)
			d.AddPluginStatus(st)
		}
	}
	return feasible, nil
}

// bindingCycle binds an assumed pod.
func (inst *instance) bindingCycle(ctx context.Context, state *framework.CycleState, qpi *framework.QueuedPodInfo, assumedPod *v1.Pod, host string, start time.Time) {
	m := inst.s.metrics
	bindStart := time.Now()
	st := inst.fwk.RunPreBindPlugins(ctx, state, assumedPod, host)
	if st.IsSuccess() {
		st = inst.fwk.RunBindPlugins(ctx, state, assumedPod, host)
	}
	m.bindingDuration.Observe(time.Since(bindStart).Seconds())
	if !st.IsSuccess() {
		inst.unreserveAndForget(ctx, state, assumedPod, host)
		// The pod's resources are free again.
		inst.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodDelete, assumedPod, nil, func(p *v1.Pod) bool {
			return p.UID != assumedPod.UID
		})
		if ctx.Err() != nil {
			return
		}
		inst.handleSchedulingFailure(ctx, qpi, st, nil, start)
		return
	}
	inst.cache.FinishBinding(assumedPod)
	profile := inst.s.profile.SchedulerName
	m.attempts.WithLabelValues("scheduled", profile).Inc()
	m.attemptDuration.WithLabelValues("scheduled", profile).Observe(time.Since(start).Seconds())
	if qpi.InitialAttemptTimestamp != nil {
		m.podSchedulingSLI.WithLabelValues(attemptsLabel(qpi.Attempts)).Observe(time.Since(*qpi.InitialAttemptTimestamp).Seconds())
	}
	inst.recorder.Eventf(assumedPod, nil, v1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %v/%v to %v", assumedPod.Namespace, assumedPod.Name, host)
	inst.fwk.RunPostBindPlugins(ctx, state, assumedPod, host)
}

func attemptsLabel(n int) string {
	if n >= 15 {
		return "15+"
	}
	return strconv.Itoa(n)
}

// handleSchedulingFailure requeues the pod, records a FailedScheduling
// event and sets its PodScheduled condition to False and, when nominated
// is not nil, its status.nominatedNodeName.
func (inst *instance) handleSchedulingFailure(ctx context.Context, qpi *framework.QueuedPodInfo, status *framework.Status, nominated *string, start time.Time) {
	profile := inst.s.profile.SchedulerName
	reason := v1.PodReasonSchedulerError
	result := "error"
	if status.IsRejected() {
		reason = v1.PodReasonUnschedulable
		result = "unschedulable"
	}
	inst.s.metrics.attempts.WithLabelValues(result, profile).Inc()
	inst.s.metrics.attemptDuration.WithLabelValues(result, profile).Observe(time.Since(start).Seconds())

	pod := qpi.Pod
	err := status.AsError()
	msg := status.Message()
	qpi.UnschedulablePlugins = nil
	var fitErr *framework.FitError
	switch {
	case errors.Is(err, ErrNoNodesAvailable):
		inst.log.Info("unable to schedule pod; no nodes are registered to the cluster; waiting", "pod", pod.Namespace+"/"+pod.Name)
	case errors.As(err, &fitErr):
		qpi.UnschedulablePlugins = fitErr.Diagnosis.UnschedulablePlugins
		inst.log.Debug("unable to schedule pod; no fit; waiting", "pod", pod.Namespace+"/"+pod.Name, "err", msg)
	default:
		inst.log.Error("error scheduling pod; retrying", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}

	// Requeue the informer's latest version, unless the pod is gone or
	// was bound meanwhile.
	cached, getErr := inst.podLister.Pods(pod.Namespace).Get(pod.Name)
	switch {
	case getErr != nil:
		inst.log.Debug("pod doesn't exist in informer cache", "pod", pod.Namespace+"/"+pod.Name, "err", getErr)
		inst.queue.Done(pod)
		return
	case cached.UID != pod.UID:
		inst.queue.Done(pod)
		return
	case assigned(cached):
		inst.queue.Done(pod)
	default:
		if cached != pod {
			qpi.PodInfo = framework.NewPodInfo(cached)
		}
		if err := inst.queue.AddUnschedulableIfNotPresent(qpi, status.IsRejected()); err != nil {
			inst.log.Debug("requeue pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
		pod = cached
	}
	if assigned(cached) {
		return
	}

	if len(msg) > noteLengthLimit {
		msg = msg[:noteLengthLimit-4] + " ..."
	}
	inst.recorder.Eventf(pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling", "%s", msg)
	cond := &v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: reason, Message: status.Message()}
	if nominated != nil && *nominated == pod.Status.NominatedNodeName {
		nominated = nil
	}
	if !podConditionNeedsUpdate(&pod.Status, cond) && nominated == nil {
		return
	}
	// Update the status off the scheduling goroutine, on the binding pool.
	select {
	case inst.bindSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	inst.bindWG.Add(1)
	go func() {
		defer inst.bindWG.Done()
		defer func() { <-inst.bindSem }()
		if err := inst.patchPodStatus(ctx, pod, cond, nominated); err != nil && !apierrors.IsNotFound(err) {
			inst.log.Error("update pod condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}()
}

// podConditionNeedsUpdate reports whether setting cond changes the status
// (ignoring transition and probe times).
func podConditionNeedsUpdate(status *v1.PodStatus, cond *v1.PodCondition) bool {
	for i := range status.Conditions {
		c := &status.Conditions[i]
		if c.Type == cond.Type {
			return c.Status != cond.Status || c.Reason != cond.Reason || c.Message != cond.Message
		}
	}
	return true
}

// patchPodStatus sets a condition (and the nominated node) with a strategic merge patch of the
// status subresource, as upstream's PatchPodStatus.
func (inst *instance) patchPodStatus(ctx context.Context, pod *v1.Pod, cond *v1.PodCondition, nominated *string) error {
	oldStatus := pod.Status.DeepCopy()
	newStatus := pod.Status.DeepCopy()
	if nominated != nil {
		newStatus.NominatedNodeName = *nominated
	}
	now := metav1.Now()
	cond.LastProbeTime = now
	replaced := false
	for i := range newStatus.Conditions {
		c := &newStatus.Conditions[i]
		if c.Type != cond.Type {
			continue
		}
		if c.Status != cond.Status {
			cond.LastTransitionTime = now
		} else {
			cond.LastTransitionTime = c.LastTransitionTime
		}
		*c = *cond
		replaced = true
	}
	if !replaced {
		cond.LastTransitionTime = now
		newStatus.Conditions = append(newStatus.Conditions, *cond)
	}
	oldData, err := json.Marshal(v1.Pod{Status: *oldStatus})
	if err != nil {
		return fmt.Errorf("marshal old status: %w", err)
	}
	newData, err := json.Marshal(v1.Pod{Status: *newStatus})
	if err != nil {
		return fmt.Errorf("marshal new status: %w", err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, &v1.Pod{})
	if err != nil {
		return fmt.Errorf("create merge patch: %w", err)
	}
	if string(patch) == "{}" {
		return nil
	}
	_, err = inst.s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
