package registry

import (
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/controlplane/registry/apps"
	"github.com/skiff-project/skiff/controlplane/registry/coordination"
	"github.com/skiff-project/skiff/controlplane/registry/core"
	"github.com/skiff-project/skiff/controlplane/registry/discovery"
	"github.com/skiff-project/skiff/controlplane/registry/events"
)

// Verbs of resources that support every standard operation.
func allVerbs() []string {
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// Options are the settings of the catalogue that kube-apiserver takes as
// flags.
type Options struct {
	// DefaultNotReadyTolerationSeconds and
	// DefaultUnreachableTolerationSeconds are the tolerationSeconds of the
	// node.kubernetes.io/not-ready and node.kubernetes.io/unreachable
	// NoExecute tolerations added to every pod that has none
	// (--default-not-ready-toleration-seconds and
	// --default-unreachable-toleration-seconds; 300 in DefaultOptions).
	// They are used as given: 0 makes pods leave a lost node at once.
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64
}

// DefaultOptions returns kube-apiserver's defaults. Start from them and
// change what differs.
func DefaultOptions() Options {
	return Options{
		DefaultNotReadyTolerationSeconds:    core.DefaultTolerationSeconds,
		DefaultUnreachableTolerationSeconds: core.DefaultTolerationSeconds,
	}
}

// Resources returns the catalogue with DefaultOptions.
func Resources() []*Resource { return Catalogue(DefaultOptions()) }

// Catalogue returns the catalogue of served resources, as kube-apiserver
// 1.37 lists them in discovery (names, kinds, scope, verbs, short names,
// categories, subresources), with the rules opts configure. Each call
// returns new values.
func Catalogue(opts Options) []*Resource {
	notReady, unreachable := opts.DefaultNotReadyTolerationSeconds, opts.DefaultUnreachableTolerationSeconds
	coreV1 := schema.GroupVersion{Version: "v1"}
	appsV1 := appsv1.SchemeGroupVersion
	discoveryV1 := discoveryv1.SchemeGroupVersion
	eventsV1 := eventsv1.SchemeGroupVersion
	coordinationV1 := coordinationv1.SchemeGroupVersion

	resources := []*Resource{
		{
			GroupVersion: coreV1, Kind: "Namespace", Name: "namespaces", SingularName: "namespace",
			ShortNames: []string{"ns"}, Namespaced: false,
			// kube-apiserver serves no deletecollection for namespaces.
			Verbs:        []string{"create", "delete", "get", "list", "patch", "update", "watch"},
			Subresources: []string{"finalize", "status"},
			New:          func() runtime.Object { return &corev1.Namespace{} },
			NewList:      func() runtime.Object { return &corev1.NamespaceList{} },
			Strategy:     core.NamespaceStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "Node", Name: "nodes", SingularName: "node",
			ShortNames: []string{"no"}, Namespaced: false, Verbs: allVerbs(),
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &corev1.Node{} },
			NewList:      func() runtime.Object { return &corev1.NodeList{} },
			Strategy:     core.NodeStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "Pod", Name: "pods", SingularName: "pod",
			ShortNames: []string{"po"}, Categories: []string{"all"}, Namespaced: true, Verbs: allVerbs(),
			Subresources: []string{"binding", "status"},
			New:          func() runtime.Object { return &corev1.Pod{} },
			NewList:      func() runtime.Object { return &corev1.PodList{} },
			Strategy:     core.PodStrategy{NotReadyTolerationSeconds: &notReady, UnreachableTolerationSeconds: &unreachable},
		},
		{
			GroupVersion: coreV1, Kind: "Service", Name: "services", SingularName: "service",
			ShortNames: []string{"svc"}, Categories: []string{"all"}, Namespaced: true, Verbs: allVerbs(),
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &corev1.Service{} },
			NewList:      func() runtime.Object { return &corev1.ServiceList{} },
			Strategy:     core.ServiceStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "Endpoints", Name: "endpoints", SingularName: "endpoints",
			ShortNames: []string{"ep"}, Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &corev1.Endpoints{} },
			NewList:  func() runtime.Object { return &corev1.EndpointsList{} },
			Strategy: core.EndpointsStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "ConfigMap", Name: "configmaps", SingularName: "configmap",
			ShortNames: []string{"cm"}, Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &corev1.ConfigMap{} },
			NewList:  func() runtime.Object { return &corev1.ConfigMapList{} },
			Strategy: core.ConfigMapStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "Secret", Name: "secrets", SingularName: "secret",
			Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &corev1.Secret{} },
			NewList:  func() runtime.Object { return &corev1.SecretList{} },
			Strategy: core.SecretStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "ServiceAccount", Name: "serviceaccounts", SingularName: "serviceaccount",
			ShortNames: []string{"sa"}, Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &corev1.ServiceAccount{} },
			NewList:  func() runtime.Object { return &corev1.ServiceAccountList{} },
			Strategy: core.ServiceAccountStrategy{},
		},
		{
			GroupVersion: coreV1, Kind: "Event", Name: "events", SingularName: "event",
			ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &corev1.Event{} },
			NewList:  func() runtime.Object { return &corev1.EventList{} },
			Strategy: core.EventStrategy{},
		},
		{
			GroupVersion: appsV1, Kind: "Deployment", Name: "deployments", SingularName: "deployment",
			ShortNames: []string{"deploy"}, Categories: []string{"all"}, Namespaced: true, Verbs: allVerbs(),
			Subresources: []string{"scale", "status"},
			New:          func() runtime.Object { return &appsv1.Deployment{} },
			NewList:      func() runtime.Object { return &appsv1.DeploymentList{} },
			Strategy:     apps.DeploymentStrategy{},
		},
		{
			GroupVersion: appsV1, Kind: "ReplicaSet", Name: "replicasets", SingularName: "replicaset",
			ShortNames: []string{"rs"}, Categories: []string{"all"}, Namespaced: true, Verbs: allVerbs(),
			Subresources: []string{"scale", "status"},
			New:          func() runtime.Object { return &appsv1.ReplicaSet{} },
			NewList:      func() runtime.Object { return &appsv1.ReplicaSetList{} },
			Strategy:     apps.ReplicaSetStrategy{},
		},
		{
			GroupVersion: discoveryV1, Kind: "EndpointSlice", Name: "endpointslices", SingularName: "endpointslice",
			Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &discoveryv1.EndpointSlice{} },
			NewList:  func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
			Strategy: discovery.EndpointSliceStrategy{},
		},
		{
			GroupVersion: eventsV1, Kind: "Event", Name: "events", SingularName: "event",
			ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs(),
			StorageResource: "events",
			ToStorage:       events.ToStorage,
			FromStorage:     events.FromStorage,
			New:             func() runtime.Object { return &eventsv1.Event{} },
			NewList:         func() runtime.Object { return &eventsv1.EventList{} },
			Strategy:        events.EventStrategy{},
		},
		{
			GroupVersion: coordinationV1, Kind: "Lease", Name: "leases", SingularName: "lease",
			Namespaced: true, Verbs: allVerbs(),
			New:      func() runtime.Object { return &coordinationv1.Lease{} },
			NewList:  func() runtime.Object { return &coordinationv1.LeaseList{} },
			Strategy: coordination.LeaseStrategy{},
		},
	}
	for _, r := range resources {
		if r.StorageResource == "" {
			r.StorageResource = r.Name
		}
	}
	return resources
}

// Compile-time checks of the optional interfaces.
var (
	_ StatusStrategy   = core.PodStrategy{}
	_ GracefulDeleter  = core.PodStrategy{}
	_ Binder           = core.PodStrategy{}
	_ StatusStrategy   = core.ServiceStrategy{}
	_ StatusStrategy   = core.NodeStrategy{}
	_ StatusStrategy   = core.NamespaceStrategy{}
	_ FinalizeStrategy = core.NamespaceStrategy{}
	_ StatusStrategy   = apps.DeploymentStrategy{}
	_ Scaler           = apps.DeploymentStrategy{}
	_ StatusStrategy   = apps.ReplicaSetStrategy{}
	_ Scaler           = apps.ReplicaSetStrategy{}
)
