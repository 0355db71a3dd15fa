package nodeports

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	const rejected = "Unschedulable: " + ErrReason
	tests := []struct {
		name     string
		existing *v1.Pod
		pod      *v1.Pod
		want     string
	}{
		{"no host ports", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "", 80).Obj(), st.MakePod().Name("p").Obj(), ""},
		{"same port and protocol", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "", 80).Obj(), rejected},
		{"same port, other protocol", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolUDP, "", 80).Obj(), ""},
		{"other port", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "", 8080).Obj(), ""},
		{"different host IPs", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "10.0.0.1", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "10.0.0.2", 80).Obj(), ""},
		{"all addresses against one", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "10.0.0.1", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "0.0.0.0", 80).Obj(), rejected},
		{"one address against all", st.MakePod().Name("e").HostPort(v1.ProtocolTCP, "", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "10.0.0.2", 80).Obj(), rejected},
		{"empty protocol means TCP", st.MakePod().Name("e").HostPort("", "", 80).Obj(),
			st.MakePod().Name("p").HostPort(v1.ProtocolTCP, "", 80).Obj(), rejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := st.MakeNode().Name("n").Obj()
			tt.existing.Spec.NodeName = "n"
			h := pt.NewHandle(t, []*v1.Pod{tt.existing}, []*v1.Node{node})
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := pt.StatusString(pt.RunFilter(t, h, pl, tt.pod)["n"]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
