package apiserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Objects are stored, and sent to clients that ask for it, in the
// Kubernetes protobuf encoding, as kube-apiserver does: the magic
// "k8s\x00", then a runtime.Unknown message
//
//	1: typeMeta {1: apiVersion, 2: kind}
//	2: raw      the object's own message (k8s.io/api generated.proto)
//	3: contentEncoding, 4: contentType (empty)
//
// Every object's field 1 is its ObjectMeta, whose field 6 is
// resourceVersion, and every list's fields are 1: ListMeta and 2: items.
// That is all this file relies on to send stored objects without decoding
// them: it rewrites resourceVersion in place (TestProtoResourceVersion
// checks the result against a full encode for every resource).

// protoMagic starts every Kubernetes protobuf message.
var protoMagic = []byte("k8s\x00")

// isProto reports whether stored bytes are protobuf (anything else is the
// JSON that Skiff stored before it stored protobuf).
func isProto(data []byte) bool { return bytes.HasPrefix(data, protoMagic) }

// wire is the encoding of a response body.
type wire uint8

const (
	wireJSON wire = iota
	wireProto
)

func (w wire) contentType() string {
	if w == wireProto {
		return protobufType
	}
	return "application/json"
}

// fromStored returns stored bytes as this encoding of the object with
// resourceVersion rev without decoding them, or nil when that takes a
// decode (stored in the other encoding, or not in the expected form).
func (w wire) fromStored(data []byte, rev int64) []byte {
	switch {
	case isProto(data) && w == wireProto:
		return protoWithResourceVersion(data, rev)
	case !isProto(data) && w == wireJSON:
		return withResourceVersion(data, rev)
	}
	return nil
}

// encode encodes an object (its kind set) in this encoding.
func (w wire) encode(obj runtime.Object) ([]byte, error) {
	if w == wireProto {
		return encodeProto(obj)
	}
	return json.Marshal(obj)
}

// protoMarshaller is what the generated k8s.io/api types implement.
type protoMarshaller interface {
	runtime.ProtobufMarshaller
	MarshalToSizedBuffer([]byte) (int, error)
}

type protoUnmarshaller interface {
	Unmarshal([]byte) error
}

// encodeProto returns obj, which must have its kind set, in the envelope.
func encodeProto(obj runtime.Object) ([]byte, error) {
	m, ok := obj.(protoMarshaller)
	if !ok {
		return nil, fmt.Errorf("%T has no protobuf encoding", obj)
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}}
	size := m.Size()
	buf := make([]byte, len(protoMagic)+unk.Size()+1+protowire.SizeVarint(uint64(size))+size)
	n, err := unk.NestedMarshalTo(buf[len(protoMagic):], m, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", gvk.Kind, err)
	}
	copy(buf, protoMagic)
	return buf[:len(protoMagic)+n], nil
}

// decodeProto decodes an envelope of kind into into.
func decodeProto(data []byte, kind string, into runtime.Object) error {
	if !isProto(data) {
		return fmt.Errorf("not protobuf")
	}
	body := data[len(protoMagic):]
	tmStart, tmEnd, ok := findBytesField(body, 1)
	if !ok {
		return fmt.Errorf("protobuf envelope without type")
	}
	if ks, ke, ok := findBytesField(body[tmStart:tmEnd], 2); !ok || string(body[tmStart+ks:tmStart+ke]) != kind {
		return fmt.Errorf("stored object is not a %s", kind)
	}
	rawStart, rawEnd, ok := findBytesField(body, 2)
	if !ok {
		return fmt.Errorf("protobuf envelope without object")
	}
	u, ok := into.(protoUnmarshaller)
	if !ok {
		return fmt.Errorf("%T has no protobuf decoding", into)
	}
	return u.Unmarshal(body[rawStart:rawEnd])
}

