package registry

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestResourcesDiscovery(t *testing.T) {
	tests := []struct {
		gvr          string
		kind         string
		namespaced   bool
		shortNames   []string
		categories   []string
		subresources []string
		storage      string
	}{
		{"/v1/namespaces", "Namespace", false, []string{"ns"}, nil, []string{"finalize", "status"}, "namespaces"},
		{"/v1/nodes", "Node", false, []string{"no"}, nil, []string{"status"}, "nodes"},
		{"/v1/pods", "Pod", true, []string{"po"}, []string{"all"}, []string{"binding", "status"}, "pods"},
		{"/v1/services", "Service", true, []string{"svc"}, []string{"all"}, []string{"status"}, "services"},
		{"/v1/endpoints", "Endpoints", true, []string{"ep"}, nil, nil, "endpoints"},
		{"/v1/configmaps", "ConfigMap", true, []string{"cm"}, nil, nil, "configmaps"},
		{"/v1/secrets", "Secret", true, nil, nil, nil, "secrets"},
		{"/v1/serviceaccounts", "ServiceAccount", true, []string{"sa"}, nil, nil, "serviceaccounts"},
		{"/v1/events", "Event", true, []string{"ev"}, nil, nil, "events"},
		{"apps/v1/deployments", "Deployment", true, []string{"deploy"}, []string{"all"}, []string{"scale", "status"}, "deployments"},
		{"apps/v1/replicasets", "ReplicaSet", true, []string{"rs"}, []string{"all"}, []string{"scale", "status"}, "replicasets"},
		{"discovery.k8s.io/v1/endpointslices", "EndpointSlice", true, nil, nil, nil, "endpointslices"},
		{"events.k8s.io/v1/events", "Event", true, []string{"ev"}, nil, nil, "events"},
		{"coordination.k8s.io/v1/leases", "Lease", true, nil, nil, nil, "leases"},
	}
	resources := Resources()
	if len(resources) != len(tests) {
		t.Fatalf("got %d resources, want %d", len(resources), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.gvr, func(t *testing.T) {
			parts := strings.Split(tt.gvr, "/")
			gvr := schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}
			r := Find(resources, gvr)
			if r == nil {
				t.Fatalf("got no resource for %v", gvr)
			}
			if r.Kind != tt.kind || r.Namespaced != tt.namespaced || r.StorageResource != tt.storage {
				t.Errorf("got kind %q namespaced %v storage %q, want %q %v %q", r.Kind, r.Namespaced, r.StorageResource, tt.kind, tt.namespaced, tt.storage)
			}
			if !reflect.DeepEqual(r.ShortNames, tt.shortNames) || !reflect.DeepEqual(r.Categories, tt.categories) || !reflect.DeepEqual(r.Subresources, tt.subresources) {
				t.Errorf("got shortNames %v categories %v subresources %v, want %v %v %v", r.ShortNames, r.Categories, r.Subresources, tt.shortNames, tt.categories, tt.subresources)
			}
			if r.SingularName != strings.ToLower(tt.kind) {
				t.Errorf("got singular name %q, want %q", r.SingularName, strings.ToLower(tt.kind))
			}
			obj, list := r.New(), r.NewList()
			if !meta.IsListType(list) {
				t.Errorf("got NewList %T, not a list", list)
			}
			if _, err := meta.Accessor(obj); err != nil {
				t.Errorf("got New %T without metadata: %v", obj, err)
			}
			wantVerbs := 8
			if tt.kind == "Namespace" {
				wantVerbs = 7
			}
			if len(r.Verbs) != wantVerbs {
				t.Errorf("got verbs %v, want %d verbs", r.Verbs, wantVerbs)
			}
			// An empty object and an empty list render as tables.
			r.Strategy.Default(obj)
			if _, err := r.Strategy.ConvertToTable(context.Background(), obj, &metav1.TableOptions{}); err != nil {
				t.Errorf("got table error %v for an empty object", err)
			}
			tbl, err := r.Strategy.ConvertToTable(context.Background(), list, nil)
			if err != nil || len(tbl.Rows) != 0 || len(tbl.ColumnDefinitions) == 0 {
				t.Errorf("got table %+v, %v for an empty list, want columns and no rows", tbl, err)
			}
			fs := r.Strategy.SelectableFields(obj)
			if !fs.Has("metadata.name") || fs.Has("metadata.namespace") != tt.namespaced {
				t.Errorf("got selectable fields %v, want metadata.name and metadata.namespace iff namespaced", fs)
			}
		})
	}
}

func TestResourcesFresh(t *testing.T) {
	a, b := Resources(), Resources()
	a[0].ShortNames[0] = "changed"
	if b[0].ShortNames[0] == "changed" {
		t.Errorf("got shared state between Resources calls, want fresh values")
	}
}

// TestCatalogueTolerationSeconds: the pod strategy of the catalogue adds
// the default tolerations with the seconds of the options; Resources uses
// kube-apiserver's 300.
func TestCatalogueTolerationSeconds(t *testing.T) {
	tests := []struct {
		name                          string
		resources                     []*Resource
		wantNotReady, wantUnreachable int64
	}{
		{"Resources", Resources(), 300, 300},
		{"DefaultOptions", Catalogue(DefaultOptions()), 300, 300},
		{"lab", Catalogue(Options{DefaultNotReadyTolerationSeconds: 20, DefaultUnreachableTolerationSeconds: 30}), 20, 30},
		{"zero", Catalogue(Options{}), 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods := Find(tc.resources, schema.GroupVersionResource{Version: "v1", Resource: "pods"})
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			pods.Strategy.Default(pod)
			pods.Strategy.PrepareForCreate(context.Background(), pod)
			got := map[string]int64{}
			for _, tl := range pod.Spec.Tolerations {
				if tl.TolerationSeconds != nil {
					got[tl.Key] = *tl.TolerationSeconds
				}
			}
			want := map[string]int64{corev1.TaintNodeNotReady: tc.wantNotReady, corev1.TaintNodeUnreachable: tc.wantUnreachable}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got toleration seconds %v, want %v", got, want)
			}
		})
	}
}
