package apiserver_test

import (
	"encoding/json"
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

func TestFinalizers(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "f", Finalizers: []string{"skiff.dev/test"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "f", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	cm, err := cms.Get(ctx, "f", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get while finalizing: %v", err)
	}
	if cm.DeletionTimestamp == nil || cm.DeletionGracePeriodSeconds == nil || *cm.DeletionGracePeriodSeconds != 0 {
		t.Fatalf("while finalizing: got deletionTimestamp %v grace %v, want set and 0", cm.DeletionTimestamp, cm.DeletionGracePeriodSeconds)
	}
	// An update cannot clear the deletion timestamp.
	cm.DeletionTimestamp = nil
	cm.Data = map[string]string{"a": "b"}
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm.DeletionTimestamp == nil {
		t.Fatalf("update: got deletionTimestamp cleared, want kept")
	}
	cm.Finalizers = nil
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("remove finalizer: %v", err)
	}
	if _, err := cms.Get(ctx, "f", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the last finalizer: got %v, want NotFound", err)
	}

	// Propagation policies become finalizers for the garbage collector.
	tests := []struct {
		policy metav1.DeletionPropagation
		want   string
	}{
		{metav1.DeletePropagationForeground, metav1.FinalizerDeleteDependents},
		{metav1.DeletePropagationOrphan, metav1.FinalizerOrphanDependents},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy), func(t *testing.T) {
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			if err := cms.Delete(ctx, "p", metav1.DeleteOptions{PropagationPolicy: &tc.policy}); err != nil {
				t.Fatal(err)
			}
			cm, err := cms.Get(ctx, "p", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if len(cm.Finalizers) != 1 || cm.Finalizers[0] != tc.want || cm.DeletionTimestamp == nil {
				t.Errorf("got finalizers %v deletionTimestamp %v, want [%s] and set", cm.Finalizers, cm.DeletionTimestamp, tc.want)
			}
			cm.Finalizers = nil
			if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPodGracefulDeletion(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	pods := srv.Client().CoreV1().Pods("default")
	mk := func(name, node string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("scheduled", "n1")
	if err := pods.Delete(ctx, "scheduled", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "scheduled", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("scheduled pod after delete: got %v, want it terminating", err)
	}
	if p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("terminating pod: got deletionTimestamp %v grace %v, want set and 30", p.DeletionTimestamp, p.DeletionGracePeriodSeconds)
	}
	// A shorter grace period shortens it; the agent's delete with 0 removes it.
	if err := pods.Delete(ctx, "scheduled", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](5)}); err != nil {
		t.Fatal(err)
	}
	if p, _ = pods.Get(ctx, "scheduled", metav1.GetOptions{}); p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 5 {
		t.Fatalf("shortened: got grace %v, want 5", p.DeletionGracePeriodSeconds)
	}
	if err := pods.Delete(ctx, "scheduled", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "scheduled", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after grace 0: got %v, want NotFound", err)
	}
	// A pod never scheduled goes at once.
	mk("pending", "")
	if err := pods.Delete(ctx, "pending", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "pending", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unscheduled pod after delete: got %v, want NotFound", err)
	}
	// Preconditions.
	mk("pre", "")
	if err := pods.Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("nope"))}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with wrong uid: got %v, want Conflict", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cms := srv.Client().CoreV1().ConfigMaps("default")
	dry := []string{metav1.DryRunAll}
	out, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: dry})
	if err != nil || out.Name != "dry" || out.UID == "" {
		t.Fatalf("dry-run create: got %v %v, want the object it would create", out, err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after dry-run create: got %v, want NotFound", err)
	}
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "real"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["v"] = "2"
	if out, err := cms.Update(ctx, cm, metav1.UpdateOptions{DryRun: dry}); err != nil || out.Data["v"] != "2" {
		t.Fatalf("dry-run update: got %v %v, want v=2 in the answer", out, err)
	}
	if _, err := cms.Patch(ctx, "real", types.MergePatchType, []byte(`{"data":{"v":"3"}}`), metav1.PatchOptions{DryRun: dry}); err != nil {
		t.Fatalf("dry-run patch: %v", err)
	}
	if err := cms.Delete(ctx, "real", metav1.DeleteOptions{DryRun: dry}); err != nil {
		t.Fatalf("dry-run delete: %v", err)
	}
	got, err := cms.Get(ctx, "real", metav1.GetOptions{})
	if err != nil || got.Data["v"] != "1" || got.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("after dry runs: got %v %v, want v=1 at rv %s", got, err, cm.ResourceVersion)
	}
	svcs := srv.Client().CoreV1().Services("default")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dry"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Port: 80}}}}
	o, err := svcs.Create(ctx, svc, metav1.CreateOptions{DryRun: dry})
	if err != nil {
		t.Fatalf("dry-run service: %v", err)
	}
	// The IP a dry run showed is still free.
	svc.Spec.ClusterIP = o.Spec.ClusterIP
	svc.Spec.Ports[0].NodePort = o.Spec.Ports[0].NodePort
	if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create with the dry run's IP and port: %v", err)
	}
}

