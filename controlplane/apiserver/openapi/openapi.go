// Package openapi serves the API server's OpenAPI documents and gives the
// server the type information server-side apply needs.
//
// The documents are the upstream Kubernetes ones (k8s.io/kubernetes
// api/openapi-spec, at the version matching k8s.io/api), trimmed by ./gen to
// the resources Skiff serves and embedded from ./data: kubectl explain,
// kubectl's validation and client-side apply, and client-go's openapi
// clients see what kube-apiserver would publish for those resources.
//
// Endpoints, as kube-apiserver serves them (k8s.io/kube-openapi pkg/handler
// and pkg/handler3):
//
//	GET /openapi/v2              JSON, or protobuf when asked
//	GET /openapi/v3              index: group version -> URL with ?hash=
//	GET /openapi/v3/<gv>?hash=h  one group version's document (JSON or
//	                             protobuf); immutable caching when h is
//	                             current, a 301 to the current URL when not
package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	openapi_v3 "github.com/google/gnostic-models/openapiv3"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/schemaconv"
	"k8s.io/kube-openapi/pkg/validation/spec"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

//go:embed data/v2.json data/v2.pb data/v3/*.json data/SOURCE
var data embed.FS

// Media types of the documents.
const (
	mimeJSON = "application/json"
	// v2 protobuf: clients ask for the deprecated "@" form (client-go's
	// discovery client does), servers answer with the "." form.
	subTypeV2Proto           = "com.github.proto-openapi.spec.v2.v1.0+protobuf"
	subTypeV2ProtoDeprecated = "com.github.proto-openapi.spec.v2@v1.0+protobuf"
	subTypeV3Proto           = "com.github.proto-openapi.spec.v3.v1.0+protobuf"
	subTypeV3ProtoDeprecated = "com.github.proto-openapi.spec.v3@v1.0+protobuf"
)

// document is one served document in its encodings. The JSON (and, for
// v2, the protobuf) stay in the binary's read-only data: requests read them
// through the embedded file, so they cost no heap.
type document struct {
	// file is the embedded JSON; index documents built at start have
	// content instead.
	file    string
	content []byte
	// etag is the upper-case hex SHA-512 of the JSON, as kube-apiserver
	// computes it; the protobuf form shares it (responses vary by Accept).
	etag string

	// protoFile is the embedded protobuf encoding (v2). Without it the
	// protobuf form is built from the JSON on first request (v3: kubectl
	// asks for JSON) and kept.
	protoFile string
	proto     lazyBytes

	// Gzipped forms, made on the first request that accepts gzip.
	gzJSON, gzProto lazyBytes
}

// lazyBytes is a value computed once, on first use.
type lazyBytes struct {
	once sync.Once
	data []byte
	err  error
}

func (l *lazyBytes) get(compute func() ([]byte, error)) ([]byte, error) {
	l.once.Do(func() { l.data, l.err = compute() })
	return l.data, l.err
}

// newFileDocument hashes the embedded file without copying it to the heap.
func newFileDocument(file, protoFile string) (*document, error) {
	f, err := data.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open embedded %s: %w", file, err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash embedded %s: %w", file, err)
	}
	return &document{file: file, protoFile: protoFile, etag: strings.ToUpper(hex.EncodeToString(h.Sum(nil)))}, nil
}

func newMemDocument(content []byte) *document {
	sum := sha512.Sum512(content)
	return &document{content: content, etag: strings.ToUpper(hex.EncodeToString(sum[:]))}
}

// jsonReader returns the JSON form for http.ServeContent.
func (d *document) jsonReader() (io.ReadSeeker, error) {
	if d.file == "" {
		return bytes.NewReader(d.content), nil
	}
	return openSeeker(d.file)
}

// protoReader returns the protobuf form for http.ServeContent.
func (d *document) protoReader() (io.ReadSeeker, error) {
	if d.protoFile != "" {
		return openSeeker(d.protoFile)
	}
	pb, err := d.proto.get(func() ([]byte, error) {
		j, err := d.bytes()
		if err != nil {
			return nil, err
		}
		return v3Proto(j)
	})
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(pb), nil
}

