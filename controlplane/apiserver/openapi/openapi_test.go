package openapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	openapi_v3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi/cached"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// servedKind is a resource the embedded documents must describe.
type servedKind struct {
	gv     schema.GroupVersion
	kind   string
	plural string
	// namespaced resources have paths under namespaces/{namespace}/.
	namespaced bool
	subs       []string
}

// servedKinds lists each served resource's group version, kind and
// subresources.
func servedKinds() []servedKind {
	return []servedKind{
		{schema.GroupVersion{Version: "v1"}, "Namespace", "namespaces", false, []string{"status", "finalize"}},
		{schema.GroupVersion{Version: "v1"}, "Node", "nodes", false, []string{"status"}},
		{schema.GroupVersion{Version: "v1"}, "Pod", "pods", true, []string{"status", "binding"}},
		{schema.GroupVersion{Version: "v1"}, "Service", "services", true, []string{"status"}},
		{schema.GroupVersion{Version: "v1"}, "Endpoints", "endpoints", true, nil},
		{schema.GroupVersion{Version: "v1"}, "ConfigMap", "configmaps", true, nil},
		{schema.GroupVersion{Version: "v1"}, "Secret", "secrets", true, nil},
		{schema.GroupVersion{Version: "v1"}, "ServiceAccount", "serviceaccounts", true, nil},
		{schema.GroupVersion{Version: "v1"}, "Event", "events", true, nil},
		{schema.GroupVersion{Group: "apps", Version: "v1"}, "Deployment", "deployments", true, []string{"status", "scale"}},
		{schema.GroupVersion{Group: "apps", Version: "v1"}, "ReplicaSet", "replicasets", true, []string{"status", "scale"}},
		{schema.GroupVersion{Group: "discovery.k8s.io", Version: "v1"}, "EndpointSlice", "endpointslices", true, nil},
		{schema.GroupVersion{Group: "events.k8s.io", Version: "v1"}, "Event", "events", true, nil},
		{schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"}, "Lease", "leases", true, nil},
	}
}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func v2JSON(t testing.TB, s *Spec) []byte {
	t.Helper()
	j, err := s.V2JSON()
	if err != nil {
		t.Fatalf("V2JSON: %v", err)
	}
	return j
}

func v3JSON(t testing.TB, s *Spec, gv string) []byte {
	t.Helper()
	j, err := s.V3JSON(gv)
	if err != nil {
		t.Fatalf("V3JSON: %v", err)
	}
	return j
}

func newSpec(t testing.TB) *Spec {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// startServer starts an httptest server (127.0.0.1, free port) with the spec's
// endpoints on a gin engine.
func startServer(t *testing.T, s *Spec) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	s.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func request(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func TestEmbeddedDocuments(t *testing.T) {
	s := newSpec(t)
	if got := s.Source(); !strings.Contains(got, "k8s.io/kubernetes v1.") {
		t.Errorf("Source: got %q, want the upstream module and version", got)
	}
	gvs := s.GroupVersions()
	slices.Sort(gvs)
	want := []string{
		"api", "api/v1", "apis", "apis/apps", "apis/apps/v1",
		"apis/coordination.k8s.io", "apis/coordination.k8s.io/v1",
		"apis/discovery.k8s.io", "apis/discovery.k8s.io/v1",
		"apis/events.k8s.io", "apis/events.k8s.io/v1", "version",
	}
	if !slices.Equal(gvs, want) {
		t.Errorf("v3 documents: got %q, want %q", gvs, want)
	}
}

// v2Doc is the part of a swagger document the tests read.
type v2Doc struct {
	Paths       map[string]map[string]json.RawMessage `json:"paths"`
	Definitions map[string]struct {
		GVK []schema.GroupVersionKind `json:"x-kubernetes-group-version-kind"`
	} `json:"definitions"`
}

// TestServedPaths checks that the documents advertise exactly the served
// resources, subresources and verbs: a path for something the server does
// not serve would send kubectl to a 404.
func TestServedPaths(t *testing.T) {
	s := newSpec(t)
	var v2 v2Doc
	if err := json.Unmarshal(v2JSON(t, s), &v2); err != nil {
		t.Fatalf("decode v2: %v", err)
	}
	want := map[string]bool{"/api/": true, "/apis/": true, "/version/": true}
	for _, k := range servedKinds() {
		base := "/" + gvPath(k.gv) + "/"
		want[base] = true
		if k.gv.Group != "" {
			want["/apis/"+k.gv.Group+"/"] = true
		}
		want[base+k.plural] = true
		item := base + k.plural + "/{name}"
		if k.namespaced {
			want[base+"namespaces/{namespace}/"+k.plural] = true
			item = base + "namespaces/{namespace}/" + k.plural + "/{name}"
		}
		want[item] = true
		for _, sub := range k.subs {
			want[item+"/"+sub] = true
		}
	}
	for p := range v2.Paths {
		if !want[p] {
			t.Errorf("v2 path %s: served by the document, not by Skiff", p)
		}
	}
	for p := range want {
		if _, ok := v2.Paths[p]; !ok {
			t.Errorf("v2 path %s: served by Skiff, missing from the document", p)
		}
	}

	// The v3 documents hold the same paths, split by group version.
	v3Paths := map[string]bool{}
	for _, gv := range s.GroupVersions() {
		j := v3JSON(t, s, gv)
		var d struct {
			Paths map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(j, &d); err != nil {
			t.Fatalf("decode v3 %s: %v", gv, err)
		}
		for p := range d.Paths {
			v3Paths[p] = true
		}
	}
	for p := range want {
		if !v3Paths[p] {
			t.Errorf("v3 path %s: missing", p)
		}
	}
	if len(v3Paths) != len(want) {
		t.Errorf("v3 paths: got %d, want %d", len(v3Paths), len(want))
	}

	// No media type the server does not speak.
	for _, doc := range append([][]byte{v2JSON(t, s)}, func() (out [][]byte) {
		for _, gv := range s.GroupVersions() {
			j := v3JSON(t, s, gv)
			out = append(out, j)
		}
		return out
	}()...) {
		if strings.Contains(string(doc), "cbor") {
			t.Errorf("document advertises CBOR, which Skiff does not serve")
		}
	}
}

// TestDiscoveryClientV2Protobuf fetches /openapi/v2 as client-go's
// discovery client (and so kubectl) does: protobuf.
func TestDiscoveryClientV2Protobuf(t *testing.T) {
	s := newSpec(t)
	srv := startServer(t, s)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatalf("OpenAPISchema: %v", err)
	}
	want, err := openapi_v2.ParseDocument(v2JSON(t, s))
	if err != nil {
		t.Fatalf("parse v2 JSON: %v", err)
	}
	if !proto.Equal(doc, want) {
		t.Errorf("protobuf v2: got a document that differs from the parsed JSON one")
	}
	var found bool
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		if d.GetName() == "io.k8s.api.apps.v1.Deployment" {
			found = true
		}
	}
	if !found {
		t.Errorf("protobuf v2 definitions: got no io.k8s.api.apps.v1.Deployment, want it")
	}
}

// TestOpenAPIV3Root reads the v3 documents through client-go's openapi3
// root, as kubectl explain and kubectl's field validation check do.
func TestOpenAPIV3Root(t *testing.T) {
	s := newSpec(t)
	srv := startServer(t, s)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	root := openapi3.NewRoot(cached.NewClient(dc.OpenAPIV3()))
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatalf("GroupVersions: %v", err)
	}
	wantGVs := []schema.GroupVersion{}
	for _, k := range servedKinds() {
		if !slices.Contains(wantGVs, k.gv) {
			wantGVs = append(wantGVs, k.gv)
		}
	}
	for _, gv := range wantGVs {
		if !slices.Contains(gvs, gv) {
			t.Errorf("GroupVersions: got %v, want it to include %v", gvs, gv)
		}
	}

	for _, k := range servedKinds() {
		t.Run(k.gv.String()+"/"+k.kind, func(t *testing.T) {
			doc, err := root.GVSpec(k.gv)
			if err != nil {
				t.Fatalf("GVSpec: %v", err)
			}
			// kubectl (cli-runtime's queryParamVerifierV3) sends
			// fieldValidation=Strict when the PATCH operation of the
			// kind lists the parameter.
			var patchOps, withFieldValidation, withDryRun int
			for _, p := range doc.Paths.Paths {
				op := p.Patch
				if op == nil {
					continue
				}
				var gvk map[string]string
				if err := op.Extensions.GetObject("x-kubernetes-group-version-kind", &gvk); err != nil ||
					gvk["group"] != k.gv.Group || gvk["version"] != k.gv.Version || gvk["kind"] != k.kind {
					continue
				}
				patchOps++
				for _, param := range op.Parameters {
					if param.In == "query" && param.Name == "fieldValidation" {
						withFieldValidation++
					}
					if param.In == "query" && param.Name == "dryRun" {
						withDryRun++
					}
				}
			}
			if patchOps == 0 || withFieldValidation != patchOps || withDryRun != patchOps {
				t.Errorf("PATCH operations: got %d, %d with fieldValidation, %d with dryRun; want at least one, all with both", patchOps, withFieldValidation, withDryRun)
			}
			// kubectl explain finds the kind's schema by its
			// x-kubernetes-group-version-kind.
			m, err := root.GVSpecAsMap(k.gv)
			if err != nil {
				t.Fatalf("GVSpecAsMap: %v", err)
			}
			schemas, _ := m["components"].(map[string]any)["schemas"].(map[string]any)
			var found bool
			for _, sch := range schemas {
				list, _ := sch.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
				for _, e := range list {
					e, _ := e.(map[string]any)
					if e["group"] == k.gv.Group && e["version"] == k.gv.Version && e["kind"] == k.kind {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("schemas: got none for %s, want one", k.kind)
			}
		})
	}
}

func TestV3ProtobufRoundTrip(t *testing.T) {
	s := newSpec(t)
	srv := startServer(t, s)
	for _, accept := range []string{
		"application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
		"application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
	} {
		resp := request(t, srv.URL+"/openapi/v3/apis/apps/v1", map[string]string{"Accept": accept})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Accept %s: got status %d, want 200", accept, resp.StatusCode)
		}
		if got, want := resp.Header.Get("Content-Type"), "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"; got != want {
			t.Errorf("Accept %s: got Content-Type %q, want %q", accept, got, want)
		}
		var doc openapi_v3.Document
		if err := proto.Unmarshal(body(t, resp), &doc); err != nil {
			t.Fatalf("unmarshal v3 protobuf: %v", err)
		}
		j := v3JSON(t, s, "apis/apps/v1")
		want, err := openapi_v3.ParseDocument(j)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&doc, want) {
			t.Errorf("Accept %s: got a document that differs from the parsed JSON one", accept)
		}
	}
}

func TestNegotiationAndCaching(t *testing.T) {
	s := newSpec(t)
	srv := startServer(t, s)
	v2Etag := `"` + s.v2.etag + `"`
	apps := s.v3["apis/apps/v1"]
	appsURL := "/openapi/v3/apis/apps/v1?hash=" + apps.etag
	appsEtag := `"` + apps.etag + `"`
	const protoV2 = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

	tests := []struct {
		name        string
		path        string
		header      map[string]string
		wantStatus  int
		wantType    string
		wantEtag    string
		wantCache   string
		wantExpires bool
		wantLoc     string
	}{
		{name: "v2 default JSON", path: "/openapi/v2", wantStatus: 200, wantType: "application/json", wantEtag: v2Etag},
		{name: "v2 any", path: "/openapi/v2", header: map[string]string{"Accept": "*/*"}, wantStatus: 200, wantType: "application/json", wantEtag: v2Etag},
		{name: "v2 protobuf as client-go asks", path: "/openapi/v2", header: map[string]string{"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}, wantStatus: 200, wantType: protoV2, wantEtag: v2Etag},
		{name: "v2 protobuf preferred by q", path: "/openapi/v2", header: map[string]string{"Accept": "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf;q=0.9"}, wantStatus: 200, wantType: protoV2, wantEtag: v2Etag},
		{name: "v2 not acceptable", path: "/openapi/v2", header: map[string]string{"Accept": "text/html"}, wantStatus: 406},
		{name: "v2 if-none-match current", path: "/openapi/v2", header: map[string]string{"If-None-Match": v2Etag}, wantStatus: 304, wantEtag: v2Etag},
		{name: "v2 if-none-match stale", path: "/openapi/v2", header: map[string]string{"If-None-Match": `"0123"`}, wantStatus: 200, wantType: "application/json", wantEtag: v2Etag},
		{name: "v3 index", path: "/openapi/v3", wantStatus: 200, wantType: "application/json", wantEtag: `"` + s.v3Index.etag + `"`},
		{name: "v3 index trailing slash", path: "/openapi/v3/", wantStatus: 200, wantType: "application/json", wantEtag: `"` + s.v3Index.etag + `"`},
		{name: "v3 without hash", path: "/openapi/v3/apis/apps/v1", wantStatus: 200, wantType: "application/json", wantEtag: appsEtag},
		{name: "v3 current hash", path: appsURL, wantStatus: 200, wantType: "application/json", wantEtag: appsEtag, wantCache: "public, immutable", wantExpires: true},
		{name: "v3 current hash if-none-match", path: appsURL, header: map[string]string{"If-None-Match": appsEtag}, wantStatus: 304, wantEtag: appsEtag, wantCache: "public, immutable", wantExpires: true},
		{name: "v3 stale hash", path: "/openapi/v3/apis/apps/v1?hash=ABC", wantStatus: 301, wantLoc: appsURL},
		{name: "v3 unknown group version", path: "/openapi/v3/apis/batch/v1", wantStatus: 404},
		{name: "v3 not acceptable", path: appsURL, header: map[string]string{"Accept": "application/xml"}, wantStatus: 406},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := request(t, srv.URL+tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantType != "" {
				if got := resp.Header.Get("Content-Type"); got != tt.wantType {
					t.Errorf("Content-Type: got %q, want %q", got, tt.wantType)
				}
			}
			if tt.wantEtag != "" {
				if got := resp.Header.Get("Etag"); got != tt.wantEtag {
					t.Errorf("Etag: got %q, want %q", got, tt.wantEtag)
				}
			}
			if got := resp.Header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control: got %q, want %q", got, tt.wantCache)
			}
			if got := resp.Header.Get("Expires") != ""; got != tt.wantExpires {
				t.Errorf("Expires set: got %v, want %v", got, tt.wantExpires)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLoc {
				t.Errorf("Location: got %q, want %q", got, tt.wantLoc)
			}
			if tt.wantStatus == 200 && !slices.Contains(resp.Header.Values("Vary"), "Accept") {
				t.Errorf("Vary: got %q, want Accept", resp.Header.Values("Vary"))
			}
		})
	}

	// The index links every document with its current hash.
	resp := request(t, srv.URL+"/openapi/v3", nil)
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(body(t, resp), &index); err != nil {
		t.Fatalf("decode index: %v", err)
	}
	if got := index.Paths["apis/apps/v1"].ServerRelativeURL; got != appsURL {
		t.Errorf("index apis/apps/v1: got %q, want %q", got, appsURL)
	}
	if got, want := len(index.Paths), len(s.GroupVersions()); got != want {
		t.Errorf("index entries: got %d, want %d", got, want)
	}
}

func TestTypeConverter(t *testing.T) {
	s := newSpec(t)
	tc, err := s.TypeConverter()
	if err != nil {
		t.Fatalf("TypeConverter: %v", err)
	}
	again, err := s.TypeConverter()
	if err != nil || again != tc {
		t.Errorf("second TypeConverter: got %p, %v; want the first one %p", again, err, tc)
	}

	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "nginx:1.27",
					Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
				}}},
			},
		},
	}
	typed, err := tc.ObjectToTyped(deployment)
	if err != nil {
		t.Fatalf("ObjectToTyped(Deployment): %v", err)
	}
	set, err := typed.ToFieldSet()
	if err != nil {
		t.Fatalf("ToFieldSet: %v", err)
	}
	// containers is a list keyed by name, so the field set names the
	// container by its key, as managedFields do.
	for _, want := range []string{".spec.replicas", `.spec.template.spec.containers[name="web"].image`} {
		if !strings.Contains(set.String(), want) {
			t.Errorf("field set: got\n%s\nwant it to include %s", set, want)
		}
	}
	back, err := tc.TypedToObject(typed)
	if err != nil {
		t.Fatalf("TypedToObject: %v", err)
	}
	u, ok := back.(*unstructured.Unstructured)
	if !ok {
		t.Fatalf("TypedToObject: got %T, want *unstructured.Unstructured", back)
	}
	if got, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); got != 2 {
		t.Errorf("round trip spec.replicas: got %d, want 2", got)
	}

	// Every served kind has a schema.
	for _, k := range servedKinds() {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(k.gv.WithKind(k.kind))
		obj.SetName("x")
		if _, err := tc.ObjectToTyped(obj); err != nil {
			t.Errorf("ObjectToTyped(%s %s): %v", k.gv, k.kind, err)
		}
	}

	// A field of the wrong type is rejected with its path.
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web"},
		"spec":     map[string]any{"replicas": "three"},
	}}
	if _, err := tc.ObjectToTyped(bad); err == nil || !strings.Contains(err.Error(), ".spec.replicas") {
		t.Errorf("ObjectToTyped(replicas: \"three\"): got %v, want an error naming .spec.replicas", err)
	}
}

