package apiserver

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	skiffversion "github.com/skiff-project/skiff/tools/skiff/version"
)

const aggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func (s *Server) version(c *gin.Context) {
	v := skiffversion.KubernetesVersion
	info := version.Info{
		Major: "1", Minor: minorOf(v), GitVersion: v, GitCommit: skiffversion.GitCommit(), GitTreeState: "clean",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	writeJSON(c, http.StatusOK, info)
}

// minorOf returns the minor version of "v1.37.2".
func minorOf(v string) string {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "v%d.%d.%d", &major, &minor, &patch); err != nil {
		return ""
	}
	return strconv.Itoa(minor)
}

func (s *Server) serverAddresses(c *gin.Context) []metav1.ServerAddressByClientCIDR {
	host := c.Request.Host
	if host == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, strconv.Itoa(s.cfg.SecurePort))
	}
	return []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: host}}
}

// serveCoreVersions answers /api.
func (s *Server) serveCoreVersions(c *gin.Context) {
	if c.Request.Method != http.MethodGet {
		writeError(c, methodNotSupported(schema.GroupResource{}, c.Request.Method))
		return
	}
	accept, err := negotiate(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if accept == acceptDiscoveryAggregated {
		s.writeAggregated(c, true)
		return
	}
	writeJSON(c, http.StatusOK, &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: s.serverAddresses(c),
	})
}

// groups returns the served groups (not core) in discovery order.
func (s *Server) groups() []metav1.APIGroup {
	var out []metav1.APIGroup
	idx := map[string]int{}
	for _, gv := range s.resources.gvs {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		if i, ok := idx[gv.Group]; ok {
			out[i].Versions = append(out[i].Versions, v)
			continue
		}
		idx[gv.Group] = len(out)
		out = append(out, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	return out
}

// serveGroups answers /apis.
func (s *Server) serveGroups(c *gin.Context) {
	accept, err := negotiate(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if accept == acceptDiscoveryAggregated {
		s.writeAggregated(c, false)
		return
	}
	gs := s.groups()
	for i := range gs {
		gs[i].ServerAddressByClientCIDRs = s.serverAddresses(c)
	}
	writeJSON(c, http.StatusOK, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: gs})
}

// serveGroup answers /apis/<group>.
func (s *Server) serveGroup(c *gin.Context, group string) {
	for _, g := range s.groups() {
		if g.Name == group {
			g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
			writeJSON(c, http.StatusOK, &g)
			return
		}
	}
	writeError(c, notFoundPath())
}

// subresourceVerbs are the verbs of each subresource.
var subresourceVerbs = map[string][]string{
	"status":   {"get", "patch", "update"},
	"scale":    {"get", "patch", "update"},
	"binding":  {"create"},
	"finalize": {"update"},
}

// serveResourceList answers /api/v1 and /apis/<group>/<version>.
func (s *Server) serveResourceList(c *gin.Context, gv schema.GroupVersion) {
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, r := range s.resources.resourcesOf(gv) {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Name, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: slices.Clone(r.Verbs), ShortNames: r.ShortNames, Categories: r.Categories,
		})
		for _, sub := range r.Subresources {
			ar := metav1.APIResource{Name: r.Name + "/" + sub, Namespaced: r.Namespaced, Kind: r.Kind, Verbs: subresourceVerbs[sub]}
			switch sub {
			case "scale":
				ar.Group, ar.Version, ar.Kind = autoscalingv1.GroupName, "v1", "Scale"
			case "binding":
				ar.Kind = "Binding"
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	writeJSON(c, http.StatusOK, list)
}

// writeAggregated answers the aggregated discovery kubectl asks for: the
// core group for /api, the others for /apis.
func (s *Server) writeAggregated(c *gin.Context, core bool) {
	list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	byGroup := map[string]int{}
	for _, gv := range s.resources.gvs {
		if (gv.Group == "") != core {
			continue
		}
		i, ok := byGroup[gv.Group]
		if !ok {
			i = len(list.Items)
			byGroup[gv.Group] = i
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}})
		}
		vd := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range s.resources.resourcesOf(gv) {
			scope := apidiscoveryv2.ScopeCluster
			if r.Namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource: r.Name, SingularResource: r.SingularName, Scope: scope,
				ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
				Verbs:        slices.Clone(r.Verbs), ShortNames: r.ShortNames, Categories: r.Categories,
			}
			for _, sub := range r.Subresources {
				sd := apidiscoveryv2.APISubresourceDiscovery{Subresource: sub, Verbs: subresourceVerbs[sub],
					ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind}}
				switch sub {
				case "scale":
					sd.ResponseKind = &metav1.GroupVersionKind{Group: autoscalingv1.GroupName, Version: "v1", Kind: "Scale"}
				case "binding":
					sd.ResponseKind = &metav1.GroupVersionKind{Version: "v1", Kind: "Binding"}
				}
				rd.Subresources = append(rd.Subresources, sd)
			}
			vd.Resources = append(vd.Resources, rd)
		}
		list.Items[i].Versions = append(list.Items[i].Versions, vd)
	}
	data, err := json.Marshal(list)
	if err != nil {
		writeError(c, internalError(err))
		return
	}
	c.Header("Content-Type", aggregatedContentType)
	c.Header("Vary", "Accept")
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(data)
}
