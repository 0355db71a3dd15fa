package queuesort

import (
	"testing"
	"time"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestLess(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := func(prio int32, ts time.Time) *framework.QueuedPodInfo {
		return &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(st.MakePod().Name("p").Priority(prio).Obj()), Timestamp: ts}
	}
	tests := []struct {
		name string
		a, b *framework.QueuedPodInfo
		want bool
	}{
		{"higher priority first", q(10, t0.Add(time.Second)), q(5, t0), true},
		{"lower priority later", q(5, t0), q(10, t0.Add(time.Second)), false},
		{"same priority, earlier first", q(5, t0), q(5, t0.Add(time.Second)), true},
		{"same priority, later second", q(5, t0.Add(time.Second)), q(5, t0), false},
		{"no priority is zero", &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(st.MakePod().Name("p").Obj()), Timestamp: t0}, q(1, t0), false},
	}
	pl := &PrioritySort{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pl.Less(tt.a, tt.b); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
