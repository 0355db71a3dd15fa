// Package fuzz drives the registry's per-resource rules with arbitrary
// input: it decodes bytes strictly (JSON, or YAML converted to JSON) into a
// resource's type and runs everything the API server would run on it —
// defaulting, create preparation and validation, field selectors, the
// table, the status, finalize, scale and binding paths and graceful
// deletion — then an update against a mutated copy. The fuzz target
// (FuzzDecodeDefaultValidate) and the seed manifests under testdata live
// beside it; Exercise must never panic, whatever the input.
package fuzz

import (
	"context"
	"errors"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/skiff-project/skiff/controlplane/registry"
)

// ErrDecode wraps input that does not decode into the resource's type; the
// fuzz target skips it.
var ErrDecode = errors.New("decode")

// Decode decodes doc strictly into a new object of r: unknown or duplicate
// fields are errors, as for a kube-apiserver request with
// fieldValidation=Strict. YAML is converted to JSON first.
func Decode(r *registry.Resource, doc []byte) (runtime.Object, error) {
	j := doc
	if len(doc) == 0 || doc[0] != '{' {
		var err error
		if j, err = yaml.YAMLToJSONStrict(doc); err != nil {
			return nil, fmt.Errorf("%w: yaml: %w", ErrDecode, err)
		}
	}
	obj := r.New()
	strict, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%w: strict: %w", ErrDecode, errors.Join(strict...))
	}
	return obj, nil
}

// Exercise runs r's rules on the object decoded from doc, the way the API
// server calls them for a create, then for updates of the main resource
// and of each subresource against a copy changed by mutate. It returns an
// error wrapping ErrDecode when doc does not decode, and any error the
// table conversion returns; validation errors are results, not failures.
func Exercise(r *registry.Resource, doc []byte, mutate func(runtime.Object)) error {
	ctx := context.Background()
	obj, err := Decode(r, doc)
	if err != nil {
		return err
	}
	s := r.Strategy
	s.Default(obj)
	s.PrepareForCreate(ctx, obj)
	_ = s.Validate(ctx, obj)
	_ = s.SelectableFields(obj)
	if _, err := s.ConvertToTable(ctx, obj, &metav1.TableOptions{}); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	list := r.NewList()
	if err := setListItems(list, obj); err != nil {
		return err
	}
	if _, err := s.ConvertToTable(ctx, list, &metav1.TableOptions{NoHeaders: true}); err != nil {
		return fmt.Errorf("list table: %w", err)
	}
	if r.ToStorage != nil {
		stored, err := r.ToStorage(obj)
		if err != nil {
			return fmt.Errorf("to storage: %w", err)
		}
		if _, err := r.FromStorage(stored); err != nil {
			return fmt.Errorf("from storage: %w", err)
		}
	}

	// update runs one update path against a mutated, re-defaulted copy.
	update := func(prepare func(context.Context, runtime.Object, runtime.Object), validate func(context.Context, runtime.Object, runtime.Object) field.ErrorList) {
		newObj := obj.DeepCopyObject()
		mutate(newObj)
		s.Default(newObj)
		prepare(ctx, newObj, obj)
		_ = validate(ctx, newObj, obj)
	}
	update(s.PrepareForUpdate, s.ValidateUpdate)
	if ss, ok := s.(registry.StatusStrategy); ok {
		update(ss.PrepareForStatusUpdate, ss.ValidateStatusUpdate)
	}
	if fs, ok := s.(registry.FinalizeStrategy); ok {
		update(fs.PrepareForFinalizeUpdate, fs.ValidateFinalizeUpdate)
	}
	if gd, ok := s.(registry.GracefulDeleter); ok {
		for _, req := range []*int64{nil, ptr(-5), ptr(0), ptr(45)} {
			gd.GracePeriod(obj, req)
		}
	}
	if sc, ok := s.(registry.Scaler); ok {
		if scale, err := sc.Scale(obj); err == nil {
			scale.Spec.Replicas = scale.Spec.Replicas*2 - 1
			_ = sc.ValidateScale(scale)
			scaled := obj.DeepCopyObject()
			sc.ApplyScale(scaled, scale)
			_ = s.ValidateUpdate(ctx, scaled, obj)
		}
		_ = sc.ValidateScale(&autoscalingv1.Scale{})
	}
	if b, ok := s.(registry.Binder); ok {
		binding := b.NewBinding()
		if cb, ok := binding.(*corev1.Binding); ok {
			cb.Name = "web"
			cb.Target = corev1.ObjectReference{Kind: "Node", Name: "node-2"}
			cb.Annotations = map[string]string{"a": "b"}
		}
		_ = b.ValidateBinding(ctx, binding)
		_ = b.ApplyBinding(ctx, obj.DeepCopyObject(), binding)
	}
	return nil
}

func ptr(v int64) *int64 { return &v }

// setListItems makes list hold two copies of obj.
func setListItems(list, obj runtime.Object) error {
	if err := meta.SetList(list, []runtime.Object{obj, obj.DeepCopyObject()}); err != nil {
		return fmt.Errorf("set list items: %w", err)
	}
	return nil
}

// Mutator returns a mutation driven by seed: it picks a field of the object
// (seed[0] chooses which, in a walk of the object's JSON form) and replaces
// its value by one derived from seed[1:] — a different string, number,
// boolean, or removal. Values the type cannot hold leave the object
// unchanged.
func Mutator(seed []byte) func(runtime.Object) {
	return func(obj runtime.Object) {
		if len(seed) == 0 {
			return
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return
		}
		var leaves []leaf
		collect(u, &leaves)
		if len(leaves) == 0 {
			return
		}
		l := leaves[int(seed[0])%len(leaves)]
		l.set(replacement(l.get(), seed[1:]))
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(u, obj)
	}
}

type leaf struct {
	get func() any
	set func(any)
}

func collect(v any, out *[]leaf) {
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			k := k
			if _, nested := t[k].(map[string]any); nested {
				collect(t[k], out)
				continue
			}
			if _, nested := t[k].([]any); nested {
				collect(t[k], out)
				continue
			}
			*out = append(*out, leaf{
				get: func() any { return t[k] },
				set: func(nv any) {
					if nv == nil {
						delete(t, k)
					} else {
						t[k] = nv
					}
				},
			})
		}
	case []any:
		for i := range t {
			i := i
			switch t[i].(type) {
			case map[string]any, []any:
				collect(t[i], out)
			default:
				*out = append(*out, leaf{get: func() any { return t[i] }, set: func(nv any) { t[i] = nv }})
			}
		}
	}
}

func replacement(old any, seed []byte) any {
	var b byte
	if len(seed) > 0 {
		b = seed[0]
	}
	switch b % 4 {
	case 0:
		return nil
	case 1:
		return string(seed)
	case 2:
		n := int64(0)
		for _, c := range seed {
			n = n*31 + int64(c) - 64
		}
		return n
	}
	if v, ok := old.(bool); ok {
		return !v
	}
	return !(b%8 < 4)
}
