package apiserver

import (
	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A watch or list with a selector looks into every object to decide what
// its client sees, but it need not decode all of it: sparseFromStored
// reads from the stored protobuf just what selectors read, and an object
// that passes goes out as stored. The common case is a node's watch of
// its own pods (spec.nodeName=<node>), which every pod event in the
// cluster reaches.
//
// Field numbers, from k8s.io/api/core/v1 and apimachinery's meta/v1
// generated.proto (TestSparseFromStored compares the result with a full
// decode for every selectable field):
//
//	Pod:        1 metadata, 2 spec, 3 status
//	ObjectMeta: 1 name, 3 namespace, 11 labels (map entries: 1 key, 2 value)
//	PodSpec:    3 restartPolicy, 8 serviceAccountName, 10 nodeName,
//	            11 hostNetwork, 19 schedulerName
//	PodStatus:  1 phase, 11 nominatedNodeName, 12 podIPs (PodIP: 1 ip)

var podsGR = corev1.SchemeGroupVersion.WithResource("pods").GroupResource()

// sparseSelectable reports whether sel can be evaluated on what
// sparseFromStored reads of r's objects: labels and metadata.name and
// metadata.namespace of any resource, every selectable field of pods.
func sparseSelectable(r *resource, sel selector) bool {
	if r.FromStorage != nil {
		return false
	}
	isPod := r.gr() == podsGR
	for _, req := range sel.fields.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" && !isPod {
			return false
		}
	}
	return true
}

// sparseMatches evaluates sel, which sparseSelectable allows, on stored
// bytes; ok is false when they are not protobuf or do not parse (the
// caller then decodes them).
func sparseMatches(r *resource, sel selector, data []byte) (match, ok bool) {
	obj, ok := sparseFromStored(r, data)
	if !ok {
		return false, false
	}
	return sel.matches(r, obj), true
}

// sparseFromStored returns an object of r's type with only what selectors
// read set.
func sparseFromStored(r *resource, data []byte) (runtime.Object, bool) {
	raw := protoRaw(data)
	if raw == nil {
		return nil, false
	}
	var pod *corev1.Pod
	var obj runtime.Object
	if r.gr() == podsGR {
		pod = &corev1.Pod{}
		obj = pod
	} else {
		obj = r.owner.New()
	}
	m := accessor(obj)
	ok := eachField(raw, func(num protowire.Number, v []byte, _ uint64) bool {
		switch {
		case num == 1:
			var labels map[string]string
			ok := eachField(v, func(num protowire.Number, v []byte, _ uint64) bool {
				switch num {
				case 1:
					m.SetName(string(v))
				case 3:
					m.SetNamespace(string(v))
				case 11:
					var k, val string
					if !eachField(v, func(num protowire.Number, v []byte, _ uint64) bool {
						switch num {
						case 1:
							k = string(v)
						case 2:
							val = string(v)
						}
						return true
					}) {
						return false
					}
					if labels == nil {
						labels = map[string]string{}
					}
					labels[k] = val
				}
				return true
			})
			m.SetLabels(labels)
			return ok
		case num == 2 && pod != nil:
			s := &pod.Spec
			return eachField(v, func(num protowire.Number, v []byte, u uint64) bool {
				switch num {
				case 3:
					s.RestartPolicy = corev1.RestartPolicy(v)
				case 8:
					s.ServiceAccountName = string(v)
				case 10:
					s.NodeName = string(v)
				case 11:
					s.HostNetwork = u != 0
				case 19:
					s.SchedulerName = string(v)
				}
				return true
			})
		case num == 3 && pod != nil:
			st := &pod.Status
			return eachField(v, func(num protowire.Number, v []byte, _ uint64) bool {
				switch num {
				case 1:
					st.Phase = corev1.PodPhase(v)
				case 11:
					st.NominatedNodeName = string(v)
				case 12:
					var ip corev1.PodIP
					if !eachField(v, func(num protowire.Number, v []byte, _ uint64) bool {
						if num == 1 {
							ip.IP = string(v)
						}
						return true
					}) {
						return false
					}
					st.PodIPs = append(st.PodIPs, ip)
				}
				return true
			})
		}
		return true
	})
	return obj, ok
}

// eachField calls fn for every field of message b, with the value of a
// length-delimited field or of a varint; it returns false when b does not
// parse or fn does.
func eachField(b []byte, fn func(num protowire.Number, v []byte, u uint64) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
		if !fn(num, v, u) {
			return false
		}
	}
	return true
}
