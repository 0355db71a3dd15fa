package resources

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestDiscover(t *testing.T) {
	all := []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	d := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{}}
	d.Resources = []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: all},
			{Name: "pods/status", Kind: "Pod", Namespaced: true, Verbs: all},
			{Name: "bindings", Kind: "Binding", Namespaced: true, Verbs: []string{"create"}},
			{Name: "nodes", Kind: "Node", Namespaced: false, Verbs: all},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: all},
		}},
	}
	s, err := Discover(d, "list", "watch", "delete")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range s.List() {
		names = append(names, r.GVR.Resource)
	}
	if len(names) != 3 {
		t.Errorf("got resources %v, want pods, nodes, replicasets", names)
	}
	tests := []struct {
		apiVersion, kind string
		want             string
		wantErr          error
	}{
		{"apps/v1", "ReplicaSet", "replicasets", nil},
		{"apps/v1beta2", "ReplicaSet", "replicasets", nil},
		{"v1", "Node", "nodes", nil},
		{"v1", "Binding", "", ErrUnknownKind},
		{"example.com/v1", "Widget", "", ErrUnknownKind},
	}
	for _, tt := range tests {
		r, err := s.ForKind(tt.apiVersion, tt.kind)
		if !errors.Is(err, tt.wantErr) || r.GVR.Resource != tt.want {
			t.Errorf("ForKind(%s, %s): got %q, %v, want %q, %v", tt.apiVersion, tt.kind, r.GVR.Resource, err, tt.want, tt.wantErr)
		}
	}
}
