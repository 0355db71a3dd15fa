package apiserver_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// causeFields returns the fields of an Invalid error's causes.
func causeFields(err error) []string {
	var out []string
	if se, ok := err.(apierrors.APIStatus); ok && se.Status().Details != nil {
		for _, c := range se.Status().Details.Causes {
			out = append(out, c.Field)
		}
	}
	return out
}

// TestNamespaceFinalizeUsesTheFinalizeStrategy: namespaces/finalize
// validates finalizer names as kube-apiserver's namespace finalize
// strategy does (qualified names or "kubernetes"), keeps the status and
// takes spec.finalizers from the request.
func TestNamespaceFinalizeUsesTheFinalizeStrategy(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	nss := srv.Client().CoreV1().Namespaces()
	ns, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fin"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		finalizers []corev1.FinalizerName
		wantField  string // the cause of a 422, "" for success
	}{
		{"unqualified name", []corev1.FinalizerName{"foo"}, "spec.finalizers[0]"},
		{"second unqualified name", []corev1.FinalizerName{corev1.FinalizerKubernetes, "bar"}, "spec.finalizers[1]"},
		{"empty name", []corev1.FinalizerName{""}, "spec.finalizers[0]"},
		{"qualified name", []corev1.FinalizerName{corev1.FinalizerKubernetes, "example.com/cleanup"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ns.DeepCopy()
			in.ResourceVersion = ""
			in.Spec.Finalizers = tc.finalizers
			out, err := nss.Finalize(ctx, in, metav1.UpdateOptions{})
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if len(out.Spec.Finalizers) != len(tc.finalizers) {
					t.Errorf("got finalizers %v, want %v", out.Spec.Finalizers, tc.finalizers)
				}
				return
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("got %v, want Invalid", err)
			}
			if f := causeFields(err); len(f) == 0 || f[0] != tc.wantField {
				t.Errorf("got cause fields %v, want %s", f, tc.wantField)
			}
		})
	}
	// The status is not finalize's to change.
	in, err := nss.Get(ctx, "fin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in.Status.Phase = corev1.NamespaceTerminating
	out, err := nss.Finalize(ctx, in, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("finalize with a status change: %v", err)
	}
	if out.Status.Phase != corev1.NamespaceActive {
		t.Errorf("finalize with a status change: got phase %s, want Active kept", out.Status.Phase)
	}
	found := false
	for _, mf := range out.ManagedFields {
		found = found || mf.Subresource == "finalize"
	}
	if !found {
		t.Errorf("finalize: got managedFields %+v, want an entry for subresource finalize", out.ManagedFields)
	}
}
