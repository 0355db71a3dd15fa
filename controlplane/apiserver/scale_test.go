package apiserver_test

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// scaleClient is what the Deployment and ReplicaSet clients share.
type scaleClient struct {
	get    func(name string) (metav1.Object, error)
	update func(name string, sc *autoscalingv1.Scale, manager string) (*autoscalingv1.Scale, error)
	patch  func(name, patch, manager string) error
}

// managedEntry finds the managedFields entry of manager.
func managedEntry(obj metav1.Object, manager string) *metav1.ManagedFieldsEntry {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == manager {
			return &mf
		}
	}
	return nil
}

// TestScaleSubresource: PUT and PATCH of .../scale validate the Scale with
// the registry's Scaler (replicas ≥ 0 on spec.replicas, metadata) and
// record the writer's managed fields as kube-apiserver does: an entry with
// subresource "scale" owning spec.replicas in the workload's version,
// taken from whoever owned it before.
func TestScaleSubresource(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	tmpl := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}
	deps, rss := c.AppsV1().Deployments("default"), c.AppsV1().ReplicaSets("default")
	if _, err := deps.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}, Template: tmpl("w")}}, metav1.CreateOptions{FieldManager: "creator"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rss.Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}, Template: tmpl("w")}}, metav1.CreateOptions{FieldManager: "creator"}); err != nil {
		t.Fatal(err)
	}
	clients := []struct {
		name string
		c    scaleClient
	}{
		{"deployments", scaleClient{
			get: func(n string) (metav1.Object, error) { return deps.Get(ctx, n, metav1.GetOptions{}) },
			update: func(n string, sc *autoscalingv1.Scale, m string) (*autoscalingv1.Scale, error) {
				return deps.UpdateScale(ctx, n, sc, metav1.UpdateOptions{FieldManager: m})
			},
			patch: func(n, p, m string) error {
				_, err := deps.Patch(ctx, n, types.MergePatchType, []byte(p), metav1.PatchOptions{FieldManager: m}, "scale")
				return err
			},
		}},
		{"replicasets", scaleClient{
			get: func(n string) (metav1.Object, error) { return rss.Get(ctx, n, metav1.GetOptions{}) },
			update: func(n string, sc *autoscalingv1.Scale, m string) (*autoscalingv1.Scale, error) {
				return rss.UpdateScale(ctx, n, sc, metav1.UpdateOptions{FieldManager: m})
			},
			patch: func(n, p, m string) error {
				_, err := rss.Patch(ctx, n, types.MergePatchType, []byte(p), metav1.PatchOptions{FieldManager: m}, "scale")
				return err
			},
		}},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			invalid := []struct {
				name      string
				scale     autoscalingv1.Scale
				wantField string
			}{
				{"negative replicas", autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}, "spec.replicas"},
				{"bad label", autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"-bad": "x"}}, Spec: autoscalingv1.ScaleSpec{Replicas: 2}}, "metadata.labels"},
			}
			for _, tc := range invalid {
				_, err := cl.c.update("w", &tc.scale, "hpa")
				var se apierrors.APIStatus
				if !apierrors.IsInvalid(err) || !errors.As(err, &se) {
					t.Fatalf("%s: got %v, want Invalid", tc.name, err)
				}
				st := se.Status()
				if st.Details.Kind != "Scale" || st.Details.Group != "autoscaling" || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != tc.wantField {
					t.Errorf("%s: got details %+v, want kind Scale, group autoscaling, cause on %s", tc.name, st.Details, tc.wantField)
				}
			}

			out, err := cl.c.update("w", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}, "hpa")
			if err != nil {
				t.Fatalf("update scale: %v", err)
			}
			if out.Spec.Replicas != 3 || len(out.ManagedFields) != 0 {
				t.Errorf("update scale: got replicas %d managedFields %v, want 3 and none (as upstream's Scale)", out.Spec.Replicas, out.ManagedFields)
			}
			obj, err := cl.c.get("w")
			if err != nil {
				t.Fatal(err)
			}
			hpa := managedEntry(obj, "hpa")
			if hpa == nil || hpa.Subresource != "scale" || hpa.APIVersion != "apps/v1" || hpa.Operation != metav1.ManagedFieldsOperationUpdate ||
				hpa.FieldsV1 == nil || string(hpa.FieldsV1.Raw) != `{"f:spec":{"f:replicas":{}}}` {
				t.Errorf("after a scale update: got hpa's entry %+v, want Update apps/v1 subresource scale owning spec.replicas", hpa)
			}
			if cr := managedEntry(obj, "creator"); cr == nil || strings.Contains(string(cr.FieldsV1.Raw), `"f:replicas"`) {
				t.Errorf("after a scale update: got creator's entry %+v, want it without spec.replicas", cr)
			}

			if err := cl.c.patch("w", `{"spec":{"replicas":5}}`, "autoscaler"); err != nil {
				t.Fatalf("patch scale: %v", err)
			}
			if obj, err = cl.c.get("w"); err != nil {
				t.Fatal(err)
			}
			as := managedEntry(obj, "autoscaler")
			if as == nil || as.Subresource != "scale" || string(as.FieldsV1.Raw) != `{"f:spec":{"f:replicas":{}}}` {
				t.Errorf("after a scale patch: got autoscaler's entry %+v, want subresource scale owning spec.replicas", as)
			}
			if managedEntry(obj, "hpa") != nil {
				t.Errorf("after a scale patch: got hpa still an owner in %+v, want replicas taken over by autoscaler", obj.GetManagedFields())
			}
		})
	}
}
