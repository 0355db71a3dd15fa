package apiserver_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
)

// mutations replaces the value at every path of obj, one at a time, with
// values of the wrong type, and returns the resulting documents.
func mutations(obj map[string]any) []string {
	replacements := []any{nil, int64(0), int64(-1), "", "x", true, []any{}, map[string]any{}, []any{nil}, 1e300}
	var out []string
	var walk func(v any, set func(any))
	walk = func(v any, set func(any)) {
		switch t := v.(type) {
		case map[string]any:
			for k, child := range t {
				walk(child, func(nv any) { t[k] = nv })
			}
		case []any:
			for i, child := range t {
				walk(child, func(nv any) { t[i] = nv })
			}
		}
		for _, r := range replacements {
			set(r)
			data, _ := json.Marshal(obj)
			out = append(out, string(data))
		}
		set(v)
	}
	walk(obj, func(any) {})
	return out
}

// TestNoClientInputIsAServerError sends every served resource's manifest
// with each field replaced by values of the wrong type, as create, update
// and patch: the server answers each with a client error or success,
// never a 5xx.
func TestNoClientInputIsAServerError(t *testing.T) {
	if testing.Short() {
		t.Skip("sends thousands of requests")
	}
	srv := apiservertest.Start(t)
	c := newRawClient(t, srv)
	for _, m := range manifests {
		if m.gvr.Resource == "namespaces" {
			continue
		}
		t.Run(m.gvr.Resource+"."+m.gvr.Group, func(t *testing.T) {
			base := "/api/" + m.gvr.Version
			if m.gvr.Group != "" {
				base = "/apis/" + m.gvr.Group + "/" + m.gvr.Version
			}
			if m.namespaced {
				base += "/namespaces/default"
			}
			base += "/" + m.gvr.Resource
			orig, _ := json.Marshal(m.obj)
			var obj map[string]any
			_ = json.Unmarshal(orig, &obj)
			name := obj["metadata"].(map[string]any)["name"].(string)
			// A stored object for updates and patches to work on.
			if code, _, body := c.do("POST", base, "application/json", orig); code != 201 {
				t.Fatalf("create: got %d %s", code, body)
			}
			var fresh map[string]any
			_ = json.Unmarshal(orig, &fresh)
			for _, doc := range mutations(fresh) {
				for _, req := range []struct{ method, path, ctype string }{
					{"POST", base, "application/json"},
					{"PUT", base + "/" + name, "application/json"},
					{"PATCH", base + "/" + name, "application/merge-patch+json"},
					{"PATCH", base + "/" + name, "application/strategic-merge-patch+json"},
					{"PATCH", base + "/" + name + "?fieldManager=fuzz&force=true", "application/apply-patch+yaml"},
				} {
					code, _, body := c.do(req.method, req.path, req.ctype, []byte(doc))
					if code >= 500 {
						t.Fatalf("%s %s with %s: got %d %s, want a client error", req.method, req.path, doc, code, body)
					}
					if code == 201 && req.method == "POST" {
						// Created under another name (mutated metadata): remove it.
						var created struct {
							Metadata struct{ Name string } `json:"metadata"`
						}
						_ = json.Unmarshal(body, &created)
						if created.Metadata.Name != "" && created.Metadata.Name != name && !strings.Contains(created.Metadata.Name, "/") {
							c.do("DELETE", base+"/"+created.Metadata.Name+"?gracePeriodSeconds=0", "", nil)
						}
					}
				}
			}
		})
	}
}
