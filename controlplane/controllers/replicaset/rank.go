package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/controllers/pods"
)

// DeletionCostAnnotation lets users rank pods for scale down
// (controller.kubernetes.io/pod-deletion-cost); lower costs go first.
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// podsToDelete picks the diff pods of candidates to delete first. related
// are the active pods of every ReplicaSet with the same controller as the
// scaled one (for the "doubled up on a node" rank).
func podsToDelete(candidates, related []*corev1.Pod, diff int, now time.Time) []*corev1.Pod {
	if diff >= len(candidates) {
		return candidates
	}
	ranked := rankPods(candidates, related, now)
	sort.Sort(ranked)
	return ranked.pods[:diff]
}

func rankPods(candidates, related []*corev1.Pod, now time.Time) *rankedPods {
	onNode := map[string]int{}
	for _, p := range related {
		if pods.IsActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	r := &rankedPods{pods: append([]*corev1.Pod(nil), candidates...), rank: make([]int, len(candidates)), now: now}
	for i, p := range r.pods {
		r.rank[i] = onNode[p.Spec.NodeName]
	}
	return r
}

// rankedPods sorts pods in kube-controller-manager's scale-down order: the
// first pods are the cheapest to lose.
type rankedPods struct {
	pods []*corev1.Pod
	rank []int
	now  time.Time
}

func (s *rankedPods) Len() int { return len(s.pods) }
func (s *rankedPods) Swap(i, j int) {
	s.pods[i], s.pods[j] = s.pods[j], s.pods[i]
	s.rank[i], s.rank[j] = s.rank[j], s.rank[i]
}

func (s *rankedPods) Less(i, j int) bool {
	a, b := s.pods[i], s.pods[j]
	// 1. Unscheduled < scheduled.
	if a.Spec.NodeName != b.Spec.NodeName && (a.Spec.NodeName == "" || b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	// 2. Pending < Unknown < Running.
	if phaseOrdinal[a.Status.Phase] != phaseOrdinal[b.Status.Phase] {
		return phaseOrdinal[a.Status.Phase] < phaseOrdinal[b.Status.Phase]
	}
	// 3. Not ready < ready.
	if pods.IsReady(a) != pods.IsReady(b) {
		return !pods.IsReady(a)
	}
	// 4. Lower deletion cost < higher.
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	// 5. Doubled up on a node < alone.
	if s.rank[i] != s.rank[j] {
		return s.rank[i] > s.rank[j]
	}
	// 6. Ready for less time < more time (log2 buckets).
	if pods.IsReady(a) && pods.IsReady(b) {
		ta, tb := readyTime(a), readyTime(b)
		if !ta.Equal(tb) {
			if ta.IsZero() || tb.IsZero() {
				return afterOrZero(ta, tb)
			}
			if d := logRankDiff(ta, tb, s.now); d != 0 {
				return d < 0
			}
			return a.UID < b.UID
		}
	}
	// 7. More restarts < fewer.
	if ra, rb := maxRestarts(a), maxRestarts(b); ra != rb {
		return ra > rb
	}
	// 8. Newer < older.
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		if ta.IsZero() || tb.IsZero() {
			return afterOrZero(ta, tb)
		}
		if d := logRankDiff(ta, tb, s.now); d != 0 {
			return d < 0
		}
		return a.UID < b.UID
	}
	return false
}

func deletionCost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[DeletionCostAnnotation]
	if !ok {
		return 0
	}
	c, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(c)
}

func readyTime(p *corev1.Pod) time.Time {
	if c := pods.ReadyCondition(p); c != nil && c.Status == corev1.ConditionTrue {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, c := range p.Status.ContainerStatuses {
		m = max(m, c.RestartCount)
	}
	return m
}

// afterOrZero reports whether t1 is after t2, a zero time counting as after
// any other.
func afterOrZero(t1, t2 time.Time) bool {
	if t1.IsZero() || t2.IsZero() {
		return t1.IsZero()
	}
	return t1.After(t2)
}

// logRankDiff compares the base-2 logarithms of the ages of t1 and t2, so
// that pods of about the same age rank alike and ties fall to the UID.
func logRankDiff(t1, t2, now time.Time) int64 {
	r := func(t time.Time) int64 {
		d := now.Sub(t)
		if d <= 0 {
			return -1
		}
		return int64(math.Log2(float64(d)))
	}
	return r(t1) - r(t2)
}