func (d *document) gzipJSON() ([]byte, error) {
	return d.gzJSON.get(func() ([]byte, error) { return gzipAll(d.jsonReader) })
}

func (d *document) gzipProto() ([]byte, error) {
	return d.gzProto.get(func() ([]byte, error) { return gzipAll(d.protoReader) })
}

// gzipAll compresses what open returns.
func gzipAll(open func() (io.ReadSeeker, error)) ([]byte, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, r); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		f, err := strconv.ParseFloat(q, 64)
		return err == nil && f > 0
	}
	return false
}

// bytes returns a copy of the JSON form.
func (d *document) bytes() ([]byte, error) {
	if d.file == "" {
		return bytes.Clone(d.content), nil
	}
	b, err := data.ReadFile(d.file)
	if err != nil {
		return nil, fmt.Errorf("read embedded %s: %w", d.file, err)
	}
	return b, nil
}

func openSeeker(name string) (io.ReadSeeker, error) {
	f, err := data.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open embedded %s: %w", name, err)
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		return nil, fmt.Errorf("embedded %s is not seekable", name)
	}
	return rs, nil
}

// Spec holds the embedded documents. It is safe for concurrent use.
type Spec struct {
	source string
	v2     *document
	// v3 maps a group version's discovery path ("api/v1",
	// "apis/apps/v1") to its document.
	v3      map[string]*document
	v3Index *document

	converterOnce sync.Once
	converter     managedfields.TypeConverter
	converterErr  error
}

// New loads the embedded documents and computes their hashes.
func New() (*Spec, error) {
	s := &Spec{v3: map[string]*document{}}
	src, err := data.ReadFile("data/SOURCE")
	if err != nil {
		return nil, fmt.Errorf("read embedded source note: %w", err)
	}
	s.source = strings.TrimSpace(string(src))

	if s.v2, err = newFileDocument("data/v2.json", "data/v2.pb"); err != nil {
		return nil, err
	}

	files, err := fs.Glob(data, "data/v3/*.json")
	if err != nil {
		return nil, fmt.Errorf("list embedded v3 documents: %w", err)
	}
	index := indexDoc{Paths: map[string]indexEntry{}}
	for _, f := range files {
		gv := strings.ReplaceAll(strings.TrimSuffix(path.Base(f), ".json"), "__", "/")
		d, err := newFileDocument(f, "")
		if err != nil {
			return nil, err
		}
		s.v3[gv] = d
		index.Paths[gv] = indexEntry{ServerRelativeURL: v3URL(gv, d.etag)}
	}
	if len(s.v3) == 0 {
		return nil, fmt.Errorf("no embedded v3 documents")
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, fmt.Errorf("encode v3 index: %w", err)
	}
	s.v3Index = newMemDocument(indexJSON)
	return s, nil
}

// indexDoc is the /openapi/v3 index (k8s.io/kube-openapi handler3's
// OpenAPIV3Discovery).
type indexDoc struct {
	Paths map[string]indexEntry `json:"paths"`
}

type indexEntry struct {
	ServerRelativeURL string `json:"serverRelativeURL"`
}

func v3URL(gv, etag string) string {
	u := url.URL{Path: "/openapi/v3/" + gv, RawQuery: url.Values{"hash": {etag}}.Encode()}
	return u.String()
}

func v3Proto(j []byte) ([]byte, error) {
	doc, err := openapi_v3.ParseDocument(j)
	if err != nil {
		return nil, fmt.Errorf("parse v3 document: %w", err)
	}
	pb, err := proto.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode v3 protobuf: %w", err)
	}
	return pb, nil
}

// Source names the upstream documents ("k8s.io/kubernetes v1.37.2
// api/openapi-spec").
func (s *Spec) Source() string { return s.source }

// GroupVersions returns the discovery paths of the v3 documents
// ("api/v1", "apis/apps/v1", "apis/apps", "version", ...).
func (s *Spec) GroupVersions() []string {
	out := make([]string, 0, len(s.v3))
	for gv := range s.v3 {
		out = append(out, gv)
	}
	return out
}

// V2JSON returns a copy of the OpenAPI v2 document as served.
func (s *Spec) V2JSON() ([]byte, error) { return s.v2.bytes() }

