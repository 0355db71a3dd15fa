// Command gen trims the upstream Kubernetes OpenAPI documents to the
// resources Skiff serves and writes them, compact and deterministic, to the
// openapi package's data directory, where they are embedded.
//
// It reads api/openapi-spec/swagger.json (v2) and api/openapi-spec/v3/*.json
// from the k8s.io/kubernetes module whose minor version matches the
// k8s.io/api requirement in go.mod (k8s.io/api v0.X.Y -> k8s.io/kubernetes
// v1.X.Y), found with `go mod download -json` outside the repository's
// module so go.mod and go.sum are not touched. It keeps the paths of the
// served resources and subresources and the discovery and /version paths,
// then every definition (v2) or component schema (v3) and v2 global
// parameter those paths reference, transitively. Deprecated /watch/ paths
// and CBOR media types, which Skiff does not serve, are dropped.
//
// Run it with `make openapi` from the repository root. It is not a
// go:generate step: it downloads k8s.io/kubernetes, which CI's
// verify-generated step must not do.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

// groupVersion is one served API group version: its path prefix and its
// resources with their served subresources.
type groupVersion struct {
	prefix    string // "/api/v1", "/apis/apps/v1"
	resources map[string][]string
}

// served lists what Skiff's API server serves. Keep it in step with
// controlplane/registry: the package's tests compare the two.
func served() []groupVersion {
	return []groupVersion{
		{prefix: "/api/v1", resources: map[string][]string{
			"namespaces":      {"status", "finalize"},
			"nodes":           {"status"},
			"pods":            {"status", "binding"},
			"services":        {"status"},
			"endpoints":       nil,
			"configmaps":      nil,
			"secrets":         nil,
			"serviceaccounts": nil,
			"events":          nil,
		}},
		{prefix: "/apis/apps/v1", resources: map[string][]string{
			"deployments": {"status", "scale"},
			"replicasets": {"status", "scale"},
		}},
		{prefix: "/apis/discovery.k8s.io/v1", resources: map[string][]string{
			"endpointslices": nil,
		}},
		{prefix: "/apis/events.k8s.io/v1", resources: map[string][]string{
			"events": nil,
		}},
		{prefix: "/apis/coordination.k8s.io/v1", resources: map[string][]string{
			"leases": nil,
		}},
	}
}

// keepPath reports whether Skiff serves the upstream path p.
func keepPath(gvs []groupVersion, p string) bool {
	switch p {
	case "/api/", "/apis/", "/version/":
		return true
	}
	for _, gv := range gvs {
		// The group document: /apis/apps/.
		if group := path.Dir(gv.prefix); group != "/api" && p == group+"/" {
			return true
		}
		rest, ok := strings.CutPrefix(p, gv.prefix+"/")
		if !ok {
			continue
		}
		if rest == "" { // the group version's resource list
			return true
		}
		segs := strings.Split(rest, "/")
		if segs[0] == "watch" {
			return false
		}
		if len(segs) > 2 && segs[0] == "namespaces" && segs[1] == "{namespace}" {
			segs = segs[2:]
		}
		subs, ok := gv.resources[segs[0]]
		if !ok {
			return false
		}
		switch len(segs) {
		case 1:
			return true
		case 2:
			return segs[1] == "{name}"
		case 3:
			return segs[1] == "{name}" && slices.Contains(subs, segs[2])
		}
		return false
	}
	return false
}

// v3Name maps an upstream v3 file name ("apis__apps__v1_openapi.json") to
// its discovery path ("apis/apps/v1").
func v3Name(file string) (string, bool) {
	base, ok := strings.CutSuffix(file, "_openapi.json")
	if !ok {
		return "", false
	}
	return strings.ReplaceAll(base, "__", "/"), true
}

// keepV3 reports whether the v3 document for discovery path name is
// served.
func keepV3(gvs []groupVersion, name string) bool {
	switch name {
	case "api", "apis", "version":
		return true
	}
	for _, gv := range gvs {
		gvName := strings.TrimPrefix(gv.prefix, "/")
		if name == gvName {
			return true
		}
		if group := path.Dir(gvName); group != "api" && name == group {
			return true
		}
	}
	return false
}

func main() {
	src := flag.String("src", "", "k8s.io/kubernetes source tree (default: the module matching go.mod's k8s.io/api, from the module cache)")
	out := flag.String("out", "controlplane/apiserver/openapi/data", "output directory")
	gomod := flag.String("gomod", "go.mod", "go.mod whose k8s.io/api version picks the k8s.io/kubernetes version")
	flag.Parse()
	if err := run(*src, *out, *gomod); err != nil {
		fmt.Fprintf(os.Stderr, "openapi gen: %v\n", err)
		os.Exit(1)
	}
}

