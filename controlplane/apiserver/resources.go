package apiserver

import (
	"fmt"
	"reflect"
	"sort"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-project/skiff/controlplane/registry"
)

// resource is a served resource with what the server derives from it.
type resource struct {
	*registry.Resource
	// owner is the resource whose type is stored under StorageResource
	// (itself unless ToStorage converts).
	owner *registry.Resource
	// selectable is the set of field selector labels.
	selectable fields.Set
	// returnDeleted: DELETE answers with the object rather than a Status,
	// as kube-apiserver does for these resources.
	returnDeleted bool
	fieldManagers map[string]*managedfields.FieldManager
}

func (r *resource) gr() schema.GroupResource {
	return schema.GroupResource{Group: r.GroupVersion.Group, Resource: r.Name}
}

func (r *resource) prefix() string { return "/registry/" + r.StorageResource + "/" }

// key is the etcd key of an object.
func (r *resource) key(namespace, name string) string {
	if r.Namespaced {
		return "/registry/" + r.StorageResource + "/" + namespace + "/" + name
	}
	return "/registry/" + r.StorageResource + "/" + name
}

// listPrefix is the prefix of a namespace's objects, or all of them.
func (r *resource) listPrefix(namespace string) string {
	if r.Namespaced && namespace != "" {
		return "/registry/" + r.StorageResource + "/" + namespace + "/"
	}
	return r.prefix()
}

type resourceIndex struct {
	byGV map[schema.GroupVersion]map[string]*resource
	// gvs in discovery order: core first, then groups by name.
	gvs   []schema.GroupVersion
	all   []*resource
	types map[reflect.Type]*resource
}

var returnsDeleted = map[schema.GroupResource]bool{
	{Resource: "pods"}: true, {Resource: "services"}: true,
	{Resource: "namespaces"}: true, {Resource: "serviceaccounts"}: true,
}

func newScheme(rs []*registry.Resource) (*runtime.Scheme, error) {
	sc := runtime.NewScheme()
	seen := map[schema.GroupVersion]bool{}
	for _, r := range rs {
		gv := r.GroupVersion
		if !seen[gv] {
			seen[gv] = true
			metav1.AddToGroupVersion(sc, gv)
		}
		sc.AddKnownTypeWithName(r.GroupVersionKind(), r.New())
		sc.AddKnownTypeWithName(gv.WithKind(r.Kind+"List"), r.NewList())
	}
	if err := metav1.AddMetaToScheme(sc); err != nil {
		return nil, err
	}
	extra := []struct {
		gvk schema.GroupVersionKind
		obj runtime.Object
	}{
		{autoscalingv1.SchemeGroupVersion.WithKind("Scale"), &autoscalingv1.Scale{}},
		{corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{}},
	}
	for _, x := range extra {
		if !sc.Recognizes(x.gvk) {
			sc.AddKnownTypeWithName(x.gvk, x.obj)
		}
	}
	if !seen[autoscalingv1.SchemeGroupVersion] {
		metav1.AddToGroupVersion(sc, autoscalingv1.SchemeGroupVersion)
	}
	return sc, nil
}

// strategyDefaulter defaults objects with their resource's strategy, for
// the field manager.
type strategyDefaulter struct{ types map[reflect.Type]*resource }

func (d strategyDefaulter) Default(obj runtime.Object) {
	if r, ok := d.types[reflect.TypeOf(obj)]; ok {
		r.Strategy.Default(obj)
	}
}