// V3JSON returns a copy of the v3 document of a group version ("api/v1")
// as served.
func (s *Spec) V3JSON(gv string) ([]byte, error) {
	d, ok := s.v3[gv]
	if !ok {
		return nil, fmt.Errorf("no OpenAPI v3 document for %q", gv)
	}
	return d.bytes()
}

// Register adds the OpenAPI endpoints to r.
func (s *Spec) Register(r gin.IRouter) {
	r.GET("/openapi/v2", s.serveV2)
	r.GET("/openapi/v3", s.serveV3Index)
	r.GET("/openapi/v3/*gv", s.serveV3)
}

// representation is a media type a handler can answer with.
type representation struct {
	subType     string // matched against the Accept clause
	contentType string // answered
	body        func() (io.ReadSeeker, error)
	gzipped     func() ([]byte, error)
}

// negotiate picks the first representation the Accept header allows, in the
// client's order of preference, as kube-openapi's handlers do. A missing
// Accept header means */*.
func negotiate(accept string, reps []representation) (representation, bool) {
	if accept == "" {
		accept = "*/*"
	}
	for _, clause := range goautoneg.ParseAccept(accept) {
		for _, rep := range reps {
			if clause.Type != "application" && clause.Type != "*" {
				continue
			}
			if clause.SubType != rep.subType && clause.SubType != "*" {
				continue
			}
			return rep, true
		}
	}
	return representation{}, false
}

func (s *Spec) serveV2(c *gin.Context) {
	reps := []representation{
		{"json", mimeJSON, s.v2.jsonReader, s.v2.gzipJSON},
		{subTypeV2ProtoDeprecated, "application/" + subTypeV2Proto, s.v2.protoReader, s.v2.gzipProto},
		{subTypeV2Proto, "application/" + subTypeV2Proto, s.v2.protoReader, s.v2.gzipProto},
	}
	serve(c, s.v2, reps, false)
}

func (s *Spec) serveV3Index(c *gin.Context) {
	reps := []representation{{"json", mimeJSON, s.v3Index.jsonReader, s.v3Index.gzipJSON}}
	serve(c, s.v3Index, reps, false)
}

func (s *Spec) serveV3(c *gin.Context) {
	gv := strings.Trim(c.Param("gv"), "/")
	if gv == "" {
		s.serveV3Index(c)
		return
	}
	d, ok := s.v3[gv]
	if !ok {
		c.Status(http.StatusNotFound)
		return
	}
	reps := []representation{
		{"json", mimeJSON, d.jsonReader, d.gzipJSON},
		{subTypeV3Proto, "application/" + subTypeV3Proto, d.protoReader, d.gzipProto},
		{subTypeV3ProtoDeprecated, "application/" + subTypeV3Proto, d.protoReader, d.gzipProto},
	}
	hash := c.Query("hash")
	if hash != "" && hash != d.etag {
		// A stale link: send the client to the current one.
		c.Header("Vary", "Accept")
		c.Redirect(http.StatusMovedPermanently, v3URL(gv, d.etag))
		return
	}
	serve(c, d, reps, hash != "")
}

// serve answers with the negotiated representation of d (gzipped when the
// client accepts it, as kube-apiserver does), its ETag and, for a request
// naming the current hash, headers that let caches keep the answer for a
// year. http.ServeContent answers If-None-Match with 304.
func serve(c *gin.Context, d *document, reps []representation, immutable bool) {
	w := c.Writer
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	rep, ok := negotiate(c.GetHeader("Accept"), reps)
	if !ok {
		c.Status(http.StatusNotAcceptable)
		return
	}
	var content io.ReadSeeker
	var err error
	if acceptsGzip(c.GetHeader("Accept-Encoding")) {
		var gz []byte
		if gz, err = rep.gzipped(); err == nil {
			content = bytes.NewReader(gz)
			w.Header().Set("Content-Encoding", "gzip")
		}
	} else {
		content, err = rep.body()
	}
	if err != nil {
		c.String(http.StatusInternalServerError, "openapi: %v", err)
		return
	}
	w.Header().Set("Content-Type", rep.contentType)
	w.Header().Set("Etag", strconv.Quote(d.etag))
	if immutable {
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	}
	http.ServeContent(w, c.Request, "", time.Time{}, content)
}

