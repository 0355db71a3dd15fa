package apiserver_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

type rawClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func newRawClient(t *testing.T, srv *apiservertest.Server) *rawClient {
	rt, err := rest.TransportFor(srv.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, base: srv.URL(), http: &http.Client{Transport: rt}}
}

func (c *rawClient) do(method, path, ctype string, body []byte, header ...string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// revision reads the store's revision through a list.
func (c *rawClient) revision() string {
	c.t.Helper()
	_, _, data := c.do("GET", "/api/v1/namespaces", "", nil)
	var l metav1.List
	if err := json.Unmarshal(data, &l); err != nil {
		c.t.Fatal(err)
	}
	return l.ResourceVersion
}

func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	srv := apiservertest.Start(t)
	c := newRawClient(t, srv)
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"` + strings.Repeat("a", 3<<20) + `"}}`
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		reason                          metav1.StatusReason
	}{
		{"malformed json", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1",`, 400, metav1.StatusReasonBadRequest},
		{"not an object", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `[1,2]`, 400, metav1.StatusReasonBadRequest},
		{"wrong field type", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":5}}`, 400, metav1.StatusReasonBadRequest},
		{"malformed yaml", "POST", "/api/v1/namespaces/default/configmaps", "application/yaml", "apiVersion: v1\nkind: [ConfigMap\n", 400, metav1.StatusReasonBadRequest},
		{"wrong kind", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}`, 400, metav1.StatusReasonBadRequest},
		{"empty body", "POST", "/api/v1/namespaces/default/configmaps", "application/json", ``, 400, metav1.StatusReasonBadRequest},
		{"too large", "POST", "/api/v1/namespaces/default/configmaps", "application/json", big, 413, metav1.StatusReasonRequestEntityTooLarge},
		{"unsupported content type", "POST", "/api/v1/namespaces/default/configmaps", "text/plain", `{}`, 415, metav1.StatusReasonUnsupportedMediaType},
		{"unsupported patch type", "PATCH", "/api/v1/namespaces/default/configmaps/x", "application/json", `{}`, 415, metav1.StatusReasonUnsupportedMediaType},
		{"unknown resource", "GET", "/api/v1/namespaces/default/widgets", "", ``, 404, metav1.StatusReasonNotFound},
		{"unknown group", "GET", "/apis/widgets.example.com/v1/widgets", "", ``, 404, metav1.StatusReasonNotFound},
		{"unknown path", "GET", "/nope", "", ``, 404, metav1.StatusReasonNotFound},
		{"unknown subresource", "GET", "/api/v1/namespaces/default/configmaps/x/status", "", ``, 404, metav1.StatusReasonNotFound},
		{"name with slash", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a/b"}}`, 422, metav1.StatusReasonInvalid},
		{"invalid name", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"UPPER"}}`, 422, metav1.StatusReasonInvalid},
		{"strict unknown field", "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"spec":{"foo":1}}`, 400, metav1.StatusReasonBadRequest},
		{"strict duplicate field", "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s","name":"t"}}`, 400, metav1.StatusReasonBadRequest},
		{"bad fieldValidation", "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Loose", "application/json", `{}`, 400, metav1.StatusReasonBadRequest},
		{"bad dryRun", "POST", "/api/v1/namespaces/default/configmaps?dryRun=Some", "application/json", `{}`, 400, metav1.StatusReasonBadRequest},
		{"bad json patch", "PATCH", "/api/v1/namespaces/default/configmaps/kube-root", "application/json-patch+json", `{"op":1}`, 400, metav1.StatusReasonBadRequest},
		{"bad merge patch", "PATCH", "/api/v1/namespaces/default/configmaps/kube-root", "application/merge-patch+json", `{"a":`, 400, metav1.StatusReasonBadRequest},
		{"namespace mismatch", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m","namespace":"kube-system"}}`, 400, metav1.StatusReasonBadRequest},
		{"bad limit", "GET", "/api/v1/namespaces/default/configmaps?limit=x", "", ``, 400, metav1.StatusReasonBadRequest},
		{"bad resourceVersion", "GET", "/api/v1/namespaces/default/configmaps?resourceVersion=x", "", ``, 400, metav1.StatusReasonBadRequest},
		{"match without version", "GET", "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact", "", ``, 422, metav1.StatusReasonInvalid},
		{"bad propagation policy", "DELETE", "/api/v1/namespaces/default/configmaps/x?propagationPolicy=Sometimes", "", ``, 422, metav1.StatusReasonInvalid},
		{"method not allowed", "POST", "/api/v1/namespaces/default/configmaps/x", "application/json", `{}`, 405, metav1.StatusReasonMethodNotAllowed},
		{"namespaced resource without namespace", "POST", "/api/v1/configmaps", "application/json", `{}`, 404, metav1.StatusReasonNotFound},
	}
	// Every request below must leave the store as it was.
	c.do("POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kube-root"}}`))
	before := c.revision()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := c.do(tc.method, tc.path, tc.ctype, []byte(tc.body))
			if code != tc.want {
				t.Fatalf("got %d %s, want %d", code, body, tc.want)
			}
			var st metav1.Status
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Reason != tc.reason || int(st.Code) != tc.want {
				t.Fatalf("got body %s (content type %s), want a Status with reason %s and code %d", body, hdr.Get("Content-Type"), tc.reason, tc.want)
			}
		})
	}
	if after := c.revision(); after != before {
		t.Fatalf("store revision: got %s after the bad requests, want %s", after, before)
	}
	// Warn (the default) accepts unknown fields with a warning.
	code, hdr, body := c.do("POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"spec":{"foo":1}}`))
	if code != 201 || !strings.Contains(hdr.Get("Warning"), `unknown field \"spec\"`) {
		t.Fatalf("unknown field with Warn: got %d %q %s, want 201 and a Warning header", code, hdr.Get("Warning"), body)
	}
}

