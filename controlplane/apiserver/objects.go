package apiserver

import (
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// encodeForStorage returns the bytes stored for obj: the Kubernetes
// protobuf of the storage type (wire.go), as kube-apiserver stores it,
// without resourceVersion (etcd's revision is the version). A type
// without a protobuf encoding is stored as JSON.
func encodeForStorage(r *resource, obj runtime.Object) ([]byte, error) {
	var err error
	if r.ToStorage != nil {
		if obj, err = r.ToStorage(obj.DeepCopyObject()); err != nil {
			return nil, fmt.Errorf("convert %s to storage: %w", r.Kind, err)
		}
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	gvk := obj.GetObjectKind().GroupVersionKind()
	obj.GetObjectKind().SetGroupVersionKind(r.owner.GroupVersionKind())
	var data []byte
	if _, ok := obj.(protoMarshaller); ok {
		data, err = encodeProto(obj)
	} else {
		data, err = json.Marshal(obj)
	}
	m.SetResourceVersion(rv)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.Kind, err)
	}
	return data, nil
}

// decodeFromStorage decodes stored bytes into the resource's type and sets
// resourceVersion to rev. Values are protobuf, or JSON when an older
// Skiff wrote them (rewritten as protobuf on their next update).
func decodeFromStorage(r *resource, data []byte, rev int64) (runtime.Object, error) {
	obj := r.owner.New()
	var err error
	if isProto(data) {
		err = decodeProto(data, r.owner.Kind, obj)
	} else {
		err = json.Unmarshal(data, obj)
	}
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", r.owner.Kind, err)
	}
	if r.FromStorage != nil {
		if obj, err = r.FromStorage(obj); err != nil {
			return nil, fmt.Errorf("convert stored %s: %w", r.owner.Kind, err)
		}
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
	return obj, nil
}

func decodeKV(r *resource, kv storage.KeyValue) (runtime.Object, error) {
	return decodeFromStorage(r, kv.Value, kv.ModRevision)
}

func accessor(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("object %T has no metadata: %v", obj, err))
	}
	return m
}

func revisionOf(obj runtime.Object) int64 {
	rv, _ := strconv.ParseInt(accessor(obj).GetResourceVersion(), 10, 64)
	return rv
}

// parseRV parses a client's resourceVersion ("" is 0).
func parseRV(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rv < 0 {
		return 0, badRequest("invalid resource version %q", s)
	}
	return rv, nil
}
