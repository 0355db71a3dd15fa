package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-project/skiff/controlplane/registry"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// replicasPath is where a workload (apps/v1 Deployment and ReplicaSet)
// keeps the replicas its Scale shows, for moving managed fields between
// the two.
var replicasPath = fieldpath.MakePathOrDie("spec", "replicas")

func scalerOf(req *request) (registry.Scaler, error) {
	sc, ok := req.r.Strategy.(registry.Scaler)
	if !ok {
		return nil, notFoundPath()
	}
	return sc, nil
}

func (s *Server) getScale(req *request) error {
	scaler, err := scalerOf(req)
	if err != nil {
		return err
	}
	obj, err := s.getObject(req)
	if err != nil {
		return err
	}
	sc, err := scaler.Scale(obj)
	if err != nil {
		return internalError(err)
	}
	writeJSON(req.c, http.StatusOK, sc)
	return nil
}

func (s *Server) updateScale(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	directive, err := fieldValidation(req.c)
	if err != nil {
		return err
	}
	manager, err := fieldManagerName(req)
	if err != nil {
		return err
	}
	sc := &autoscalingv1.Scale{}
	if err := s.readObject(req.c, sc, scaleGVK, directive); err != nil {
		return err
	}
	return s.applyScale(req, dry, manager, func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error) { return sc.DeepCopy(), nil })
}

func (s *Server) patchScale(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	p, err := parsePatch(req)
	if err != nil {
		return err
	}
	if p.typ == types.ApplyYAMLPatchType {
		return unsupportedMediaType(string(p.typ))
	}
	return s.applyScale(req, dry, p.manager, func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
		js, err := json.Marshal(cur)
		if err != nil {
			return nil, internalError(err)
		}
		var patched []byte
		switch p.typ {
		case types.JSONPatchType:
			patch, err := jsonpatch.DecodePatch(p.body)
			if err != nil {
				return nil, badRequest("%v", err)
			}
			if patched, err = patch.Apply(js); err != nil {
				return nil, jsonPatchError()
			}
		case types.MergePatchType:
			if patched, err = jsonpatch.MergePatch(js, p.body); err != nil {
				return nil, badRequest("%v", err)
			}
		case types.StrategicMergePatchType:
			var orig, patch map[string]any
			if err := json.Unmarshal(js, &orig); err != nil {
				return nil, internalError(err)
			}
			if err := json.Unmarshal(p.body, &patch); err != nil {
				return nil, badRequest("%v", err)
			}
			m, err := strategicMergeMapPatch(orig, patch, &autoscalingv1.Scale{})
			if err != nil {
				return nil, smpError(err)
			}
			if patched, err = json.Marshal(m); err != nil {
				return nil, internalError(err)
			}
		}
		out := &autoscalingv1.Scale{}
		if err := json.Unmarshal(patched, out); err != nil {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), req.name, field.ErrorList{field.Invalid(field.NewPath("patch"), string(patched), err.Error())})
		}
		return out, nil
	})
}