func TestUnauthenticatedIs401(t *testing.T) {
	srv := apiservertest.Start(t)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	tests := []struct {
		path string
		want int
	}{
		{"/api/v1/namespaces", 401},
		{"/apis", 401},
		{"/metrics", 401},
		{"/openapi/v2", 401},
		{"/healthz", 200},
		{"/livez", 200},
		{"/readyz", 200},
		{"/version", 200},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("GET", srv.URL()+tc.path, nil)
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s without credentials: got %d %s, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func TestDiscoveryTablesAndMetrics(t *testing.T) {
	srv := apiservertest.Start(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(srv.RESTConfig())
	groups, resources, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	if fmt.Sprint(names) != "[ apps coordination.k8s.io discovery.k8s.io events.k8s.io]" {
		t.Errorf("groups: got %v, want core, apps, coordination, discovery, events", names)
	}
	found := map[string]bool{}
	for _, rl := range resources {
		for _, r := range rl.APIResources {
			found[rl.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, want := range []string{"v1/pods", "v1/pods/status", "v1/pods/binding", "v1/namespaces/finalize", "apps/v1/deployments/scale", "events.k8s.io/v1/events", "coordination.k8s.io/v1/leases"} {
		if !found[want] {
			t.Errorf("discovery: %s missing", want)
		}
	}
	v, err := dc.ServerVersion()
	if err != nil || v.GitVersion != "v1.37.2" {
		t.Errorf("version: got %v %v, want v1.37.2", v, err)
	}

	c := newRawClient(t, srv)
	code, hdr, body := c.do("GET", "/apis", "", nil, "Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
	if code != 200 || !strings.Contains(hdr.Get("Content-Type"), "as=APIGroupDiscoveryList") || !strings.Contains(string(body), `"deployments"`) {
		t.Errorf("aggregated discovery: got %d %s %.200s", code, hdr.Get("Content-Type"), body)
	}
	code, _, body = c.do("GET", "/api/v1/namespaces", "", nil, "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	var table metav1.Table
	if err := json.Unmarshal(body, &table); code != 200 || err != nil || table.Kind != "Table" || len(table.Rows) != 4 || len(table.ColumnDefinitions) == 0 {
		t.Errorf("table: got %d %v kind %q rows %d, want a Table of the 4 namespaces", code, err, table.Kind, len(table.Rows))
	}
	code, _, body = c.do("GET", "/api/v1/namespaces/default", "", nil, "Accept", "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
	if code != 200 || !strings.Contains(string(body), `"kind":"PartialObjectMetadata"`) {
		t.Errorf("partial metadata: got %d %s", code, body)
	}
	if code, hdr, body := c.do("GET", "/api/v1/namespaces", "", nil, "Accept", "application/vnd.kubernetes.protobuf"); code != 200 ||
		hdr.Get("Content-Type") != "application/vnd.kubernetes.protobuf" || !strings.HasPrefix(string(body), "k8s\x00") {
		t.Errorf("protobuf list: got %d %s %q", code, hdr.Get("Content-Type"), body)
	}
	// Tables are JSON only.
	if code, _, _ := c.do("GET", "/api/v1/namespaces", "", nil, "Accept", "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"); code != 406 {
		t.Errorf("protobuf Table: got %d, want 406", code)
	}
	code, _, body = c.do("GET", "/metrics", "", nil)
	for _, want := range []string{`apiserver_request_total{code="200",resource="namespaces",verb="list"}`, `apiserver_request_duration_seconds_bucket{code="200",resource="namespaces",verb="list",le="60"}`, "etcd_request_duration_seconds_bucket", "apiserver_registered_watchers"} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("metrics: %q missing", want)
		}
	}
}
