package main

import "testing"

func TestKeepPath(t *testing.T) {
	gvs := served()
	tests := []struct {
		path string
		want bool
	}{
		{"/api/", true},
		{"/apis/", true},
		{"/version/", true},
		{"/api/v1/", true},
		{"/apis/apps/", true},
		{"/apis/apps/v1/", true},
		{"/apis/batch/", false},
		{"/apis/batch/v1/jobs", false},
		{"/api/v1/pods", true},
		{"/api/v1/namespaces/{namespace}/pods", true},
		{"/api/v1/namespaces/{namespace}/pods/{name}", true},
		{"/api/v1/namespaces/{namespace}/pods/{name}/status", true},
		{"/api/v1/namespaces/{namespace}/pods/{name}/binding", true},
		{"/api/v1/namespaces/{namespace}/pods/{name}/log", false},
		{"/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}", false},
		{"/api/v1/namespaces/{namespace}/bindings", false},
		{"/api/v1/namespaces", true},
		{"/api/v1/namespaces/{name}", true},
		{"/api/v1/namespaces/{name}/finalize", true},
		{"/api/v1/namespaces/{name}/status", true},
		{"/api/v1/nodes/{name}/proxy", false},
		{"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", false},
		{"/api/v1/watch/pods", false},
		{"/api/v1/watch/namespaces/{namespace}/pods/{name}", false},
		{"/api/v1/persistentvolumes", false},
		{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", true},
		{"/apis/apps/v1/namespaces/{namespace}/statefulsets", false},
		{"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", true},
		{"/apis/coordination.k8s.io/v1beta1/namespaces/{namespace}/leases", false},
		{"/apis/events.k8s.io/v1/events", true},
	}
	for _, tt := range tests {
		if got := keepPath(gvs, tt.path); got != tt.want {
			t.Errorf("keepPath(%q): got %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestKeepV3(t *testing.T) {
	gvs := served()
	tests := []struct {
		file string
		want bool
	}{
		{"api_openapi.json", true},
		{"api__v1_openapi.json", true},
		{"apis_openapi.json", true},
		{"apis__apps_openapi.json", true},
		{"apis__apps__v1_openapi.json", true},
		{"apis__discovery.k8s.io__v1_openapi.json", true},
		{"apis__coordination.k8s.io__v1beta1_openapi.json", false},
		{"apis__batch__v1_openapi.json", false},
		{"version_openapi.json", true},
		{"logs_openapi.json", false},
		{"openid__v1__jwks_openapi.json", false},
	}
	for _, tt := range tests {
		name, ok := v3Name(tt.file)
		if !ok {
			t.Fatalf("v3Name(%q): got not ok", tt.file)
		}
		if got := keepV3(gvs, name); got != tt.want {
			t.Errorf("keepV3(%q): got %v, want %v", name, got, tt.want)
		}
	}
}

func TestTrim(t *testing.T) {
	doc := map[string]any{
		"paths": map[string]any{
			"/api/v1/pods": map[string]any{
				"get": map[string]any{
					"produces":   []any{"application/json", "application/cbor"},
					"parameters": []any{map[string]any{"$ref": "#/parameters/limit"}},
					"responses":  map[string]any{"200": map[string]any{"schema": map[string]any{"$ref": "#/definitions/PodList"}}},
				},
			},
			"/api/v1/persistentvolumes": map[string]any{
				"get": map[string]any{"responses": map[string]any{"200": map[string]any{"schema": map[string]any{"$ref": "#/definitions/PVList"}}}},
			},
		},
		"parameters": map[string]any{
			"limit": map[string]any{"name": "limit"},
			"other": map[string]any{"name": "other"},
		},
		"definitions": map[string]any{
			"PodList": map[string]any{"properties": map[string]any{"items": map[string]any{"items": map[string]any{"$ref": "#/definitions/Pod"}}}},
			"Pod":     map[string]any{"type": "object"},
			"PVList":  map[string]any{"type": "object"},
		},
	}
	if err := trim(doc, served(), "#/definitions/", "definitions"); err != nil {
		t.Fatalf("trim: %v", err)
	}
	defs := doc["definitions"].(map[string]any)
	if _, ok := defs["Pod"]; !ok || len(defs) != 2 {
		t.Errorf("definitions: got %v, want PodList and Pod", keys(defs))
	}
	params := doc["parameters"].(map[string]any)
	if _, ok := params["limit"]; !ok || len(params) != 1 {
		t.Errorf("parameters: got %v, want limit", keys(params))
	}
	paths := doc["paths"].(map[string]any)
	if len(paths) != 1 {
		t.Errorf("paths: got %v, want /api/v1/pods", keys(paths))
	}
	produces := paths["/api/v1/pods"].(map[string]any)["get"].(map[string]any)["produces"].([]any)
	if len(produces) != 1 || produces[0] != "application/json" {
		t.Errorf("produces: got %v, want [application/json]", produces)
	}

	dangling := map[string]any{
		"paths":       map[string]any{"/api/v1/pods": map[string]any{"$ref": "#/definitions/Missing"}},
		"definitions": map[string]any{},
	}
	if err := trim(dangling, served(), "#/definitions/", "definitions"); err == nil {
		t.Errorf("trim with a dangling reference: got no error, want one")
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
