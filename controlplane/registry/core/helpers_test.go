package core

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// wantErr is an expected validation error: its type and field path.
type wantErr struct {
	typ  field.ErrorType
	path string
}

func (w wantErr) String() string { return fmt.Sprintf("%s %s", w.typ, w.path) }

// checkErrors compares errs with want as sets of (type, path).
func checkErrors(t *testing.T, errs field.ErrorList, want ...wantErr) {
	t.Helper()
	got := make([]string, 0, len(errs))
	for _, e := range errs {
		got = append(got, wantErr{e.Type, e.Field}.String())
	}
	wantS := make([]string, 0, len(want))
	for _, w := range want {
		wantS = append(wantS, w.String())
	}
	sort.Strings(got)
	sort.Strings(wantS)
	if strings.Join(got, "; ") != strings.Join(wantS, "; ") {
		t.Errorf("got errors [%s], want [%s]\n%v", strings.Join(got, "; "), strings.Join(wantS, "; "), errs.ToAggregate())
	}
}

func req(path string) wantErr       { return wantErr{field.ErrorTypeRequired, path} }
func inv(path string) wantErr       { return wantErr{field.ErrorTypeInvalid, path} }
func dup(path string) wantErr       { return wantErr{field.ErrorTypeDuplicate, path} }
func notSup(path string) wantErr    { return wantErr{field.ErrorTypeNotSupported, path} }
func forbidden(path string) wantErr { return wantErr{field.ErrorTypeForbidden, path} }
func notFound(path string) wantErr  { return wantErr{field.ErrorTypeNotFound, path} }
func tooLong(path string) wantErr   { return wantErr{field.ErrorTypeTooLong, path} }
