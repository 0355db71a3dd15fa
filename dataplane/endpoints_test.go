package dataplane

import (
	"slices"
	"testing"
)

func TestSelectEndpoints(t *testing.T) {
	ready := func(ip string, local bool) Endpoint {
		return Endpoint{IP: addr(ip), Port: 80, Ready: true, Serving: true, Local: local}
	}
	term := func(ip string, local, serving bool) Endpoint {
		return Endpoint{IP: addr(ip), Port: 80, Serving: serving, Terminating: true, Local: local}
	}
	notReady := func(ip string, local bool) Endpoint {
		return Endpoint{IP: addr(ip), Port: 80, Local: local}
	}
	tests := []struct {
		name                     string
		sp                       ServicePort
		eps                      []Endpoint
		wantCluster, wantLocal   []string
		wantInternal, wantExtern []string
	}{
		{
			name: "no endpoints",
		},
		{
			name:         "ready endpoints only; not-ready and terminating ones are left out",
			eps:          []Endpoint{ready("10.0.0.1", true), notReady("10.0.0.2", true), term("10.0.0.3", false, true), ready("10.0.0.4", false)},
			wantCluster:  []string{"10.0.0.1:80", "10.0.0.4:80"},
			wantLocal:    []string{"10.0.0.1:80"},
			wantInternal: []string{"10.0.0.1:80", "10.0.0.4:80"},
			wantExtern:   []string{"10.0.0.1:80", "10.0.0.4:80"},
		},
		{
			name:         "no ready endpoint: serving terminating ones are used, non-serving never",
			eps:          []Endpoint{term("10.0.0.1", false, true), term("10.0.0.2", true, false), notReady("10.0.0.3", false)},
			wantCluster:  []string{"10.0.0.1:80"},
			wantInternal: []string{"10.0.0.1:80"},
			wantExtern:   []string{"10.0.0.1:80"},
		},
		{
			name:         "local falls back on its own: remote ready, local only terminating",
			sp:           ServicePort{ExternalPolicyLocal: true, NodePort: 30080},
			eps:          []Endpoint{ready("10.0.0.1", false), term("10.0.0.2", true, true)},
			wantCluster:  []string{"10.0.0.1:80"},
			wantLocal:    []string{"10.0.0.2:80"},
			wantInternal: []string{"10.0.0.1:80"},
			wantExtern:   []string{"10.0.0.2:80"},
		},
		{
			name:        "internal Local without local endpoints has no internal endpoints",
			sp:          ServicePort{InternalPolicyLocal: true},
			eps:         []Endpoint{ready("10.0.0.1", false)},
			wantCluster: []string{"10.0.0.1:80"},
			wantExtern:  []string{"10.0.0.1:80"},
		},
		{
			name:         "internal Local, external Cluster",
			sp:           ServicePort{InternalPolicyLocal: true, NodePort: 30080},
			eps:          []Endpoint{ready("10.0.0.1", false), ready("10.0.0.2", true)},
			wantCluster:  []string{"10.0.0.1:80", "10.0.0.2:80"},
			wantLocal:    []string{"10.0.0.2:80"},
			wantInternal: []string{"10.0.0.2:80"},
			wantExtern:   []string{"10.0.0.1:80", "10.0.0.2:80"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster, local := SelectEndpoints(&tt.sp, tt.eps)
			str := func(eps []Endpoint) []string {
				var out []string
				for _, e := range eps {
					out = append(out, e.String())
				}
				return out
			}
			if got := str(cluster); !slices.Equal(got, tt.wantCluster) {
				t.Errorf("cluster: got %v, want %v", got, tt.wantCluster)
			}
			if got := str(local); !slices.Equal(got, tt.wantLocal) {
				t.Errorf("local: got %v, want %v", got, tt.wantLocal)
			}
			internal, external := tt.sp.PolicyEndpoints(cluster, local)
			if got := str(internal); !slices.Equal(got, tt.wantInternal) {
				t.Errorf("internal: got %v, want %v", got, tt.wantInternal)
			}
			if got := str(external); !slices.Equal(got, tt.wantExtern) {
				t.Errorf("external: got %v, want %v", got, tt.wantExtern)
			}
		})
	}
}
