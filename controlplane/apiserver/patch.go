package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxJSONPatchOperations is kube-apiserver's limit on JSON patch length.
const maxJSONPatchOperations = 10000

// patchRequest is a parsed PATCH.
type patchRequest struct {
	typ       types.PatchType
	body      []byte
	directive string
	manager   string
	force     bool
}

func parsePatch(req *request) (*patchRequest, error) {
	p := &patchRequest{}
	switch mt := mediaType(req.c); mt {
	case string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType):
		p.typ = types.PatchType(mt)
	default:
		return nil, unsupportedMediaType(req.c.GetHeader("Content-Type"))
	}
	var err error
	if p.directive, err = fieldValidation(req.c); err != nil {
		return nil, err
	}
	if p.manager, err = fieldManagerName(req); err != nil {
		return nil, err
	}
	var errs field.ErrorList
	force := req.c.Query("force")
	switch force {
	case "", "false":
	case "true":
		p.force = true
	default:
		return nil, badRequest("invalid value for force: %q", force)
	}
	if p.typ == types.ApplyYAMLPatchType {
		if req.c.Query("fieldManager") == "" {
			errs = append(errs, field.Required(field.NewPath("fieldManager"), "is required for apply patch"))
		}
	} else if force != "" {
		errs = append(errs, field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(metaGK("PatchOptions"), "", errs)
	}
	if p.body, err = readBody(req.c); err != nil {
		return nil, err
	}
	return p, nil
}

// patch handles PATCH of an object or its status.
func (s *Server) patch(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	accept, enc, err := negotiateWire(req.c)
	if err != nil {
		return err
	}
	p, err := parsePatch(req)
	if err != nil {
		return err
	}
	spec, err := s.patchSpec(req, p)
	if err != nil {
		return err
	}
	spec.dry = dry
	out, created, err := s.updateObject(req, spec)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return s.respondObject(req, code, out, accept, enc)
}

// patchSpec returns the update that applies p to the current object.
func (s *Server) patchSpec(req *request, p *patchRequest) (updateSpec, error) {
	r := req.r
	spec := updateSpec{manager: p.manager}
	switch p.typ {
	case types.JSONPatchType:
		var strictErrs []error
		if p.directive != metav1.FieldValidationIgnore {
			var ops []map[string]any
			var err error
			if strictErrs, err = kjson.UnmarshalStrict(p.body, &ops); err != nil {
				return spec, badRequest("error decoding patch: %v", err)
			}
			for i, e := range strictErrs {
				strictErrs[i] = fmt.Errorf("json patch %v", e)
			}
		}
		patch, err := jsonpatch.DecodePatch(p.body)
		if err != nil {
			return spec, badRequest("%v", err)
		}
		if len(patch) > maxJSONPatchOperations {
			return spec, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(patch)))
		}
		spec.mutate = func(cur runtime.Object) (runtime.Object, error) {
			js, err := json.Marshal(cur)
			if err != nil {
				return nil, internalError(err)
			}
			patched, err := patch.Apply(js)
			if err != nil {
				return nil, jsonPatchError()
			}
			return s.decodePatched(req, patched, p.directive, strictErrs)
		}
	case types.MergePatchType:
		var strictErrs []error
		if p.directive != metav1.FieldValidationIgnore {
			v := map[string]any{}
			var err error
			if strictErrs, err = kjson.UnmarshalStrict(p.body, &v); err != nil {
				return spec, badRequest("error decoding patch: %v", err)
			}
		} else if err := json.Unmarshal(p.body, &map[string]any{}); err != nil {
			return spec, badRequest("error decoding patch: %v", err)
		}
		spec.mutate = func(cur runtime.Object) (runtime.Object, error) {
			js, err := json.Marshal(cur)
			if err != nil {
				return nil, internalError(err)
			}
			patched, err := jsonpatch.MergePatch(js, p.body)
			if err != nil {
				return nil, badRequest("%v", err)
			}
			return s.decodePatched(req, patched, p.directive, strictErrs)
		}
	case types.StrategicMergePatchType:
		patchMap := map[string]any{}
		var strictErrs []error
		var err error
		if p.directive != metav1.FieldValidationIgnore {
			strictErrs, err = kjson.UnmarshalStrict(p.body, &patchMap)
		} else {
			err = kjson.UnmarshalCaseSensitivePreserveInts(p.body, &patchMap)
		}
		if err != nil {
			return spec, badRequest("%v", err)
		}
		spec.mutate = func(cur runtime.Object) (runtime.Object, error) {
			orig, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur)
			if err != nil {
				return nil, internalError(err)
			}
			patched, err := strategicMergeMapPatch(orig, patchMap, r.New())
			if err != nil {
				return nil, smpError(err)
			}
			js, err := json.Marshal(patched)
			if err != nil {
				return nil, internalError(err)
			}
			return s.decodePatched(req, js, p.directive, strictErrs)
		}
	case types.ApplyYAMLPatchType:
		patchObj := &unstructured.Unstructured{Object: map[string]any{}}
		if err := yaml.Unmarshal(p.body, &patchObj.Object); err != nil {
			return spec, badRequest("error decoding YAML: %v", err)
		}
		if patchObj.Object == nil {
			return spec, badRequest("error decoding patch: the patch is empty")
		}
		var strictErr error
		if p.directive != metav1.FieldValidationIgnore {
			if err := yaml.UnmarshalStrict(p.body, &map[string]any{}); err != nil {
				strictErr = err
			}
		}
		gvk := patchObj.GroupVersionKind()
		if gvk != r.GroupVersionKind() {
			return spec, badRequest("the apiVersion and kind of the patch (%s) do not match the resource's (%s)", gvk, r.GroupVersionKind())
		}
		defaultListMapKeys(gvk, patchObj.Object)
		fm := r.fieldManagers[req.sub]
		if fm == nil {
			fm = r.fieldManagers[""]
		}
		apply := func(cur runtime.Object) (runtime.Object, error) {
			obj, err := fm.Apply(cur, patchObj.DeepCopy(), p.manager, p.force)
			if err != nil {
				var se apierrors.APIStatus
				if errors.As(err, &se) {
					return nil, err
				}
				return nil, badRequest("%v", err)
			}
			if strictErr != nil {
				if p.directive == metav1.FieldValidationStrict {
					return nil, badRequest("error strict decoding patch: %v", strictErr)
				}
				addWarning(req.c, strictErr.Error())
			}
			return obj, nil
		}
		spec.managed = true
		spec.mutate = apply
		if req.sub == "" {
			spec.allowCreate = true
			spec.applyCreate = func() (runtime.Object, error) {
				return apply(r.New())
			}
		}
	}
	return spec, nil
}

