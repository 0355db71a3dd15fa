package defaultbinder

import (
	"context"
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	pt "github.com/skiff-project/skiff/controlplane/scheduler/internal/plugintest"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

func TestBind(t *testing.T) {
	tests := []struct {
		name    string
		failErr error
		want    string
	}{
		{"binds", nil, ""},
		{"reports API errors", errors.New("boom"), "Error: bind pod default/p to node n1: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset()
			var got *v1.Binding
			client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				got = a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
				return true, got, tt.failErr
			})
			h := pt.NewHandle(t, nil, nil)
			h.Client = client
			pl, err := New(context.Background(), nil, h)
			if err != nil {
				t.Fatal(err)
			}
			pod := st.MakePod().Name("p").UID("uid-p").Obj()
			s := pl.(*DefaultBinder).Bind(context.Background(), nil, pod, "n1")
			if g := pt.StatusString(s); g != tt.want {
				t.Errorf("got status %q, want %q", g, tt.want)
			}
			if got == nil {
				t.Fatalf("got no binding request, want one")
			}
			if got.Name != "p" || got.Namespace != "default" || got.UID != "uid-p" || got.Target.Kind != "Node" || got.Target.Name != "n1" {
				t.Errorf("got binding %s/%s uid %s -> %s %s, want default/p uid uid-p -> Node n1", got.Namespace, got.Name, got.UID, got.Target.Kind, got.Target.Name)
			}
		})
	}
}
