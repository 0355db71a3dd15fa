// Package table renders API objects as the metav1.Table that kubectl get
// asks the server for (Accept: application/json;as=Table;g=meta.k8s.io;v=v1).
// It mirrors kube-apiserver's printers: a resource declares its columns (the
// -o wide ones with Priority 1) and a function that renders one object as a
// row; this package handles single objects and lists, the NoHeaders option
// and the list metadata of the table.
//
// Every row's Object holds the object itself (a RawExtension with Object
// set). The API server decides, from the request's includeObject parameter,
// whether to keep it (Object), to replace it with a PartialObjectMetadata
// (Metadata, the kubectl default) or to drop it (None), exactly as
// k8s.io/apiserver's transformResponseObject does.
package table

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// RowFunc renders one object (never a list) as a row. It fills Cells, one per
// column in the order of the printer's Columns, and may set Conditions; the
// caller sets Object.
type RowFunc func(obj runtime.Object) (metav1.TableRow, error)

// Printer renders the objects of one resource.
type Printer struct {
	Columns []metav1.TableColumnDefinition
	Row     RowFunc
}

// Convert renders obj, a single object or a list, as a table. Like
// kube-apiserver it always renders the wide columns and leaves the choice of
// columns to print to the client; with opts.NoHeaders the column
// definitions are left out.
func (p Printer) Convert(obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	var rows []metav1.TableRow
	if meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			return nil, fmt.Errorf("extract list items: %w", err)
		}
		rows = make([]metav1.TableRow, 0, len(items))
		for _, item := range items {
			row, err := p.row(item)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
		}
	} else {
		row, err := p.row(obj)
		if err != nil {
			return nil, err
		}
		rows = []metav1.TableRow{row}
	}

	t := &metav1.Table{Rows: rows}
	if opts == nil || !opts.NoHeaders {
		t.ColumnDefinitions = p.Columns
	}
	if m, err := meta.ListAccessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
		t.Continue = m.GetContinue()
		t.RemainingItemCount = m.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
	return t, nil
}

func (p Printer) row(obj runtime.Object) (metav1.TableRow, error) {
	row, err := p.Row(obj)
	if err != nil {
		return metav1.TableRow{}, err
	}
	if len(row.Cells) != len(p.Columns) {
		return metav1.TableRow{}, fmt.Errorf("row for %T has %d cells, want %d", obj, len(row.Cells), len(p.Columns))
	}
	row.Object = runtime.RawExtension{Object: obj}
	return row, nil
}

// Column descriptions kube-apiserver uses for the columns most resources
// share.
const (
	nameDescription = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
	ageDescription  = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

// NameColumn is the NAME column.
func NameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: nameDescription}
}

// AgeColumn is the AGE column.
func AgeColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: ageDescription}
}

// Column is a column with the given name, type and description.
func Column(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// Wide is a column that kubectl prints only with -o wide.
func Wide(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Priority: 1, Description: description}
}

// Age renders the time since t the way kubectl does ("5m", "3d2h"), or
// "<unknown>" for a zero time.
func Age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// MicroAge is Age for a MicroTime.
func MicroAge(t metav1.MicroTime) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// ListWithMore joins up to max items of list with commas and tells how many
// more there were ("a,b,c + 2 more..."), or "<unset>" for none, as the
// endpoint slice printer does.
func ListWithMore(list []string, max int) string {
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ","), len(list)-max)
	}
	if len(list) == 0 {
		return "<unset>"
	}
	return strings.Join(list, ",")
}