// findBytesField returns where the value of the first length-delimited
// field num of message b starts and ends; ok is false when there is none
// or b does not parse.
func findBytesField(b []byte, num protowire.Number) (start, end int, ok bool) {
	start, end, _, ok = findField(b, num)
	return start, end, ok
}

// findField is findBytesField that also returns where the field's tag
// starts.
func findField(b []byte, num protowire.Number) (start, end, tag int, ok bool) {
	for i := 0; i < len(b); {
		n, typ, l := protowire.ConsumeTag(b[i:])
		if l < 0 {
			return 0, 0, 0, false
		}
		t := i
		i += l
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b[i:])
			if m < 0 {
				return 0, 0, 0, false
			}
			if n == num {
				return i + m - len(v), i + m, t, true
			}
			i += m
			continue
		}
		if n == num {
			return 0, 0, 0, false
		}
		m := protowire.ConsumeFieldValue(n, typ, b[i:])
		if m < 0 {
			return 0, 0, 0, false
		}
		i += m
	}
	return 0, 0, 0, false
}

// protoWithResourceVersion returns a stored envelope with the object's
// metadata.resourceVersion set to rev, or nil when data is not in that
// form. It writes the result in one pass, into one allocation.
func protoWithResourceVersion(data []byte, rev int64) []byte {
	if !isProto(data) {
		return nil
	}
	body := data[len(protoMagic):]
	rawStart, rawEnd, rawTag, ok := findField(body, 2)
	if !ok {
		return nil
	}
	sp, ok := locateRV(body[rawStart:rawEnd])
	if !ok {
		return nil
	}
	var rvb [20]byte
	rv := strconv.AppendInt(rvb[:0], rev, 10)
	n := sp.size(rv)
	out := make([]byte, 0, len(protoMagic)+rawTag+1+protowire.SizeVarint(uint64(n))+n+len(body)-rawEnd)
	out = append(out, data[:len(protoMagic)+rawTag]...)
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(n))
	out = sp.appendTo(out, rv)
	return append(out, body[rawEnd:]...)
}

// protoRawWithResourceVersion returns an object's message (no envelope)
// with metadata.resourceVersion set to rev, or nil when it does not parse.
func protoRawWithResourceVersion(raw []byte, rev int64) []byte {
	sp, ok := locateRV(raw)
	if !ok {
		return nil
	}
	var rvb [20]byte
	rv := strconv.AppendInt(rvb[:0], rev, 10)
	return sp.appendTo(make([]byte, 0, sp.size(rv)), rv)
}

// protoRawSizeWithResourceVersion is len(protoRawWithResourceVersion(raw,
// rev)), without building it; ok is false when raw does not parse.
func protoRawSizeWithResourceVersion(raw []byte, rev int64) (int, bool) {
	sp, ok := locateRV(raw)
	if !ok {
		return 0, false
	}
	var rvb [20]byte
	return sp.size(strconv.AppendInt(rvb[:0], rev, 10)), true
}

// rvSplice is where resourceVersion sits in an object's message: field 1
// (metadata), then field 6 of that.
type rvSplice struct {
	raw        []byte
	mTag, mEnd int // the metadata field in raw
	meta       []byte
	rTag, rEnd int // the resourceVersion field in meta
}

func locateRV(raw []byte) (rvSplice, bool) {
	mStart, mEnd, mTag, ok := findField(raw, 1)
	if !ok {
		return rvSplice{}, false
	}
	meta := raw[mStart:mEnd]
	_, rEnd, rTag, ok := findField(meta, 6)
	if !ok {
		// gogo's encoding always writes it; append it otherwise.
		rEnd, rTag = len(meta), len(meta)
	}
	return rvSplice{raw: raw, mTag: mTag, mEnd: mEnd, meta: meta, rTag: rTag, rEnd: rEnd}, true
}

// metaSize is the metadata message's length with resourceVersion rv.
func (s rvSplice) metaSize(rv []byte) int {
	return len(s.meta) - (s.rEnd - s.rTag) + 1 + protowire.SizeVarint(uint64(len(rv))) + len(rv)
}

