package table

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func namePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{NameColumn(), Wide("Extra", "string", "")},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			cm := obj.(*corev1.ConfigMap)
			return metav1.TableRow{Cells: []any{cm.Name, "x"}}, nil
		},
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name     string
		obj      runtime.Object
		opts     *metav1.TableOptions
		rows     []string
		rv       string
		noHeader bool
	}{
		{"single", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "3"}}, nil, []string{"a"}, "3", false},
		{"list", &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: "8"}, Items: []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}}},
			&metav1.TableOptions{}, []string{"a", "b"}, "8", false},
		{"empty list without headers", &corev1.ConfigMapList{}, &metav1.TableOptions{NoHeaders: true}, []string{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := namePrinter().Convert(tt.obj, tt.opts)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			got := []string{}
			for _, r := range tbl.Rows {
				got = append(got, r.Cells[0].(string))
				if r.Object.Object == nil {
					t.Errorf("got a row without its object")
				}
			}
			if !reflect.DeepEqual(got, tt.rows) || tbl.ResourceVersion != tt.rv || (tbl.ColumnDefinitions == nil) != tt.noHeader {
				t.Errorf("got rows %v rv %q columns %v, want %v %q headers %v", got, tbl.ResourceVersion, tbl.ColumnDefinitions, tt.rows, tt.rv, !tt.noHeader)
			}
		})
	}
	bad := Printer{Columns: []metav1.TableColumnDefinition{NameColumn()}, Row: func(runtime.Object) (metav1.TableRow, error) {
		return metav1.TableRow{Cells: []any{"a", "b"}}, nil
	}}
	if _, err := bad.Convert(&corev1.ConfigMap{}, nil); err == nil {
		t.Errorf("got no error for a row with too many cells, want one")
	}
}

func TestAgeAndLists(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"zero", Age(metav1.Time{}), "<unknown>"},
		{"minutes", Age(metav1.NewTime(time.Now().Add(-90 * time.Minute))), "90m"},
		{"days", Age(metav1.NewTime(time.Now().Add(-75 * time.Hour))), "3d3h"},
		{"micro", MicroAge(metav1.NewMicroTime(time.Now().Add(-25 * time.Minute))), "25m"},
		{"list none", ListWithMore(nil, 3), "<unset>"},
		{"list short", ListWithMore([]string{"a", "b"}, 3), "a,b"},
		{"list long", ListWithMore([]string{"a", "b", "c", "d", "e"}, 3), "a,b,c + 2 more..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
