package schedulinggates

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestPreEnqueue(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"no gates", st.MakePod().Name("p").Obj(), ""},
		{"gates", st.MakePod().Name("p").SchedulingGates("a", "b").Obj(), "UnschedulableAndUnresolvable: waiting for scheduling gates: [a b]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pt.StatusString((&SchedulingGates{}).PreEnqueue(context.Background(), tt.pod)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
