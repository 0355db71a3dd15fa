package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// A watch or list with a selector must look into each object to decide
// what its client sees, but it need not decode all of it: these sparse types hold
// only what selectors read, and an object that passes is sent as stored
// (with its resourceVersion spliced in) instead of being decoded in full
// and encoded again, per watcher and per event. The common case is a
// node's watch of its own pods (spec.nodeName=<node>): every pod event in
// the cluster reaches every node's watch.

// sparseMeta is what a label selector reads.
type sparseMeta struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
}

// sparsePod is what a pod label or field selector reads: the metadata and
// every field core.PodStrategy.SelectableFields names (TestSparsePod
// keeps the two in step).
type sparsePod struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName           string               `json:"nodeName"`
		RestartPolicy      corev1.RestartPolicy `json:"restartPolicy"`
		SchedulerName      string               `json:"schedulerName"`
		ServiceAccountName string               `json:"serviceAccountName"`
		HostNetwork        bool                 `json:"hostNetwork"`
	} `json:"spec"`
	Status struct {
		Phase             corev1.PodPhase `json:"phase"`
		PodIPs            []corev1.PodIP  `json:"podIPs"`
		NominatedNodeName string          `json:"nominatedNodeName"`
	} `json:"status"`
}

func (p *sparsePod) pod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Metadata.Name, Namespace: p.Metadata.Namespace, Labels: p.Metadata.Labels},
		Spec: corev1.PodSpec{
			NodeName: p.Spec.NodeName, RestartPolicy: p.Spec.RestartPolicy, SchedulerName: p.Spec.SchedulerName,
			ServiceAccountName: p.Spec.ServiceAccountName, HostNetwork: p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIPs: p.Status.PodIPs, NominatedNodeName: p.Status.NominatedNodeName},
	}
}

var podsGR = corev1.SchemeGroupVersion.WithResource("pods").GroupResource()

// sparseMatchable reports whether sel can be evaluated on a sparse
// decode of r's stored objects: label selectors on any resource, field
// selectors on pods.
func sparseMatchable(r *resource, sel selector) bool {
	return sel.fields.Empty() || (r.gr() == podsGR && r.FromStorage == nil)
}

// sparseMatches evaluates sel against stored bytes; ok is false when they
// do not decode (the caller then takes the full path).
func sparseMatches(r *resource, sel selector, data []byte) (match, ok bool) {
	if sel.fields.Empty() {
		var m sparseMeta
		if kjson.UnmarshalCaseSensitivePreserveInts(data, &m) != nil {
			return false, false
		}
		return sel.labels.Matches(labels.Set(m.Metadata.Labels)), true
	}
	var p sparsePod
	if kjson.UnmarshalCaseSensitivePreserveInts(data, &p) != nil {
		return false, false
	}
	return sel.matches(r, p.pod()), true
}

// sparseWatchEvent is watchEvent for a watch that sparseMatchable
// allows, of a resource whose stored form is what clients get: the same transitions (entering the selector is ADDED, leaving
// it DELETED with the previous state), the object as stored bytes. ok is
// false when the event needs the full path.
func sparseWatchEvent(r *resource, sel selector, ev storage.Event) (typ watch.EventType, data []byte, ok bool) {
	var curOK, prevOK bool
	if ev.Type == storage.EventPut {
		if curOK, ok = sparseMatches(r, sel, ev.Value); !ok {
			return "", nil, false
		}
	}
	if ev.PrevValue != nil {
		if prevOK, ok = sparseMatches(r, sel, ev.PrevValue); !ok {
			return "", nil, false
		}
	}
	var obj []byte
	switch {
	case ev.Type == storage.EventDelete:
		if prevOK {
			typ, obj = watch.Deleted, ev.PrevValue
		}
	case ev.Created || (curOK && !prevOK):
		if curOK {
			typ, obj = watch.Added, ev.Value
		}
	case curOK:
		typ, obj = watch.Modified, ev.Value
	case prevOK:
		typ, obj = watch.Deleted, ev.PrevValue
	}
	if obj == nil {
		return "", nil, true // not for this watcher
	}
	if data = withResourceVersion(obj, ev.Revision); data == nil {
		return "", nil, false
	}
	return typ, data, true
}
