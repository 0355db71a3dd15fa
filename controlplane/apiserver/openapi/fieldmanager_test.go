package openapi

import (
	"encoding/json"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// fieldManagers builds a field manager for gvk on this package's type
// converter and one on managedfields' own (the reference), both with the
// unsafe convertor the API server uses.
func fieldManagers(t testing.TB, gvk schema.GroupVersionKind) (ours, reference *managedfields.FieldManager) {
	t.Helper()
	s := newSpec(t)
	tc, err := s.TypeConverter()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := referenceTypeConverter(v2JSON(t, s))
	if err != nil {
		t.Fatal(err)
	}
	conv := runtime.UnsafeObjectConvertor(scheme.Scheme)
	build := func(tc managedfields.TypeConverter) *managedfields.FieldManager {
		fm, err := managedfields.NewDefaultFieldManager(tc, conv, scheme.Scheme, scheme.Scheme, gvk, gvk.GroupVersion(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return fm
	}
	return build(tc), build(ref)
}

// referenceTypeConverter is managedfields' own converter of the v2
// document.
func referenceTypeConverter(v2 []byte) (managedfields.TypeConverter, error) {
	var doc struct {
		Definitions map[string]*spec.Schema `json:"definitions"`
	}
	if err := json.Unmarshal(v2, &doc); err != nil {
		return nil, err
	}
	return managedfields.NewTypeConverter(doc.Definitions, false)
}

func richPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-0", Namespace: "default",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u1",
				Controller: ptr.To(true)}},
			Finalizers: []string{"example.com/keep"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx:1.27",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
					{ContainerPort: 53, Protocol: corev1.ProtocolUDP}},
				Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}},
			}, {Name: "sidecar", Image: "busybox", Command: []string{"sleep", "inf"}}},
			Volumes:      []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			NodeSelector: map[string]string{"disk": "ssd"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, TopologyKey: "kubernetes.io/hostname"}}}},
			RestartPolicy: corev1.RestartPolicyAlways,
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}},
	}
}

// TestTypeConverterSkipsOnlyRedundantValidation checks that the managed
// fields an update computes with this package's converter, which does not
// validate the Go objects of an update, are those managedfields' own
// converter computes, for creates and updates of several kinds, and that
// an entry at a version that does not exist is dropped by both.
func TestTypeConverterSkipsOnlyRedundantValidation(t *testing.T) {
	pod := richPod()
	changed := pod.DeepCopy()
	changed.Labels["tier"] = "back"
	changed.Spec.Containers[0].Image = "nginx:1.28"
	changed.Spec.Containers = append(changed.Spec.Containers, corev1.Container{Name: "extra", Image: "x"})
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: richPod().Spec}},
	}
	service := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	event := &eventsv1.Event{
		TypeMeta:   metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-0.1", Namespace: "default"},
		EventTime:  metav1.NewMicroTime(metav1.Now().Time), ReportingController: "default-scheduler", ReportingInstance: "s",
		Action: "Binding", Reason: "Scheduled", Note: "Successfully assigned default/web-0 to n1", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0", UID: "u2"},
	}
	node := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"topology.kubernetes.io/zone": "z1"}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}},
	}
	// A live object with an entry at a version that has no schema.
	unknownVersion := pod.DeepCopy()
	unknownVersion.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "old", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v9", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:app":{}}}}`)}}}

	tests := []struct {
		name      string
		live, obj runtime.Object
	}{
		{"create a pod", &corev1.Pod{}, pod},
		{"create a deployment", &appsv1.Deployment{}, deployment},
		{"create a service", &corev1.Service{}, service},
		{"create an event", &eventsv1.Event{}, event},
		{"create a node", &corev1.Node{}, node},
		{"update a pod by another manager", nil, changed},
		{"update over an entry at an unknown version", unknownVersion, changed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gvk := tt.obj.GetObjectKind().GroupVersionKind()
			ours, reference := fieldManagers(t, gvk)
			live := tt.live
			if live == nil {
				// The pod as created by manager "a".
				live = reference.UpdateNoErrors(&corev1.Pod{}, pod.DeepCopy(), "a")
			}
			got := ours.UpdateNoErrors(live.DeepCopyObject(), tt.obj.DeepCopyObject(), "b")
			want := reference.UpdateNoErrors(live.DeepCopyObject(), tt.obj.DeepCopyObject(), "b")
			g, w := managedFieldsWithoutTimes(t, got), managedFieldsWithoutTimes(t, want)
			if len(w) == 0 {
				t.Fatal("the reference computed no managed fields")
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("managed fields:\ngot  %+v\nwant %+v", g, w)
			}
		})
	}
}

// TestTypeConverterUnknownKind checks that a kind without a schema gets
// the error managedfields' own converter gives: the field managers tell
// a version they cannot convert to by its type, and drop its entries.
func TestTypeConverterUnknownKind(t *testing.T) {
	s := newSpec(t)
	tc, err := s.TypeConverter()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := referenceTypeConverter(v2JSON(t, s))
	if err != nil {
		t.Fatal(err)
	}
	// The scheme knows apps/v1beta2; the served documents describe apps/v1.
	obj := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1beta2", Kind: "Deployment"}}
	for _, opts := range [][]typed.ValidationOptions{nil, {typed.AllowDuplicates}} {
		_, got := tc.ObjectToTyped(obj, opts...)
		_, want := ref.ObjectToTyped(obj, opts...)
		if got == nil || want == nil || reflect.TypeOf(got) != reflect.TypeOf(want) || got.Error() != want.Error() {
			t.Errorf("ObjectToTyped(apps/v1beta2 Deployment, %v): got %T %v, want %T %v", opts, got, got, want, want)
		}
	}
}

func managedFieldsWithoutTimes(t *testing.T, obj runtime.Object) []metav1.ManagedFieldsEntry {
	t.Helper()
	m, ok := obj.(metav1.Object)
	if !ok {
		t.Fatalf("%T has no metadata", obj)
	}
	out := m.GetManagedFields()
	for i := range out {
		out[i].Time = nil
	}
	return out
}

// BenchmarkFieldManagerCreate is the field manager's work in a pod create,
// with this package's converter and with managedfields' own.
func BenchmarkFieldManagerCreate(b *testing.B) {
	ours, reference := fieldManagers(b, corev1.SchemeGroupVersion.WithKind("Pod"))
	pod := richPod()
	for _, bb := range []struct {
		name string
		fm   *managedfields.FieldManager
	}{{"skiff", ours}, {"managedfields", reference}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.fm.UpdateNoErrors(&corev1.Pod{}, pod.DeepCopy(), "bench")
			}
		})
	}
}