func newResourceIndex(rs []*registry.Resource, sc *runtime.Scheme, tc managedfields.TypeConverter) (*resourceIndex, error) {
	idx := &resourceIndex{byGV: map[schema.GroupVersion]map[string]*resource{}, types: map[reflect.Type]*resource{}}
	owners := map[string]*registry.Resource{}
	for _, r := range rs {
		if r.StorageResource == "" {
			r.StorageResource = r.Name
		}
		if r.ToStorage == nil {
			owners[r.StorageResource] = r
		}
	}
	for _, r := range rs {
		if r.Strategy == nil || r.New == nil || r.NewList == nil {
			return nil, fmt.Errorf("resource %s: incomplete (strategy, New and NewList are required)", r.GroupVersionResource())
		}
		owner := owners[r.StorageResource]
		if owner == nil {
			return nil, fmt.Errorf("resource %s: no resource owns storage %q", r.GroupVersionResource(), r.StorageResource)
		}
		res := &resource{
			Resource:      r,
			owner:         owner,
			selectable:    r.Strategy.SelectableFields(r.New()),
			returnDeleted: returnsDeleted[schema.GroupResource{Group: r.GroupVersion.Group, Resource: r.Name}],
			fieldManagers: map[string]*managedfields.FieldManager{},
		}
		if idx.byGV[r.GroupVersion] == nil {
			idx.byGV[r.GroupVersion] = map[string]*resource{}
			idx.gvs = append(idx.gvs, r.GroupVersion)
		}
		if _, dup := idx.byGV[r.GroupVersion][r.Name]; dup {
			return nil, fmt.Errorf("resource %s listed twice", r.GroupVersionResource())
		}
		idx.byGV[r.GroupVersion][r.Name] = res
		idx.all = append(idx.all, res)
		idx.types[reflect.TypeOf(r.New())] = res
	}
	def := strategyDefaulter{types: idx.types}
	// The field managers only read the versioned object, and every object
	// they see is already at its hub version, so the conversion need not
	// copy it; kube-apiserver hands them its unsafe convertor too.
	conv := runtime.UnsafeObjectConvertor(sc)
	for _, res := range idx.all {
		subs := []string{""}
		for _, sub := range []string{"status", "finalize"} {
			if res.HasSubresource(sub) {
				subs = append(subs, sub)
			}
		}
		for _, sub := range subs {
			fm, err := managedfields.NewDefaultFieldManager(tc, conv, def, sc, res.GroupVersionKind(), res.GroupVersion, sub, resetFields(res, sub))
			if err != nil {
				return nil, fmt.Errorf("field manager for %s: %w", res.GroupVersionResource(), err)
			}
			res.fieldManagers[sub] = fm
		}
		if res.HasSubresource("scale") {
			// Scale is the subresource's own kind (autoscaling/v1), as
			// kube-apiserver's scale handlers.
			fm, err := managedfields.NewDefaultFieldManager(tc, conv, def, sc, scaleGVK, scaleGVK.GroupVersion(), "scale", nil)
			if err != nil {
				return nil, fmt.Errorf("scale field manager for %s: %w", res.GroupVersionResource(), err)
			}
			res.fieldManagers["scale"] = fm
		}
	}
	sort.SliceStable(idx.gvs, func(i, j int) bool {
		a, b := idx.gvs[i], idx.gvs[j]
		if (a.Group == "") != (b.Group == "") {
			return a.Group == ""
		}
		return a.Group < b.Group
	})
	return idx, nil
}

// resetFields are the fields an endpoint ignores from the client (status
// on the main resource and on namespaces/finalize, spec on status), so the
// field manager does not record their owners there.
func resetFields(r *resource, sub string) map[fieldpath.APIVersion]fieldpath.Filter {
	if !r.HasSubresource("status") {
		return nil
	}
	var set *fieldpath.Set
	if sub == "status" {
		set = fieldpath.NewSet(fieldpath.MakePathOrDie("spec"))
	} else {
		set = fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	}
	return map[fieldpath.APIVersion]fieldpath.Filter{
		fieldpath.APIVersion(r.GroupVersion.String()): fieldpath.NewExcludeSetFilter(set),
	}
}

func (idx *resourceIndex) lookup(gv schema.GroupVersion, name string) *resource {
	return idx.byGV[gv][name]
}

func (idx *resourceIndex) hasGV(gv schema.GroupVersion) bool {
	_, ok := idx.byGV[gv]
	return ok
}

// resourcesOf returns the resources of gv sorted by name.
func (idx *resourceIndex) resourcesOf(gv schema.GroupVersion) []*resource {
	var out []*resource
	for _, r := range idx.byGV[gv] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// byStorage finds the resource owning a storage resource name.
func (idx *resourceIndex) byStorage(storage string) *resource {
	for _, r := range idx.all {
		if r.StorageResource == storage && r.ToStorage == nil {
			return r
		}
	}
	return nil
}
