package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// replicasOf returns the replica fields of a scalable object.
func replicasOf(obj runtime.Object) (spec *int32, status int32, sel *metav1.LabelSelector, ok bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, true
	case *appsv1.ReplicaSet:
		return o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, true
	}
	return nil, 0, nil, false
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	}
}

// scaleOf builds the autoscaling/v1 Scale of obj.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	spec, status, sel, ok := replicasOf(obj)
	if !ok {
		return nil, notFoundPath()
	}
	m := accessor(obj)
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
		Status: autoscalingv1.ScaleStatus{Replicas: status},
	}
	if spec != nil {
		sc.Spec.Replicas = *spec
	}
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil {
			sc.Status.Selector = s.String()
		}
	}
	return sc, nil
}

func (s *Server) getScale(req *request) error {
	obj, err := s.getObject(req)
	if err != nil {
		return err
	}
	sc, err := scaleOf(obj)
	if err != nil {
		return err
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
// change returns for its current Scale.
func (s *Server) applyScale(req *request, dry bool, manager string, change func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error)) error {
	out, _, err := s.updateObject(req, updateSpec{dry: dry, manager: manager, mutate: func(cur runtime.Object) (runtime.Object, error) {
		sc, err := scaleOf(cur)
		if err != nil {
			return nil, err
		}
		want, err := change(sc)
		if err != nil {
			return nil, err
		}
		if want.Name != "" && want.Name != req.name {
			return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", want.Name, req.name)
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), req.name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		if want.ResourceVersion != "" && want.ResourceVersion != sc.ResourceVersion {
			return nil, conflictModified(req.gr(), req.name)
		}
		setReplicas(cur, want.Spec.Replicas)
		return cur, nil
	}})
	if err != nil {
		return err
	}
	sc, err := scaleOf(out)
	if err != nil {
		return err
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