// TypeConverter returns the converter between typed objects and
// structured-merge-diff values that server-side apply uses, built from the
// v2 definitions on first call (it costs some time and memory: see the
// package README) and shared afterwards.
func (s *Spec) TypeConverter() (managedfields.TypeConverter, error) {
	s.converterOnce.Do(func() {
		v2, err := s.v2.bytes()
		if err != nil {
			s.converterErr = err
			return
		}
		s.converter, s.converterErr = newTypeConverter(v2)
	})
	return s.converter, s.converterErr
}

func newTypeConverter(v2 []byte) (managedfields.TypeConverter, error) {
	var doc struct {
		Definitions map[string]*spec.Schema `json:"definitions"`
	}
	if err := json.Unmarshal(v2, &doc); err != nil {
		return nil, fmt.Errorf("decode v2 definitions: %w", err)
	}
	ts, err := schemaconv.ToSchemaFromOpenAPI(doc.Definitions, false)
	if err != nil {
		return nil, fmt.Errorf("build type converter: %w", err)
	}
	parser := &typed.Parser{Schema: smdschema.Schema{Types: ts.Types}}
	tc := &typeConverter{parser: map[schema.GroupVersionKind]*typed.ParseableType{}}
	for name, def := range doc.Definitions {
		for _, gvk := range definitionKinds(def) {
			t := parser.Type(name)
			tc.parser[gvk] = &t
		}
	}
	// With no types at all it answers every kind with the error the
	// field managers take for "no schema at this version".
	if tc.unknown, err = managedfields.NewTypeConverter(map[string]*spec.Schema{}, false); err != nil {
		return nil, fmt.Errorf("build type converter: %w", err)
	}
	return tc, nil
}

// typeConverter is managedfields.NewTypeConverter's converter, except that
// it does not validate a Go object against its schema when a field
// manager converts it for an update (which asks with
// typed.AllowDuplicates): the object was decoded into its Go type, whose
// schema is generated from that same type, and the comparison that
// follows walks it with the schema anyway. The validation walk was 40% of
// the field manager's time in a create (BenchmarkFieldManagerCreate).
// Apply patches and unstructured objects are validated as before.
type typeConverter struct {
	parser map[schema.GroupVersionKind]*typed.ParseableType
	// unknown knows no types; it makes the error for a kind without a
	// schema, whose type the field managers recognise.
	unknown managedfields.TypeConverter
}

// ObjectToTyped implements managedfields.TypeConverter.
func (c *typeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	t := c.parser[obj.GetObjectKind().GroupVersionKind()]
	if t == nil {
		return c.unknown.ObjectToTyped(obj, opts...)
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return t.FromUnstructured(u.UnstructuredContent(), opts...)
	}
	if !slices.Contains(opts, typed.AllowDuplicates) {
		return t.FromStructured(obj, opts...)
	}
	v, err := value.NewValueReflect(obj)
	if err != nil {
		return nil, fmt.Errorf("reflect %T: %w", obj, err)
	}
	//nolint:staticcheck // Deprecated for callers who could skip a check that matters; see the type's comment.
	return typed.AsTypedUnvalidated(v, t.Schema, t.TypeRef), nil
}

// TypedToObject implements managedfields.TypeConverter.
func (c *typeConverter) TypedToObject(tv *typed.TypedValue) (runtime.Object, error) {
	return c.unknown.TypedToObject(tv)
}

// definitionKinds are the kinds an OpenAPI definition is the schema of
// (its x-kubernetes-group-version-kind extension).
func definitionKinds(def *spec.Schema) []schema.GroupVersionKind {
	list, _ := def.Extensions["x-kubernetes-group-version-kind"].([]any)
	var out []schema.GroupVersionKind
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		g, gok := m["group"].(string)
		v, vok := m["version"].(string)
		k, kok := m["kind"].(string)
		if gok && vok && kok && k != "" {
			out = append(out, schema.GroupVersionKind{Group: g, Version: v, Kind: k})
		}
	}
	return out
}