// size is the object message's length with resourceVersion rv.
func (s rvSplice) size(rv []byte) int {
	m := s.metaSize(rv)
	return s.mTag + 1 + protowire.SizeVarint(uint64(m)) + m + len(s.raw) - s.mEnd
}

// appendTo appends the object message with resourceVersion rv to dst.
func (s rvSplice) appendTo(dst, rv []byte) []byte {
	dst = append(dst, s.raw[:s.mTag]...)
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(s.metaSize(rv)))
	dst = append(dst, s.meta[:s.rTag]...)
	dst = protowire.AppendTag(dst, 6, protowire.BytesType)
	dst = protowire.AppendBytes(dst, rv)
	dst = append(dst, s.meta[s.rEnd:]...)
	return append(dst, s.raw[s.mEnd:]...)
}

// protoRaw returns the object message inside an envelope (nil when data
// is not one).
func protoRaw(data []byte) []byte {
	if !isProto(data) {
		return nil
	}
	body := data[len(protoMagic):]
	s, e, ok := findBytesField(body, 2)
	if !ok {
		return nil
	}
	return body[s:e]
}

// protoListWriter builds a protobuf list. Its envelope starts with the
// length of everything, so either the items are buffered (add, then
// bytes), or their sizes are counted first (count) and the list is sent
// as header, items (appendItem) and trailer.
type protoListWriter struct {
	apiVersion, kind string
	items            [][]byte
	// size is what the items take in the list message.
	size int
}

// add buffers an item's message (no envelope).
func (l *protoListWriter) add(raw []byte) {
	l.items = append(l.items, raw)
	l.count(len(raw))
}

// count counts an item of n bytes without keeping it.
func (l *protoListWriter) count(n int) {
	l.size += 1 + protowire.SizeVarint(uint64(n)) + n
}

// header returns the envelope up to the first item, with metadata lm.
func (l *protoListWriter) header(lm *metav1.ListMeta) ([]byte, error) {
	md, err := lm.Marshal()
	if err != nil {
		return nil, err
	}
	listSize := 1 + protowire.SizeVarint(uint64(len(md))) + len(md) + l.size
	tm, err := (&runtime.TypeMeta{APIVersion: l.apiVersion, Kind: l.kind}).Marshal()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(protoMagic)+len(tm)+len(md)+32)
	out = append(out, protoMagic...)
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	out = protowire.AppendBytes(out, tm)
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(listSize))
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	return protowire.AppendBytes(out, md), nil
}

// appendItem appends an item (field 2 of the list message) to dst.
func appendItem(dst, raw []byte) []byte {
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	return protowire.AppendBytes(dst, raw)
}

// protoListTrailer ends the envelope: contentEncoding and contentType,
// empty, as gogo writes them.
var protoListTrailer = []byte{0x1a, 0x00, 0x22, 0x00}

// bytes returns the buffered list's envelope with metadata lm.
func (l *protoListWriter) bytes(lm *metav1.ListMeta) ([]byte, error) {
	out, err := l.header(lm)
	if err != nil {
		return nil, err
	}
	out = slices.Grow(out, l.size+len(protoListTrailer))
	for _, it := range l.items {
		out = appendItem(out, it)
	}
	return append(out, protoListTrailer...), nil
}

// protoWatchFrame is one event of a protobuf watch: a 4-byte big-endian
// length, then a metav1.WatchEvent message (no envelope: client-go reads
// it with the raw serializer) whose object is an envelope.
func protoWatchFrame(typ string, obj []byte) []byte {
	ev := metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: obj}}
	size := ev.Size()
	buf := make([]byte, 4+size)
	binary.BigEndian.PutUint32(buf, uint32(size))
	n, err := ev.MarshalToSizedBuffer(buf[4:])
	if err != nil || n != size {
		panic(fmt.Sprintf("encode watch event: %v (%d of %d bytes)", err, n, size))
	}
	return buf
}
