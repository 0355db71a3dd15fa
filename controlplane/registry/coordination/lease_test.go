package coordination

import (
	"context"
	"reflect"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestLeaseValidate(t *testing.T) {
	neg, zero, forty := int32(-1), int32(0), int32(40)
	holder := "node-1"
	strategy := coordinationv1.CoordinatedLeaseStrategy("Random")
	tests := []struct {
		name string
		spec coordinationv1.LeaseSpec
		want []string
	}{
		{"valid", coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &forty}, nil},
		{"zero duration", coordinationv1.LeaseSpec{LeaseDurationSeconds: &zero}, []string{"spec.leaseDurationSeconds"}},
		{"negative transitions", coordinationv1.LeaseSpec{LeaseTransitions: &neg}, []string{"spec.leaseTransitions"}},
		{"preferred holder without strategy", coordinationv1.LeaseSpec{PreferredHolder: &holder}, []string{"spec.preferredHolder"}},
		{"unknown strategy", coordinationv1.LeaseSpec{Strategy: &strategy}, []string{"spec.strategy.strategy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease", ResourceVersion: "1"}, Spec: tt.spec}
			var got []string
			for _, e := range (LeaseStrategy{}).Validate(context.Background(), l) {
				got = append(got, e.Field)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got error paths %v, want %v", got, tt.want)
			}
			upd := l.DeepCopy()
			upd.Name = "other"
			errs := LeaseStrategy{}.ValidateUpdate(context.Background(), upd, l)
			if len(errs) == 0 || errs[0].Type != field.ErrorTypeInvalid || errs[0].Field != "metadata.name" {
				t.Errorf("got update errors %v, want metadata.name immutable first", errs)
			}
		})
	}
	if !(LeaseStrategy{}).AllowCreateOnUpdate() {
		t.Errorf("got AllowCreateOnUpdate false, want true")
	}
}

func TestLeaseTable(t *testing.T) {
	holder := "node-1"
	tbl, err := LeaseStrategy{}.ConvertToTable(context.Background(), &coordinationv1.LeaseList{Items: []coordinationv1.Lease{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
	}}, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	if len(tbl.Rows) != 2 || tbl.Rows[0].Cells[1] != "node-1" || tbl.Rows[1].Cells[1] != "" {
		t.Errorf("got rows %v, want holders node-1 and empty", tbl.Rows)
	}
}
