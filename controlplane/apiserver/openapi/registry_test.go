package openapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/skiff-project/skiff/controlplane/registry"
)

// TestMatchesRegistry checks the embedded documents against the catalogue
// the API server serves: every resource and subresource has its paths,
// there is no path for anything else, and each path's operations are the
// resource's verbs. kubectl trusts the documents (fieldValidation, explain,
// the verbs it may use), so a mismatch is a client-visible bug.
func TestMatchesRegistry(t *testing.T) {
	s := newSpec(t)
	var v2 v2Doc
	if err := json.Unmarshal(v2JSON(t, s), &v2); err != nil {
		t.Fatalf("decode v2: %v", err)
	}
	// Operations each path must have, derived from the catalogue.
	want := map[string][]string{}
	add := func(path string, ops ...string) {
		want[path] = append(want[path], ops...)
	}
	for _, r := range registry.Resources() {
		base := "/" + gvPath(r.GroupVersion) + "/"
		has := func(verb string) bool { return slices.Contains(r.Verbs, verb) }
		list, item := base+r.Name, base+r.Name+"/{name}"
		if r.Namespaced {
			add(list) // the all-namespaces list
			if has("list") {
				want[list] = append(want[list], "get")
			}
			list = base + "namespaces/{namespace}/" + r.Name
			item = base + "namespaces/{namespace}/" + r.Name + "/{name}"
		}
		add(list)
		add(item)
		for verb, op := range map[string]string{"list": "get", "create": "post", "deletecollection": "delete"} {
			if has(verb) {
				add(list, op)
			}
		}
		for verb, op := range map[string]string{"get": "get", "update": "put", "patch": "patch", "delete": "delete"} {
			if has(verb) {
				add(item, op)
			}
		}
		for _, sub := range r.Subresources {
			add(item + "/" + sub)
		}
	}
	for _, discovery := range []string{"/api/", "/apis/", "/version/"} {
		add(discovery)
	}
	for p := range v2.Paths {
		if _, ok := want[p]; ok {
			continue
		}
		if p == "/api/v1/" || isGroupPath(p) {
			continue
		}
		t.Errorf("path %s: in the document, not served", p)
	}
	for p, ops := range want {
		got, ok := v2.Paths[p]
		if !ok {
			t.Errorf("path %s: served, not in the document", p)
			continue
		}
		for _, op := range ops {
			if _, ok := got[op]; !ok {
				t.Errorf("path %s: got no %s operation, want one", p, op)
			}
		}
		// No operation the catalogue does not list (subresources and
		// paths without listed operations are not checked).
		if len(ops) == 0 {
			continue
		}
		for op := range got {
			if op != "parameters" && !slices.Contains(ops, op) {
				t.Errorf("path %s: got a %s operation the server does not serve", p, op)
			}
		}
	}
}

// isGroupPath reports whether p is a group or group version discovery
// path (/apis/apps/, /apis/apps/v1/).
func isGroupPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/apis/")
	if !ok || !strings.HasSuffix(rest, "/") || rest == "/" {
		return false
	}
	return strings.Count(rest, "/") <= 2
}
