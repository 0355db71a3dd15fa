package apiserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// hasStatus lists the resources of manifests with a status subresource.
var hasStatus = map[string]bool{
	"namespaces": true, "nodes": true, "pods": true, "services": true, "deployments": true, "replicasets": true,
}

// TestPatchAndApplyEveryResource patches every resource the ways kubectl
// does (kubectl patch --type json|merge|strategic, kubectl apply
// --server-side creating and then updating), and the status subresource
// where there is one. None of them sends metadata.resourceVersion, so each
// is an unconditional update that must validate as one.
func TestPatchAndApplyEveryResource(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	dc := dynamic.NewForConfigOrDie(srv.RESTConfig())
	for _, m := range manifests {
		t.Run(m.gvr.Resource+"."+m.gvr.Group, func(t *testing.T) {
			rc := resourceClient(dc, m.gvr, m.namespaced)
			obj := &unstructured.Unstructured{Object: m.obj}
			name := obj.GetName()
			if _, err := rc.Create(ctx, obj.DeepCopy(), metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
				t.Fatalf("create: %v", err)
			}
			patches := []struct {
				name  string
				typ   types.PatchType
				patch string
				sub   []string
			}{
				{"json", types.JSONPatchType, `[{"op":"add","path":"/metadata/labels","value":{"json":"yes"}}]`, nil},
				{"merge", types.MergePatchType, `{"metadata":{"labels":{"merge":"yes"}}}`, nil},
				{"strategic", types.StrategicMergePatchType, `{"metadata":{"labels":{"strategic":"yes"}}}`, nil},
			}
			if hasStatus[m.gvr.Resource] {
				patches = append(patches, struct {
					name  string
					typ   types.PatchType
					patch string
					sub   []string
				}{"status merge", types.MergePatchType, `{"metadata":{"labels":{"status":"yes"}}}`, []string{"status"}})
			}
			for _, p := range patches {
				out, err := rc.Patch(ctx, name, p.typ, []byte(p.patch), metav1.PatchOptions{FieldManager: "kubectl-patch"}, p.sub...)
				if err != nil {
					t.Errorf("%s patch: got %v, want success", p.name, err)
					continue
				}
				if out.GetResourceVersion() == "" {
					t.Errorf("%s patch: got no resourceVersion in the answer, want one", p.name)
				}
			}

			// kubectl apply --server-side of the same manifest with a label
			// added: an update of an existing object. Forced: conflicts are
			// not this test's subject (the endpointslice's endpoints, an
			// atomic list, differ from the stored ones by conditions {}
			// and conflict with the creator, as upstream).
			applied := obj.DeepCopy()
			applied.SetLabels(map[string]string{"applied": "yes"})
			body, err := json.Marshal(applied.Object)
			if err != nil {
				t.Fatal(err)
			}
			out, err := rc.Patch(ctx, name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubectl", Force: ptr.To(true)})
			if err != nil {
				t.Fatalf("server-side apply of an existing object: got %v, want success", err)
			}
			if out.GetLabels()["applied"] != "yes" {
				t.Errorf("server-side apply: got labels %v, want applied=yes", out.GetLabels())
			}
			// The same apply again changes nothing.
			again, err := rc.Patch(ctx, name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubectl", Force: ptr.To(false)})
			if err != nil {
				t.Fatalf("second server-side apply: got %v, want success", err)
			}
			if again.GetResourceVersion() != out.GetResourceVersion() {
				t.Errorf("second server-side apply: got rv %s, want unchanged %s", again.GetResourceVersion(), out.GetResourceVersion())
			}
			// And apply creating a new object.
			fresh := obj.DeepCopy()
			fresh.SetName(name + "-applied")
			if body, err = json.Marshal(fresh.Object); err != nil {
				t.Fatal(err)
			}
			if _, err := rc.Patch(ctx, fresh.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubectl"}); err != nil {
				t.Fatalf("server-side apply creating an object: got %v, want success", err)
			}
			got, err := rc.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"applied": "yes", "json": "yes", "merge": "yes", "strategic": "yes"}
			for k, v := range want {
				if got.GetLabels()[k] != v {
					t.Errorf("after every patch: got labels %v, want %s=%s", got.GetLabels(), k, v)
				}
			}
		})
	}
}

// TestFailingJSONPatchTestOperation: a JSON patch whose test operation
// fails is 422 with kube-apiserver's Status: the generic "rejected our
// request" message and empty details (no resource, name or causes), for
// the main resource and the scale subresource alike.
func TestFailingJSONPatchTestOperation(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "t"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "t"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "t"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		patch func() error
	}{
		{"configmap", func() error {
			_, err := c.CoreV1().ConfigMaps("default").Patch(ctx, "t", types.JSONPatchType, []byte(`[{"op":"test","path":"/data/a","value":"2"}]`), metav1.PatchOptions{})
			return err
		}},
		{"deployment scale", func() error {
			_, err := c.AppsV1().Deployments("default").Patch(ctx, "t", types.JSONPatchType, []byte(`[{"op":"test","path":"/spec/replicas","value":7}]`), metav1.PatchOptions{}, "scale")
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var se apierrors.APIStatus
			if err := tc.patch(); !errors.As(err, &se) {
				t.Fatalf("got %v, want a Status error", err)
			}
			st := se.Status()
			if st.Code != 422 || st.Reason != metav1.StatusReasonInvalid || st.Message != "the server rejected our request due to an error in our request" {
				t.Errorf("got code %d reason %s message %q, want 422 Invalid %q", st.Code, st.Reason, st.Message, "the server rejected our request due to an error in our request")
			}
			if st.Details != nil && (st.Details.Kind != "" || st.Details.Name != "" || st.Details.Group != "" || len(st.Details.Causes) != 0) {
				t.Errorf("got details %+v, want them empty as kube-apiserver's", *st.Details)
			}
		})
	}
}

