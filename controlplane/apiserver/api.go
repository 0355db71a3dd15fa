package apiserver

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// request is one resource request after routing.
type request struct {
	c         *gin.Context
	ctx       context.Context
	r         *resource
	namespace string
	name      string
	sub       string
	verb      string
	// watch is true for ?watch=1 and the legacy /watch/ paths.
	watch bool
}

// namespaceSubresources are the namespace subresources; any other segment
// after /namespaces/<name>/ is a resource in that namespace.
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

// serveAPI handles everything under /api and /apis.
func (s *Server) serveAPI(c *gin.Context) {
	c.Set(logKey, s.log)
	start := time.Now()
	p := strings.Trim(c.Request.URL.Path, "/")
	parts := strings.Split(p, "/")
	var gv schema.GroupVersion
	var rest []string
	switch {
	case parts[0] == "api":
		if len(parts) == 1 {
			s.serveCoreVersions(c)
			return
		}
		gv = schema.GroupVersion{Version: parts[1]}
		rest = parts[2:]
	case parts[0] == "apis":
		if len(parts) == 1 {
			s.serveGroups(c)
			return
		}
		if len(parts) == 2 {
			s.serveGroup(c, parts[1])
			return
		}
		gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
		rest = parts[3:]
	default:
		writeError(c, notFoundPath())
		return
	}
	if !s.resources.hasGV(gv) {
		writeError(c, notFoundPath())
		return
	}
	if len(rest) == 0 {
		s.serveResourceList(c, gv)
		return
	}
	req := &request{c: c, ctx: c.Request.Context()}
	if rest[0] == "watch" {
		req.watch = true
		rest = rest[1:]
		if len(rest) == 0 {
			writeError(c, notFoundPath())
			return
		}
	}
	namespaced := false
	if rest[0] == "namespaces" && len(rest) > 1 {
		if len(rest) > 2 && !namespaceSubresources[rest[2]] {
			req.namespace = rest[1]
			rest = rest[2:]
			namespaced = true
		}
	}
	r := s.resources.lookup(gv, rest[0])
	if r == nil || len(rest) > 3 || r.Namespaced != namespaced && !(r.Namespaced && len(rest) == 1) {
		writeError(c, notFoundPath())
		return
	}
	req.r = r
	if len(rest) > 1 {
		req.name = rest[1]
	}
	if len(rest) > 2 {
		req.sub = rest[2]
		if !r.HasSubresource(req.sub) {
			writeError(c, notFoundPath())
			return
		}
	}
	if req.name == "" && (req.namespace == "" && r.Namespaced) && c.Request.Method != http.MethodGet {
		// Only list and watch span namespaces.
		writeError(c, notFoundPath())
		return
	}
	if req.name != "" && (req.name == "." || req.name == "..") {
		writeError(c, badRequest("invalid name %q", req.name))
		return
	}
	if w := c.Query("watch"); w == "1" || w == "true" {
		req.watch = true
	}
	req.verb = verbOf(c.Request.Method, req)
	defer func() {
		if req.verb != "watch" {
			s.metrics.observe(req.verb, r.Name, req.sub, c.Writer.Status(), time.Since(start))
		} else {
			s.metrics.observe(req.verb, r.Name, req.sub, c.Writer.Status(), 0)
		}
	}()
	if req.verb == "" {
		writeError(c, methodNotSupported(r.gr(), strings.ToLower(c.Request.Method)))
		return
	}
	if req.sub == "" && !slices.Contains(r.Verbs, req.verb) {
		writeError(c, methodNotSupported(r.gr(), req.verb))
		return
	}
	s.dispatch(req)
}

func verbOf(method string, req *request) string {
	switch method {
	case http.MethodGet:
		switch {
		case req.watch:
			return "watch"
		case req.name == "":
			return "list"
		}
		return "get"
	case http.MethodPost:
		if req.name == "" {
			return "create"
		}
		if req.sub == "binding" {
			return "create"
		}
	case http.MethodPut:
		if req.name != "" {
			return "update"
		}
	case http.MethodPatch:
		if req.name != "" {
			return "patch"
		}
	case http.MethodDelete:
		if req.name == "" {
			return "deletecollection"
		}
		if req.sub == "" {
			return "delete"
		}
	}
	return ""
}

func (s *Server) dispatch(req *request) {
	var err error
	switch req.sub {
	case "":
		switch req.verb {
		case "get":
			err = s.get(req)
		case "list":
			err = s.list(req)
		case "watch":
			err = s.watch(req)
		case "create":
			err = s.create(req)
		case "update":
			err = s.update(req)
		case "patch":
			err = s.patch(req)
		case "delete":
			err = s.delete(req)
		case "deletecollection":
			err = s.deleteCollection(req)
		}
	case "status", "finalize":
		switch req.verb {
		case "get":
			err = s.get(req)
		case "update":
			err = s.update(req)
		case "patch":
			err = s.patch(req)
		default:
			err = methodNotSupported(req.r.gr(), req.verb)
		}
	case "scale":
		switch req.verb {
		case "get":
			err = s.getScale(req)
		case "update":
			err = s.updateScale(req)
		case "patch":
			err = s.patchScale(req)
		default:
			err = methodNotSupported(req.r.gr(), req.verb)
		}
	case "binding":
		if req.verb == "create" {
			err = s.bind(req)
		} else {
			err = methodNotSupported(req.r.gr(), req.verb)
		}
	default:
		err = notFoundPath()
	}
	if err != nil && !req.c.Writer.Written() {
		writeError(req.c, err)
	}
}

// groupResource and name for errors.
func (req *request) gr() schema.GroupResource { return req.r.gr() }

// dryRun reads the dryRun parameter: only "All" is valid.
func dryRun(c *gin.Context) (bool, error) {
	vals := c.QueryArray("dryRun")
	for _, v := range vals {
		if v != metav1.DryRunAll {
			return false, apierrors.NewBadRequest("dryRun may only be set to All, got " + v)
		}
	}
	return len(vals) > 0, nil
}
