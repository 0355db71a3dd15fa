package pods

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func readyPod(since time.Time, status corev1.ConditionStatus) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(since)}},
	}}
}

func TestIsAvailable(t *testing.T) {
	now := time.Unix(10000, 0)
	tests := []struct {
		name     string
		pod      *corev1.Pod
		minReady int32
		want     bool
	}{
		{"ready no minReady", readyPod(now, corev1.ConditionTrue), 0, true},
		{"not ready", readyPod(now.Add(-time.Hour), corev1.ConditionFalse), 0, false},
		{"no condition", &corev1.Pod{}, 0, false},
		{"ready long enough", readyPod(now.Add(-11*time.Second), corev1.ConditionTrue), 10, true},
		{"ready exactly minReady is not yet", readyPod(now.Add(-10*time.Second), corev1.ConditionTrue), 10, false},
		{"ready too short", readyPod(now.Add(-5*time.Second), corev1.ConditionTrue), 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAvailable(tt.pod, tt.minReady, now); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextAvailabilityCheck(t *testing.T) {
	now := time.Unix(10000, 0)
	ps := []*corev1.Pod{
		readyPod(now.Add(-8*time.Second), corev1.ConditionTrue),  // due in 2s
		readyPod(now.Add(-3*time.Second), corev1.ConditionTrue),  // due in 7s
		readyPod(now.Add(-30*time.Second), corev1.ConditionTrue), // available
		readyPod(now, corev1.ConditionFalse),
	}
	d, ok := NextAvailabilityCheck(ps, 10, now)
	if !ok || d != 2*time.Second+time.Millisecond {
		t.Errorf("got %v %v, want 2.001s true", d, ok)
	}
	if _, ok := NextAvailabilityCheck(ps[2:], 10, now); ok {
		t.Errorf("got a check for pods that need none")
	}
}

func TestIsActive(t *testing.T) {
	del := metav1.Now()
	tests := []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"running", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, true},
		{"pending", corev1.Pod{}, true},
		{"succeeded", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false},
		{"failed", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, false},
		{"deleting", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &del}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsActive(&tt.pod); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
