package objectmeta

import (
	"strings"
	"testing"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		meta       metav1.ObjectMeta
		namespaced bool
		want       []string
	}{
		{"valid", metav1.ObjectMeta{Name: "a", Namespace: "default"}, true, nil},
		// The server fills name from generateName before validation.
		{"generated name", metav1.ObjectMeta{GenerateName: "a-", Name: "a-x7k2p", Namespace: "default"}, true, nil},
		{"no name", metav1.ObjectMeta{Namespace: "default"}, true, []string{"Required value metadata.name"}},
		{"bad name", metav1.ObjectMeta{Name: "A", Namespace: "default"}, true, []string{"Invalid value metadata.name"}},
		{"missing namespace", metav1.ObjectMeta{Name: "a"}, true, []string{"Required value metadata.namespace"}},
		{"namespace on cluster object", metav1.ObjectMeta{Name: "a", Namespace: "x"}, false, []string{"Forbidden metadata.namespace"}},
		{"annotations too big", metav1.ObjectMeta{Name: "a", Annotations: map[string]string{"a": strings.Repeat("x", 256*1024)}}, false, []string{"Too long metadata.annotations"}},
		{"finalizer", metav1.ObjectMeta{Name: "a", Finalizers: []string{"mine", "example.com/mine", "orphan"}}, false, []string{"Invalid value metadata.finalizers[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range Validate(&tt.meta, tt.namespaced, apivalidation.NameIsDNSSubdomain, Path()) {
				got = append(got, e.Type.String()+" "+e.Field)
			}
			if strings.Join(got, ";") != strings.Join(tt.want, ";") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	old := metav1.ObjectMeta{Name: "a", Namespace: "default", UID: "u", ResourceVersion: "1"}
	renamed := old
	renamed.Name = "b"
	errs := ValidateUpdate(&renamed, &old, Path())
	if len(errs) != 1 || errs[0].Type != field.ErrorTypeInvalid || errs[0].Field != "metadata.name" {
		t.Errorf("got %v, want metadata.name immutable", errs)
	}
}

func TestFields(t *testing.T) {
	m := &metav1.ObjectMeta{Name: "a", Namespace: "ns"}
	if f := Fields(m, true); f.Get("metadata.name") != "a" || f.Get("metadata.namespace") != "ns" || len(f) != 2 {
		t.Errorf("got %v, want name and namespace", f)
	}
	if f := Fields(m, false); f.Has("metadata.namespace") || len(f) != 1 {
		t.Errorf("got %v, want only the name for a cluster-scoped object", f)
	}
}