func run(src, out, gomod string) error {
	version, err := kubernetesVersion(gomod)
	if err != nil {
		return err
	}
	if src == "" {
		if src, err = moduleDir("k8s.io/kubernetes@" + version); err != nil {
			return err
		}
	}
	specDir := filepath.Join(src, "api", "openapi-spec")
	gvs := served()

	if err := os.RemoveAll(filepath.Join(out, "v3")); err != nil {
		return fmt.Errorf("clean output: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(out, "v3"), 0o755); err != nil {
		return fmt.Errorf("create output: %w", err)
	}

	v2, err := readJSON(filepath.Join(specDir, "swagger.json"))
	if err != nil {
		return err
	}
	if err := trim(v2, gvs, "#/definitions/", "definitions"); err != nil {
		return fmt.Errorf("trim swagger.json: %w", err)
	}
	v2JSON, err := encode(v2)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "v2.json"), v2JSON, 0o644); err != nil {
		return fmt.Errorf("write v2.json: %w", err)
	}
	doc, err := openapi_v2.ParseDocument(v2JSON)
	if err != nil {
		return fmt.Errorf("parse trimmed v2 for protobuf: %w", err)
	}
	pb, err := proto.MarshalOptions{Deterministic: true}.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode v2 protobuf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "v2.pb"), pb, 0o644); err != nil {
		return fmt.Errorf("write v2.pb: %w", err)
	}

	files, err := os.ReadDir(filepath.Join(specDir, "v3"))
	if err != nil {
		return fmt.Errorf("read v3 directory: %w", err)
	}
	var written []string
	for _, f := range files {
		name, ok := v3Name(f.Name())
		if !ok || !keepV3(gvs, name) {
			continue
		}
		d, err := readJSON(filepath.Join(specDir, "v3", f.Name()))
		if err != nil {
			return err
		}
		if err := trim(d, gvs, "#/components/schemas/", "components", "schemas"); err != nil {
			return fmt.Errorf("trim %s: %w", f.Name(), err)
		}
		data, err := encode(d)
		if err != nil {
			return err
		}
		file := strings.ReplaceAll(name, "/", "__") + ".json"
		if err := os.WriteFile(filepath.Join(out, "v3", file), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		written = append(written, name)
	}
	want := 3 // api, apis, version
	for _, gv := range gvs {
		want++ // the group version
		if path.Dir(gv.prefix) != "/api" {
			want++ // its group
		}
	}
	if len(written) != want {
		return fmt.Errorf("wrote %d v3 documents (%s), want %d: is the source tree complete?", len(written), strings.Join(written, ", "), want)
	}
	return os.WriteFile(filepath.Join(out, "SOURCE"), []byte("k8s.io/kubernetes "+version+" api/openapi-spec\n"), 0o644)
}

// trim keeps the served paths of doc and the schemas they reference:
// schemasAt is the path of the schema map in doc ("definitions", or
// "components" "schemas"), refPrefix the $ref prefix naming its entries.
// For v2 it also keeps only the referenced global parameters.
func trim(doc map[string]any, gvs []groupVersion, refPrefix string, schemasAt ...string) error {
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return errors.New("no paths")
	}
	for p := range paths {
		if !keepPath(gvs, p) {
			delete(paths, p)
		}
	}
	if len(paths) == 0 {
		return errors.New("no served paths left")
	}
	dropMedia(doc)

	schemas := doc
	for _, k := range schemasAt {
		next, ok := schemas[k].(map[string]any)
		if !ok {
			return fmt.Errorf("no %s", strings.Join(schemasAt, "."))
		}
		schemas = next
	}
	params, _ := doc["parameters"].(map[string]any)

	keepSchemas := map[string]bool{}
	keepParams := map[string]bool{}
	var queue []string
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if name, ok := strings.CutPrefix(ref, refPrefix); ok && !keepSchemas[name] {
					keepSchemas[name] = true
					queue = append(queue, name)
				}
				if name, ok := strings.CutPrefix(ref, "#/parameters/"); ok && !keepParams[name] {
					keepParams[name] = true
					visit(params[name])
				}
			}
			for _, x := range v {
				visit(x)
			}
		case []any:
			for _, x := range v {
				visit(x)
			}
		}
	}
	visit(paths)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		s, ok := schemas[name]
		if !ok {
			return fmt.Errorf("dangling reference to %s%s", refPrefix, name)
		}
		visit(s)
	}
	for name := range schemas {
		if !keepSchemas[name] {
			delete(schemas, name)
		}
	}
	for name := range params {
		if !keepParams[name] {
			delete(params, name)
		}
	}
	return nil
}

// dropMedia removes the media types Skiff does not serve (CBOR) from v2
// consumes/produces lists and v3 content maps.
func dropMedia(v any) {
	unserved := func(mt string) bool { return strings.Contains(mt, "cbor") }
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch k {
			case "consumes", "produces":
				if list, ok := x.([]any); ok {
					v[k] = slices.DeleteFunc(list, func(e any) bool {
						s, _ := e.(string)
						return unserved(s)
					})
					continue
				}
			case "content":
				if m, ok := x.(map[string]any); ok {
					for mt := range m {
						if unserved(mt) {
							delete(m, mt)
						}
					}
				}
			}
			dropMedia(x)
		}
	case []any:
		for _, x := range v {
			dropMedia(x)
		}
	}
}

func readJSON(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return doc, nil
}

// encode writes doc as compact JSON with sorted keys and without HTML
// escaping, so the output is deterministic and the descriptions readable.
func encode(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return buf.Bytes(), nil
}

// kubernetesVersion derives the k8s.io/kubernetes version from go.mod's
// k8s.io/api requirement.
func kubernetesVersion(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", fmt.Errorf("open go.mod: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == "k8s.io/api" {
			v, ok := strings.CutPrefix(fields[1], "v0.")
			if !ok {
				return "", fmt.Errorf("k8s.io/api version %s is not v0.X.Y", fields[1])
			}
			return "v1." + v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	return "", errors.New("go.mod does not require k8s.io/api")
}

// moduleDir downloads mod (path@version) into the module cache and returns
// its directory. It runs outside the repository's module so that go.mod and
// go.sum stay as they are.
func moduleDir(mod string) (string, error) {
	tmp, err := os.MkdirTemp("", "openapi-gen-")
	if err != nil {
		return "", fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w: %s%s", mod, err, stderr.String(), outb)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(outb, &info); err != nil {
		return "", fmt.Errorf("parse go mod download output: %w", err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	return info.Dir, nil
}
