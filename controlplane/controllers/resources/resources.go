// Package resources tells controllers which API resources the server
// serves, from discovery: their group/version/resource, kind, scope and
// verbs. The garbage collector watches every resource it can list, watch
// and delete; the namespace controller deletes every namespaced resource.
// A partial discovery failure (one group unavailable) still yields the
// resources that were discovered, with the error.
package resources

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Resource is one served resource in its preferred version.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
	Verbs      []string
}

// GVK of the resource's objects.
func (r Resource) GVK() schema.GroupVersionKind { return r.GVR.GroupVersion().WithKind(r.Kind) }

// Set is the discovered resources, looked up by resource or kind.
type Set struct {
	list   []Resource
	byKind map[schema.GroupKind]Resource
}

// Discover lists the server's preferred resources that support every verb
// in verbs (no subresources). When some groups failed, it returns what it
// found along with the error.
func Discover(d discovery.DiscoveryInterface, verbs ...string) (*Set, error) {
	lists, err := discovery.ServerPreferredResources(d)
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resources: %w", err)
	}
	s := &Set{byKind: map[schema.GroupKind]Resource{}}
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerbs(r, verbs) {
				continue
			}
			res := Resource{GVR: gv.WithResource(r.Name), Kind: r.Kind, Namespaced: r.Namespaced, Verbs: r.Verbs}
			s.list = append(s.list, res)
			s.byKind[res.GVK().GroupKind()] = res
		}
	}
	if err != nil {
		return s, fmt.Errorf("discover resources (partial): %w", err)
	}
	return s, nil
}

func hasVerbs(r metav1.APIResource, verbs []string) bool {
	for _, v := range verbs {
		if !slices.Contains(r.Verbs, v) {
			return false
		}
	}
	return true
}

// NewSet returns a Set of the given resources (for tests and static
// configurations).
func NewSet(rs ...Resource) *Set {
	s := &Set{byKind: map[schema.GroupKind]Resource{}}
	for _, r := range rs {
		s.list = append(s.list, r)
		s.byKind[r.GVK().GroupKind()] = r
	}
	return s
}

// List returns the resources.
func (s *Set) List() []Resource { return s.list }

// ErrUnknownKind is returned for a kind the server does not serve.
var ErrUnknownKind = errors.New("unknown kind")

// ForKind returns the resource serving apiVersion/kind (matched by group
// and kind: any served version of the group will do).
func (s *Set) ForKind(apiVersion, kind string) (Resource, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return Resource{}, fmt.Errorf("parse apiVersion %q: %w", apiVersion, err)
	}
	r, ok := s.byKind[schema.GroupKind{Group: gv.Group, Kind: kind}]
	if !ok {
		return Resource{}, fmt.Errorf("%w %s, %s", ErrUnknownKind, apiVersion, kind)
	}
	return r, nil
}