// BenchmarkTypeConverter builds the converter and reports the heap it
// keeps alive (retained-bytes) besides time per build: the number the
// README quotes for the server's memory budget.
func BenchmarkTypeConverter(b *testing.B) {
	s := newSpec(b)
	j := v2JSON(b, s)
	var before, after runtime.MemStats
	keep := make([]managedfields.TypeConverter, 0, b.N)
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		tc, err := newTypeConverter(j)
		if err != nil {
			b.Fatal(err)
		}
		keep = append(keep, tc)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(keep)), "retained-bytes/op")
	runtime.KeepAlive(keep)
}

func TestGzip(t *testing.T) {
	s := newSpec(t)
	srv := startServer(t, s)
	tests := []struct {
		name, path, accept, encoding string
		wantGzip                     bool
		want                         []byte
	}{
		{name: "v2 JSON gzipped", path: "/openapi/v2", encoding: "gzip", wantGzip: true, want: v2JSON(t, s)},
		{name: "v2 JSON gzip refused", path: "/openapi/v2", encoding: "gzip;q=0, identity", want: v2JSON(t, s)},
		{name: "v2 JSON identity", path: "/openapi/v2", encoding: "identity", want: v2JSON(t, s)},
		{name: "v3 JSON gzipped", path: "/openapi/v3/api/v1", encoding: "deflate, gzip;q=0.5", wantGzip: true, want: v3JSON(t, s, "api/v1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := request(t, srv.URL+tt.path, map[string]string{"Accept-Encoding": tt.encoding})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			got := body(t, resp)
			if gotGzip := resp.Header.Get("Content-Encoding") == "gzip"; gotGzip != tt.wantGzip {
				t.Fatalf("gzipped: got %v, want %v", gotGzip, tt.wantGzip)
			}
			if tt.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatalf("gzip reader: %v", err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("body: got %d bytes that differ from the document's %d", len(got), len(tt.want))
			}
		})
	}
	// The protobuf form, gzipped, still decodes to the same document.
	resp := request(t, srv.URL+"/openapi/v2", map[string]string{
		"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "Accept-Encoding": "gzip"})
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("gzip reader: %v", err)
	}
	pb, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(pb, &doc); err != nil {
		t.Errorf("gzipped protobuf: %v", err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate", true},
		{"deflate, GZIP", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"gzip;q=0.1", true},
		{"identity", false},
		{"x-gzip", false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q): got %v, want %v", tt.header, got, tt.want)
		}
	}
}
