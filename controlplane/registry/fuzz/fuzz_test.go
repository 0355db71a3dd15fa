package fuzz

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/skiff-project/skiff/controlplane/registry"
)

// manifests reads the seed manifests and the index of the resource each is
// for.
func manifests(t testing.TB, resources []*registry.Resource) map[string]struct {
	index int
	doc   []byte
} {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "manifests", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("got seed manifests %v, %v; want some", files, err)
	}
	out := map[string]struct {
		index int
		doc   []byte
	}{}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("read type of %s: %v", f, err)
		}
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil {
			t.Fatalf("parse apiVersion of %s: %v", f, err)
		}
		index := -1
		for i, r := range resources {
			if r.GroupVersionKind() == gv.WithKind(tm.Kind) {
				index = i
			}
		}
		if index < 0 {
			t.Fatalf("got no resource for %s (%s)", f, gv.WithKind(tm.Kind))
		}
		out[filepath.Base(f)] = struct {
			index int
			doc   []byte
		}{index, doc}
	}
	return out
}

// TestSeedManifestsValid checks that every seed manifest, a realistic
// object, decodes strictly, defaults and validates without errors.
func TestSeedManifestsValid(t *testing.T) {
	resources := registry.Resources()
	for name, m := range manifests(t, resources) {
		t.Run(name, func(t *testing.T) {
			r := resources[m.index]
			obj, err := Decode(r, m.doc)
			if err != nil {
				t.Fatalf("got decode error %v, want none", err)
			}
			ctx := context.Background()
			r.Strategy.Default(obj)
			r.Strategy.PrepareForCreate(ctx, obj)
			if errs := r.Strategy.Validate(ctx, obj); len(errs) != 0 {
				t.Errorf("got validation errors %v, want none", errs.ToAggregate())
			}
			// The server sets resourceVersion on stored objects and
			// requires it on updates.
			acc, err := meta.Accessor(obj)
			if err != nil {
				t.Fatalf("got no metadata: %v", err)
			}
			acc.SetResourceVersion("1")
			old := obj.DeepCopyObject()
			r.Strategy.PrepareForUpdate(ctx, obj, old)
			if errs := r.Strategy.ValidateUpdate(ctx, obj, old); len(errs) != 0 {
				t.Errorf("got update validation errors %v for an unchanged object, want none", errs.ToAggregate())
			}
			if err := Exercise(r, m.doc, Mutator([]byte{3, 1, 'x'})); err != nil {
				t.Errorf("got Exercise error %v, want none", err)
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	resources := registry.Resources()
	pods := registry.Find(resources, schema.GroupVersionResource{Version: "v1", Resource: "pods"})
	tests := []struct {
		name    string
		doc     string
		wantErr bool
	}{
		{"yaml", "metadata:\n  name: a\n", false},
		{"json", `{"metadata":{"name":"a"}}`, false},
		{"unknown field", "metadata:\n  name: a\nspecc: {}\n", true},
		{"duplicate field", `{"metadata":{"name":"a","name":"b"}}`, true},
		{"wrong type", `{"spec":{"containers":"x"}}`, true},
		{"not yaml", "\t:", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(pods, []byte(tt.doc))
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrDecode)) {
				t.Errorf("got error %v, want error %v wrapping ErrDecode", err, tt.wantErr)
			}
		})
	}
}

// FuzzDecodeDefaultValidate feeds arbitrary bytes through strict decoding
// into a resource type chosen by the first byte, then through defaulting,
// create preparation, validation, tables, subresources and an update
// against a copy mutated as the second and third bytes say. It must never
// panic.
func FuzzDecodeDefaultValidate(f *testing.F) {
	resources := registry.Resources()
	for _, m := range manifests(f, resources) {
		docs := [][]byte{m.doc}
		if j, err := yaml.YAMLToJSON(m.doc); err == nil {
			docs = append(docs, j)
		}
		for _, doc := range docs {
			for _, mut := range [][]byte{{0, 0}, {7, 1}, {13, 2}, {21, 3}} {
				f.Add(append([]byte{byte(m.index), mut[0], mut[1]}, doc...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		r := resources[int(data[0])%len(resources)]
		err := Exercise(r, data[3:], Mutator(data[1:3]))
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Errorf("got error %v, want none or a decode error", err)
		}
	})
}
