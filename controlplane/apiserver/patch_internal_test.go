package apiserver

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDefaultListMapKeys: protocol is filled in exactly on the list-maps
// keyed by it, and atomic "ports" lists are left as sent.
func TestDefaultListMapKeys(t *testing.T) {
	tests := []struct {
		name string
		gvk  schema.GroupVersionKind
		in   string
		want string
	}{
		{"service ports", schema.GroupVersionKind{Version: "v1", Kind: "Service"},
			`{"spec":{"ports":[{"port":80},{"port":53,"protocol":"UDP"}]}}`,
			`{"spec":{"ports":[{"port":80,"protocol":"TCP"},{"port":53,"protocol":"UDP"}]}}`},
		{"pod containers, init and ephemeral containers", schema.GroupVersionKind{Version: "v1", Kind: "Pod"},
			`{"spec":{"containers":[{"ports":[{"containerPort":80}]}],"initContainers":[{"ports":[{"containerPort":81}]}],"ephemeralContainers":[{"ports":[{"containerPort":82}]}]}}`,
			`{"spec":{"containers":[{"ports":[{"containerPort":80,"protocol":"TCP"}]}],"ephemeralContainers":[{"ports":[{"containerPort":82,"protocol":"TCP"}]}],"initContainers":[{"ports":[{"containerPort":81,"protocol":"TCP"}]}]}}`},
		{"deployment template", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			`{"spec":{"template":{"spec":{"containers":[{"ports":[{"containerPort":80}]}]}}}}`,
			`{"spec":{"template":{"spec":{"containers":[{"ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}}`},
		{"replicaset template", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
			`{"spec":{"template":{"spec":{"initContainers":[{"ports":[{"containerPort":80}]}]}}}}`,
			`{"spec":{"template":{"spec":{"initContainers":[{"ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}}`},
		{"service port without a port number is not a key match", schema.GroupVersionKind{Version: "v1", Kind: "Service"},
			`{"spec":{"ports":[{"name":"x"}]}}`,
			`{"spec":{"ports":[{"name":"x"}]}}`},
		{"endpointslice ports are atomic", schema.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"},
			`{"ports":[{"port":80}]}`,
			`{"ports":[{"port":80}]}`},
		{"endpoints subsets are atomic", schema.GroupVersionKind{Version: "v1", Kind: "Endpoints"},
			`{"subsets":[{"ports":[{"port":80}]}]}`,
			`{"subsets":[{"ports":[{"port":80}]}]}`},
		{"a pod's other lists", schema.GroupVersionKind{Version: "v1", Kind: "Pod"},
			`{"metadata":{"annotations":{"ports":"x"}},"spec":{"containers":"bad"}}`,
			`{"metadata":{"annotations":{"ports":"x"}},"spec":{"containers":"bad"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			if err := json.Unmarshal([]byte(tc.in), &obj); err != nil {
				t.Fatal(err)
			}
			defaultListMapKeys(tc.gvk, obj)
			got, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