// applyScale updates the replicas of the scaled object from the Scale that
// change returns for its current Scale, as kube-apiserver's
// scaleUpdatedObjectInfo: the current Scale carries the managed fields of
// spec.replicas (ScaleHandler.ToSubresource), the scale field manager
// records the writer under subresource "scale", the Scaler validates the
// Scale and applies it, and the managed fields go back to the workload
// (ToParent, which takes spec.replicas from its previous owner). The
// workload then goes through the normal update path.
func (s *Server) applyScale(req *request, dry bool, manager string, change func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error)) error {
	scaler, err := scalerOf(req)
	if err != nil {
		return err
	}
	r := req.r
	fm := r.fieldManagers["scale"]
	mappings := managedfields.ResourcePathMappings{r.GroupVersion.String(): replicasPath}
	out, _, err := s.updateObject(req, updateSpec{dry: dry, manager: manager, managed: true, mutate: func(cur runtime.Object) (runtime.Object, error) {
		m := accessor(cur)
		handler := managedfields.NewScaleHandler(m.GetManagedFields(), r.GroupVersion, mappings)
		old, err := scaler.Scale(cur)
		if err != nil {
			return nil, internalError(err)
		}
		if old.ManagedFields, err = handler.ToSubresource(); err != nil {
			return nil, internalError(fmt.Errorf("managed fields of %s to scale: %w", req.name, err))
		}
		want, err := change(old.DeepCopy())
		if err != nil {
			return nil, err
		}
		if want.Name != req.name {
			return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", want.Name, req.name)
		}
		switch want.Namespace {
		case "":
			want.Namespace = req.namespace
		case req.namespace:
		default:
			return nil, badRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if fm != nil {
			updated, ok := fm.UpdateNoErrors(old, want, manager).(*autoscalingv1.Scale)
			if !ok {
				return nil, internalError(fmt.Errorf("scale field manager returned %T", updated))
			}
			want = updated
		}
		if errs := scaler.ValidateScale(want); len(errs) > 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), req.name, errs)
		}
		if want.UID != "" && want.UID != m.GetUID() {
			return nil, apierrors.NewConflict(req.gr(), req.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", want.UID, m.GetUID()))
		}
		if want.ResourceVersion != "" && want.ResourceVersion != m.GetResourceVersion() {
			return nil, conflictModified(req.gr(), req.name)
		}
		scaler.ApplyScale(cur, want)
		parent, err := handler.ToParent(want.ManagedFields)
		if err != nil {
			return nil, internalError(fmt.Errorf("managed fields of %s from scale: %w", req.name, err))
		}
		m.SetManagedFields(parent)
		return cur, nil
	}})
	if err != nil {
		return err
	}
	sc, err := scaler.Scale(out)
	if err != nil {
		return internalError(err)
	}
	writeJSON(req.c, http.StatusOK, sc)
	return nil
}

// binder is implemented by the pod strategy for pods/binding.
type binder interface {
	ValidateBinding(ctx context.Context, obj runtime.Object) field.ErrorList
	ApplyBinding(ctx context.Context, pod, binding runtime.Object) error
}

// bind handles POST pods/<name>/binding: the scheduler assigns a node.
func (s *Server) bind(req *request) error {
	dry, err := dryRun(req.c)
	if err != nil {
		return err
	}
	directive, err := fieldValidation(req.c)
	if err != nil {
		return err
	}
	b := &corev1.Binding{}
	if err := s.readObject(req.c, b, corev1.SchemeGroupVersion.WithKind("Binding"), directive); err != nil {
		return err
	}
	if b.Namespace == "" {
		b.Namespace = req.namespace
	}
	if b.Namespace != req.namespace {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if b.Name != req.name {
		return badRequest("name in URL does not match name in Binding object")
	}
	bd, hasBinder := req.r.Strategy.(binder)
	if hasBinder {
		if errs := bd.ValidateBinding(req.ctx, b); len(errs) > 0 {
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, errs)
		}
	} else if b.Target.Name == "" {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, field.ErrorList{
			field.Required(field.NewPath("target", "name"), "")})
	}
	_, _, err = s.updateObject(req, updateSpec{dry: dry, manager: "", managed: true, mutate: func(cur runtime.Object) (runtime.Object, error) {
		pod, ok := cur.(*corev1.Pod)
		if !ok {
			return nil, notFoundPath()
		}
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(req.gr(), req.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		}
		if b.ResourceVersion != "" && b.ResourceVersion != pod.ResourceVersion {
			return nil, conflictModified(req.gr(), req.name)
		}
		if hasBinder {
			if err := bd.ApplyBinding(req.ctx, pod, b); err != nil {
				return nil, err
			}
			return pod, nil
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(req.gr(), req.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(req.gr(), req.name, fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		return pod, nil
	}})
	if err != nil {
		return err
	}
	writeJSON(req.c, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
	return nil
}