// jsonPatchError is the answer to a JSON patch that does not apply (a
// failing test operation, a missing path): 422 with kube-apiserver's
// generic message and no details, exactly as its jsonPatcher answers
// (NewGenericServerResponse without a resource; the cause is not sent).
func jsonPatchError() error {
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", "", 0, false)
}

func smpError(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return err
	}
	switch {
	case errors.Is(err, mergepatch.ErrBadJSONDoc), errors.Is(err, mergepatch.ErrBadPatchFormatForPrimitiveList),
		errors.Is(err, mergepatch.ErrBadPatchFormatForRetainKeys), errors.Is(err, mergepatch.ErrBadPatchFormatForSetElementOrderList),
		errors.Is(err, mergepatch.ErrUnsupportedStrategicMergePatchFormat):
		return badRequest("%v", err)
	case errors.Is(err, mergepatch.ErrNoListOfLists), errors.Is(err, mergepatch.ErrPatchContentNotMatchRetainKeys):
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	}
	return badRequest("%v", err)
}

// decodePatched decodes a patched document into the resource's type,
// applying the field validation directive as kube-apiserver does for
// patches (strict failures are 422 on the patch).
func (s *Server) decodePatched(req *request, js []byte, directive string, strictErrs []error) (runtime.Object, error) {
	obj := req.r.New()
	more, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, apierrors.NewInvalid(req.r.GroupVersionKind().GroupKind(), req.name, field.ErrorList{field.Invalid(field.NewPath("patch"), string(js), err.Error())})
	}
	strictErrs = append(strictErrs, more...)
	if len(strictErrs) > 0 {
		switch directive {
		case metav1.FieldValidationStrict:
			return nil, apierrors.NewInvalid(req.r.GroupVersionKind().GroupKind(), req.name, field.ErrorList{field.Invalid(field.NewPath("patch"), string(js), runtime.NewStrictDecodingError(strictErrs).Error())})
		case metav1.FieldValidationWarn:
			for _, e := range strictErrs {
				addWarning(req.c, e.Error())
			}
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(req.r.GroupVersionKind())
	return obj, nil
}

// defaultListMapKeys sets protocol TCP, where it is missing, on the
// entries of the list-maps of an apply patch that are keyed by protocol
// (with the port): container ports (containers, initContainers and
// ephemeralContainers of a pod spec, also in workload templates) and
// Service spec.ports. These are the only list-maps of the served types
// with a defaulted key. kube-apiserver's schema gives protocol the default
// TCP, which structured-merge-diff uses for a missing key; the published
// OpenAPI documents the type converter is built from lack it, so without
// this an applied port without protocol would not match the stored one
// (which defaulting gave TCP) and be added again. Other "ports" lists
// (EndpointSlice, Endpoints subsets) are atomic and are left as the client
// sent them, as upstream.
func defaultListMapKeys(gvk schema.GroupVersionKind, obj map[string]any) {
	var podSpec []string
	switch gvk.GroupKind() {
	case schema.GroupKind{Kind: "Service"}:
		setDefaultProtocol(nestedField(obj, "spec", "ports"), "port")
		return
	case schema.GroupKind{Kind: "Pod"}:
		podSpec = []string{"spec"}
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}, schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		podSpec = []string{"spec", "template", "spec"}
	default:
		return
	}
	spec, _ := nestedField(obj, podSpec...).(map[string]any)
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		containers, _ := spec[list].([]any)
		for _, c := range containers {
			if cm, ok := c.(map[string]any); ok {
				setDefaultProtocol(cm["ports"], "containerPort")
			}
		}
	}
}

// nestedField returns the value at path in obj, or nil.
func nestedField(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// setDefaultProtocol sets protocol TCP on the items of ports (a list of
// objects) that have portField and no protocol.
func setDefaultProtocol(ports any, portField string) {
	items, _ := ports.([]any)
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		_, hasPort := m[portField]
		if _, set := m["protocol"]; !set && hasPort {
			m["protocol"] = string(corev1.ProtocolTCP)
		}
	}
}

// strategicMergeMapPatch is strategicpatch.StrategicMergeMapPatch, with a
// panic on a malformed patch (a merge key of a non-scalar type panics in
// apimachinery) turned into a 400.
func strategicMergeMapPatch(orig, patch map[string]any, schema runtime.Object) (out map[string]any, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, badRequest("invalid strategic merge patch: %v", v)
		}
	}()
	return strategicpatch.StrategicMergeMapPatch(orig, patch, schema)
}
