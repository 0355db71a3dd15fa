package dataplane

import (
	"net/netip"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestServicePorts(t *testing.T) {
	local := v1.ServiceInternalTrafficPolicyLocal
	proxy := v1.LoadBalancerIPModeProxy
	tests := []struct {
		name        string
		svc         *v1.Service
		want        map[ServicePortName]*ServicePort
		wantIgnored int
	}{
		{
			name: "headless Service has no frontend",
			svc:  svc("ns", "a", v1.ClusterIPNone),
		},
		{
			name: "ExternalName is not proxied",
			svc: svc("ns", "a", "10.96.0.1", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeExternalName
			}),
		},
		{
			name: "IPv6-only Service is not proxied",
			svc:  svc("ns", "a", "fd00::1"),
			// "clusterIP fd00::1 is not IPv4" and "no IPv4 clusterIP".
			wantIgnored: 2,
		},
		{
			name: "ClusterIP with defaults",
			svc:  svc("ns", "a", "10.96.0.1"),
			want: map[ServicePortName]*ServicePort{
				spn("ns", "a", "http", v1.ProtocolTCP): {
					Name: spn("ns", "a", "http", v1.ProtocolTCP), Protocol: v1.ProtocolTCP, Port: 80,
					ClusterIPs: []netip.Addr{addr("10.96.0.1")},
				},
			},
		},
		{
			name: "dual-stack keeps the IPv4 ClusterIP only",
			svc: svc("ns", "a", "fd00::1", func(s *v1.Service) {
				s.Spec.ClusterIPs = []string{"fd00::1", "10.96.0.1"}
			}),
			want: map[ServicePortName]*ServicePort{
				spn("ns", "a", "http", v1.ProtocolTCP): {
					Name: spn("ns", "a", "http", v1.ProtocolTCP), Protocol: v1.ProtocolTCP, Port: 80,
					ClusterIPs: []netip.Addr{addr("10.96.0.1")},
				},
			},
			wantIgnored: 1,
		},
		{
			name: "LoadBalancer with NodePort, ingress, externalIPs, policies, affinity and an SCTP port",
			svc: svc("ns", "lb", "10.96.0.2", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.InternalTrafficPolicy = &local
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.ExternalIPs = []string{"192.0.2.7", "2001:db8::7", "192.0.2.7"}
				s.Spec.Ports = []v1.ServicePort{
					{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, NodePort: 30053},
					{Name: "sctp", Protocol: v1.ProtocolSCTP, Port: 99},
				}
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{
					{IP: "198.51.100.1"}, {Hostname: "lb.example"}, {IP: "198.51.100.2", IPMode: &proxy},
				}
			}),
			want: map[ServicePortName]*ServicePort{
				spn("ns", "lb", "dns", v1.ProtocolUDP): {
					Name: spn("ns", "lb", "dns", v1.ProtocolUDP), Protocol: v1.ProtocolUDP, Port: 53, NodePort: 30053,
					ClusterIPs:             []netip.Addr{addr("10.96.0.2")},
					ExternalIPs:            []netip.Addr{addr("192.0.2.7")},
					LoadBalancerIPs:        []netip.Addr{addr("198.51.100.1")},
					AffinityTimeoutSeconds: DefaultAffinityTimeoutSeconds,
					ExternalPolicyLocal:    true,
					InternalPolicyLocal:    true,
				},
			},
			// IPv6 external IP, proxy-mode ingress, SCTP port.
			wantIgnored: 3,
		},
		{
			name: "externalTrafficPolicy Local on a plain ClusterIP Service does not count",
			svc: svc("ns", "a", "10.96.0.1", func(s *v1.Service) {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
				s.Spec.Ports[0].Protocol = ""
			}),
			want: map[ServicePortName]*ServicePort{
				spn("ns", "a", "http", v1.ProtocolTCP): {
					Name: spn("ns", "a", "http", v1.ProtocolTCP), Protocol: v1.ProtocolTCP, Port: 80,
					ClusterIPs:             []netip.Addr{addr("10.96.0.1")},
					AffinityTimeoutSeconds: 60,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ignored := ServicePorts(tt.svc)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d ports %v, want %d", len(got), got, len(tt.want))
			}
			for name, want := range tt.want {
				if !reflect.DeepEqual(got[name], want) {
					t.Errorf("port %s: got %+v, want %+v", name, got[name], want)
				}
			}
			if len(ignored) != tt.wantIgnored {
				t.Errorf("got ignored %q, want %d entries", ignored, tt.wantIgnored)
			}
		})
	}
}

func TestServicePortPolicies(t *testing.T) {
	tests := []struct {
		name                     string
		sp                       ServicePort
		wantCluster, wantLocal   bool
		wantExternallyAccessible bool
	}{
		{"plain ClusterIP", ServicePort{}, true, false, false},
		{"internal Local", ServicePort{InternalPolicyLocal: true}, false, true, false},
		{"internal Local with NodePort", ServicePort{InternalPolicyLocal: true, NodePort: 30000}, true, true, true},
		{"external Local NodePort", ServicePort{ExternalPolicyLocal: true, NodePort: 30000}, true, true, true},
		{"external Local without external frontend", ServicePort{ExternalPolicyLocal: true}, true, false, false},
		{"external IP", ServicePort{ExternalIPs: []netip.Addr{addr("192.0.2.1")}}, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sp.UsesClusterEndpoints(); got != tt.wantCluster {
				t.Errorf("UsesClusterEndpoints: got %v, want %v", got, tt.wantCluster)
			}
			if got := tt.sp.UsesLocalEndpoints(); got != tt.wantLocal {
				t.Errorf("UsesLocalEndpoints: got %v, want %v", got, tt.wantLocal)
			}
			if got := tt.sp.ExternallyAccessible(); got != tt.wantExternallyAccessible {
				t.Errorf("ExternallyAccessible: got %v, want %v", got, tt.wantExternallyAccessible)
			}
		})
	}
}