// TestApplyListMapsWithDefaultedKeys: the list-maps keyed by a field with
// a default (container ports and Service ports, keyed by port and
// protocol, protocol defaulting to TCP) match the stored entries when an
// applied configuration leaves protocol out: re-applying changes nothing,
// adding an entry adds one, dropping one removes it.
func TestApplyListMapsWithDefaultedKeys(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	dc := dynamic.NewForConfigOrDie(srv.RESTConfig())
	podSpec := func(ports string) string {
		return `{"containers":[{"name":"c","image":"busybox","ports":[` + ports + `]}],` +
			`"initContainers":[{"name":"i","image":"busybox","ports":[` + ports + `]}]}`
	}
	tests := []struct {
		name     string
		resource string
		group    string
		manifest func(ports string) string
		// lists returns the port lists to check in the stored object.
		lists [][]string
	}{
		{"service", "services", "", func(ports string) string {
			return `{"apiVersion":"v1","kind":"Service","metadata":{"name":"ssa-svc"},"spec":{"ports":[` + ports + `]}}`
		}, [][]string{{"spec", "ports"}}},
		{"pod", "pods", "", func(ports string) string {
			return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ssa-pod"},"spec":` + podSpec(ports) + `}`
		}, [][]string{{"spec", "containers", "0", "ports"}, {"spec", "initContainers", "0", "ports"}}},
		{"deployment", "deployments", "apps", func(ports string) string {
			return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"ssa-dep"},"spec":{"selector":{"matchLabels":{"app":"x"}},` +
				`"template":{"metadata":{"labels":{"app":"x"}},"spec":` + podSpec(ports) + `}}}`
		}, [][]string{{"spec", "template", "spec", "containers", "0", "ports"}, {"spec", "template", "spec", "initContainers", "0", "ports"}}},
		{"replicaset", "replicasets", "apps", func(ports string) string {
			return `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"ssa-rs"},"spec":{"selector":{"matchLabels":{"app":"x"}},` +
				`"template":{"metadata":{"labels":{"app":"x"}},"spec":` + podSpec(ports) + `}}}`
		}, [][]string{{"spec", "template", "spec", "containers", "0", "ports"}, {"spec", "template", "spec", "initContainers", "0", "ports"}}},
	}
	portField := func(resource string) string {
		if resource == "services" {
			return "port"
		}
		return "containerPort"
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dc.Resource(schema.GroupVersionResource{Group: tc.group, Version: "v1", Resource: tc.resource}).Namespace("default")
			pf := portField(tc.resource)
			entry := func(n int) string { return fmt.Sprintf(`{"name":"p%d","%s":%d}`, n, pf, n) }
			steps := []struct {
				ports string
				want  []int64
			}{
				{entry(80), []int64{80}},
				{entry(80), []int64{80}},
				{entry(80) + "," + entry(81), []int64{80, 81}},
				{entry(81), []int64{81}},
			}
			var lastRV string
			for i, st := range steps {
				name := map[string]string{"services": "ssa-svc", "pods": "ssa-pod", "deployments": "ssa-dep", "replicasets": "ssa-rs"}[tc.resource]
				obj, err := rc.Patch(ctx, name, types.ApplyPatchType, []byte(tc.manifest(st.ports)), metav1.PatchOptions{FieldManager: "kubectl"})
				if tc.resource == "pods" && i == 2 {
					// A pod's ports are immutable: the change must be
					// refused, not turned into a duplicate.
					if !apierrors.IsInvalid(err) {
						t.Fatalf("step %d: changing a pod's ports: got %v, want Invalid", i, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("step %d: apply %s: %v", i, st.ports, err)
				}
				if i == 1 && obj.GetResourceVersion() != lastRV {
					t.Errorf("step %d: re-applying the same ports: got rv %s, want unchanged %s", i, obj.GetResourceVersion(), lastRV)
				}
				lastRV = obj.GetResourceVersion()
				for _, path := range tc.lists {
					var got []int64
					for _, p := range nestedList(obj.Object, path) {
						m := p.(map[string]any)
						if m["protocol"] != "TCP" {
							t.Errorf("step %d: %v: got protocol %v, want TCP", i, path, m["protocol"])
						}
						got = append(got, m[pf].(int64))
					}
					if fmt.Sprint(got) != fmt.Sprint(st.want) {
						t.Errorf("step %d: %v: got ports %v, want %v", i, path, got, st.want)
					}
				}
			}
		})
	}
}

// nestedList follows path (map keys, and list indexes as numbers) to a
// list.
func nestedList(obj map[string]any, path []string) []any {
	var cur any = obj
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	l, _ := cur.([]any)
	return l
}