func TestPatchTypes(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	deps := srv.Client().AppsV1().Deployments("default")
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Labels: map[string]string{"a": "1"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}, {Name: "side", Image: "envoy"}}}}}}
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		typ   types.PatchType
		patch string
		check func(*appsv1.Deployment) bool
	}{
		{"json", types.JSONPatchType, `[{"op":"replace","path":"/spec/replicas","value":3}]`,
			func(d *appsv1.Deployment) bool { return *d.Spec.Replicas == 3 }},
		{"merge", types.MergePatchType, `{"metadata":{"labels":{"a":null,"b":"2"}}}`,
			func(d *appsv1.Deployment) bool { return d.Labels["b"] == "2" && d.Labels["a"] == "" }},
		// Strategic merge keeps the other container; a merge patch of the
		// list would replace it.
		{"strategic", types.StrategicMergePatchType, `{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}`,
			func(d *appsv1.Deployment) bool {
				c := d.Spec.Template.Spec.Containers
				return len(c) == 2 && c[0].Image == "nginx" && c[1].Name == "side"
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := deps.Patch(ctx, "d", tc.typ, []byte(tc.patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatalf("patch: %v", err)
			}
			if !tc.check(out) {
				b, _ := json.Marshal(out)
				t.Errorf("patched object: got %s", b)
			}
		})
	}
	if _, err := deps.Patch(ctx, "d", types.JSONPatchType, []byte(`[{"op":"test","path":"/spec/replicas","value":99}]`), metav1.PatchOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("failing json patch test op: got %v, want 422", err)
	}
	if _, err := deps.Patch(ctx, "missing", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("patch of a missing object: got %v, want NotFound", err)
	}

	// Server-side apply: create, a second manager's conflict, force.
	cms := srv.Client().CoreV1().ConfigMaps("default")
	apply := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"k":"one"}}`
	cm, err := cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(apply), metav1.PatchOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply create: %v", err)
	}
	if cm.Data["k"] != "one" || len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "alice" || cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("apply create: got data %v managedFields %+v, want k=one owned by alice (Apply)", cm.Data, cm.ManagedFields)
	}
	other := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"k":"two"}}`
	if _, err := cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(other), metav1.PatchOptions{FieldManager: "bob"}); !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: got %v, want Conflict", err)
	}
	cm, err = cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(other), metav1.PatchOptions{FieldManager: "bob", Force: ptr.To(true)})
	if err != nil || cm.Data["k"] != "two" {
		t.Fatalf("forced apply: got %v %v, want k=two", cm, err)
	}
	// Re-applying the same configuration writes nothing.
	again, err := cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(other), metav1.PatchOptions{FieldManager: "bob"})
	if err != nil || again.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("idempotent apply: got rv %s err %v, want rv %s", again.ResourceVersion, err, cm.ResourceVersion)
	}
	// An update records its manager too.
	cm.Data["u"] = "x"
	up, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range up.ManagedFields {
		found = found || (mf.Manager == "carol" && mf.Operation == metav1.ManagedFieldsOperationUpdate)
	}
	if !found {
		t.Errorf("update: got managedFields %+v, want an Update entry for carol", up.ManagedFields)
	}
	if _, err := cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"spec":{"x":1}}`),
		metav1.PatchOptions{FieldManager: "bob", FieldValidation: "Strict"}); !apierrors.IsBadRequest(err) {
		t.Errorf("apply with an unknown field: got %v, want BadRequest", err)
	}
}

func TestStatusScaleAndBinding(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	pods := c.CoreV1().Pods("default")
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("create: got phase %q, want Pending (status is not the client's on create)", p.Status.Phase)
	}
	// The main resource ignores status; the status subresource sets it.
	p.Status.Phase = corev1.PodRunning
	if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil || p.Status.Phase != corev1.PodPending {
		t.Fatalf("update of status through the main resource: got %v %v, want phase kept Pending", p.Status.Phase, err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if p, err = pods.Get(ctx, "b", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "n1" {
		t.Fatalf("after bind: got node %q %v, want n1", p.Spec.NodeName, err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n2"}}, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second bind: got %v, want Conflict", err)
	}
	p.Status.Phase = corev1.PodRunning
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("status update: got %v %v, want Running", p.Status.Phase, err)
	}

	deps := c.AppsV1().Deployments("default")
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "s"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "s"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sc, err := deps.GetScale(ctx, "s", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 1 || sc.Status.Selector != "app=s" {
		t.Fatalf("get scale: got %+v %v, want replicas 1 selector app=s", sc, err)
	}
	sc.Spec.Replicas = 4
	if _, err := deps.UpdateScale(ctx, "s", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update scale: %v", err)
	}
	got, err := deps.Get(ctx, "s", metav1.GetOptions{})
	if err != nil || *got.Spec.Replicas != 4 || got.Generation != 2 {
		t.Fatalf("after scale: got replicas %v generation %d %v, want 4 and 2", got.Spec.Replicas, got.Generation, err)
	}
	if _, err := deps.UpdateScale(ctx, "s", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("negative scale: got %v, want Invalid", err)
	}
	if _, err := deps.Patch(ctx, "s", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatalf("patch scale: %v", err)
	}
	if got, _ = deps.Get(ctx, "s", metav1.GetOptions{}); *got.Spec.Replicas != 2 {
		t.Fatalf("after scale patch: got replicas %d, want 2", *got.Spec.Replicas)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	if _, err := c.CoreV1().ConfigMaps("missing").Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: got %v, want NotFound", err)
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps("doomed").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || len(ns.Spec.Finalizers) != 1 {
		t.Fatalf("deleted namespace: got %+v %v, want Terminating with the kubernetes finalizer", ns.Status, err)
	}
	cm2 := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "y"}}
	if _, err := c.CoreV1().ConfigMaps("doomed").Create(ctx, cm2, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("create in a terminating namespace: got %v, want Forbidden", err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "kube-system", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete kube-system: got %v, want Forbidden", err)
	}
	// The namespace controller empties it and finalizes.
	if err := c.CoreV1().ConfigMaps("doomed").Delete(ctx, "x", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns.Spec.Finalizers = nil
	if _, err := c.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after finalize: got %v, want NotFound", err)
	}
}

// TestNamespaceLifecycleAfterCreates: creates skip reading a namespace
// they saw admit a create before (the write is conditioned on its
// revision), so every step here follows a create that was admitted in the
// same namespace: a dry run and a create in it once terminating are 403,
// once gone 404, and once made again they succeed.
func TestNamespaceLifecycleAfterCreates(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	c := srv.Client()
	cms := c.CoreV1().ConfigMaps("ephemeral")
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	mkns := func() {
		t.Helper()
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ephemeral"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkns()
	if _, err := cms.Create(ctx, cm("a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "ephemeral", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, cm("b"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Fatalf("dry-run create in a terminating namespace: got %v, want Forbidden", err)
	}
	if _, err := cms.Create(ctx, cm("b"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("create in a terminating namespace: got %v, want Forbidden", err)
	}
	// What the namespace controller does: empty it, then finalize.
	emptyAndFinalize := func(name string) {
		t.Helper()
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		ns, err := c.CoreV1().Namespaces().Get(ctx, "ephemeral", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Spec.Finalizers = nil
		if _, err := c.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("finalize: %v", err)
		}
	}
	emptyAndFinalize("a")
	if _, err := cms.Create(ctx, cm("c"), metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a deleted namespace: got %v, want NotFound", err)
	}
	mkns()
	if _, err := cms.Create(ctx, cm("d"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create in the namespace made again: %v", err)
	}
	// A namespace deleted straight after a create in it (the path above
	// forgot it on the 403; this one goes from admitted to gone).
	if err := c.CoreV1().Namespaces().Delete(ctx, "ephemeral", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	emptyAndFinalize("d")
	if _, err := cms.Create(ctx, cm("e"), metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a deleted namespace: got %v, want NotFound", err)
	}
}
