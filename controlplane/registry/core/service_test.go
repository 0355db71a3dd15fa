package core

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func newService(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	ServiceStrategy{}.Default(s)
	ServiceStrategy{}.PrepareForCreate(context.Background(), s)
	return s
}

func TestServiceDefaults(t *testing.T) {
	cluster := newService()
	nodePort := newService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })
	lb := newService(func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ClusterIP = "10.96.0.10"
	})
	affinity := newService(func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP })
	ext := newService(func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "example.com"
	})
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"type", cluster.Spec.Type, corev1.ServiceTypeClusterIP},
		{"sessionAffinity", cluster.Spec.SessionAffinity, corev1.ServiceAffinityNone},
		{"protocol", cluster.Spec.Ports[0].Protocol, corev1.ProtocolTCP},
		{"targetPort", cluster.Spec.Ports[0].TargetPort, intstr.FromInt32(80)},
		{"internalTrafficPolicy", *cluster.Spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster},
		{"no externalTrafficPolicy for ClusterIP", cluster.Spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicy("")},
		{"ipFamilyPolicy", *cluster.Spec.IPFamilyPolicy, corev1.IPFamilyPolicySingleStack},
		{"ipFamilies", cluster.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}},
		{"externalTrafficPolicy for NodePort", nodePort.Spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster},
		{"allocateLoadBalancerNodePorts", *lb.Spec.AllocateLoadBalancerNodePorts, true},
		{"clusterIPs from clusterIP", lb.Spec.ClusterIPs, []string{"10.96.0.10"}},
		{"ClientIP timeout", *affinity.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds, int32(10800)},
		{"ExternalName has no families", ext.Spec.IPFamilies, []corev1.IPFamily(nil)},
		{"ExternalName has no internal policy", ext.Spec.InternalTrafficPolicy, (*corev1.ServiceInternalTrafficPolicy)(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !apiequality.Semantic.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		want   []wantErr
	}{
		{"valid", func(*corev1.Service) {}, nil},
		{"name must be a DNS label", func(s *corev1.Service) { s.Name = "web.app" }, []wantErr{inv("metadata.name")}},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, []wantErr{req("spec.ports")}},
		{"headless without ports", func(s *corev1.Service) { s.Spec.Ports = nil; s.Spec.ClusterIP = "None" }, nil},
		{"port range", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []wantErr{inv("spec.ports[0].port"), inv("spec.ports[0].targetPort")}},
		{"names required when several", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Port: 81}}
		}, []wantErr{req("spec.ports[1].name")}},
		{"duplicate names and ports", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "a", Port: 80}}
		}, []wantErr{dup("spec.ports[1].name"), dup("spec.ports[1]")}},
		{"protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "HTTP" }, []wantErr{notSup("spec.ports[0].protocol")}},
		{"target port name", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("Not_A_Name") }, []wantErr{inv("spec.ports[0].targetPort")}},
		{"type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, []wantErr{notSup("spec.type")}},
		{"nodePort on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }, []wantErr{forbidden("spec.ports[0].nodePort")}},
		{"nodePort range", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 70000
		}, []wantErr{inv("spec.ports[0].nodePort")}},
		{"externalTrafficPolicy on ClusterIP", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
			[]wantErr{inv("spec.externalTrafficPolicy")}},
		{"sessionAffinity", func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }, []wantErr{notSup("spec.sessionAffinity")}},
		{"affinity config dropped for None", func(s *corev1.Service) {
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
		}, nil},
		{"affinity timeout", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			timeout := int32(0)
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
		}, []wantErr{inv("spec.sessionAffinityConfig.clientIP.timeoutSeconds")}},
		{"bad cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300"; s.Spec.ClusterIPs = []string{"10.96.0.300"} },
			[]wantErr{inv("spec.clusterIPs[0]")}},
		{"clusterIPs mismatch", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.1"; s.Spec.ClusterIPs = []string{"10.96.0.2"} },
			[]wantErr{inv("spec.clusterIPs")}},
		{"selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"a": "b c"} }, []wantErr{inv("spec.selector")}},
		{"headless NodePort", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "None"
		}, []wantErr{inv("spec.clusterIPs[0]")}},
		{"external IP", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"127.0.0.1"} }, []wantErr{inv("spec.externalIPs[0]")}},
		{"unsupported externalTrafficPolicy", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = "Nearest"
		}, []wantErr{notSup("spec.externalTrafficPolicy")}},
		{"allocateLoadBalancerNodePorts on ClusterIP", func(s *corev1.Service) {
			allocate := true
			s.Spec.AllocateLoadBalancerNodePorts = &allocate
		}, []wantErr{forbidden("spec.allocateLoadBalancerNodePorts")}},
		{"ExternalName needs a name", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}
		}, []wantErr{req("spec.externalName")}},
		{"ExternalName with cluster IP", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com", ClusterIP: "10.96.0.1"}
		}, []wantErr{forbidden("spec.clusterIPs")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(tt.mutate)
			checkErrors(t, ServiceStrategy{}.Validate(context.Background(), s), tt.want...)
		})
	}
}

func TestServiceUpdate(t *testing.T) {
	allocated := func() *corev1.Service {
		return newService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "10.96.0.10"
			s.Spec.Ports[0].Name = "http"
			s.Spec.Ports[0].NodePort = 30080
		})
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		want   []wantErr
		check  func(*testing.T, *corev1.Service)
	}{
		{"re-apply without allocated values", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			s.Spec.Ports[0].NodePort = 0
		}, nil, func(t *testing.T, s *corev1.Service) {
			if s.Spec.ClusterIP != "10.96.0.10" || s.Spec.Ports[0].NodePort != 30080 {
				t.Errorf("got clusterIP %q nodePort %d, want the allocated values kept", s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
			}
		}},
		{"change cluster IP", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
		}, []wantErr{inv("spec.clusterIPs[0]")}, nil},
		{"change selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "api"} }, nil, nil},
		{"to ExternalName", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}
		}, nil, nil},
		{"to ExternalName keeping the old fields (apply)", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "example.com"
		}, nil, func(t *testing.T, s *corev1.Service) {
			if s.Spec.ClusterIP != "" || s.Spec.IPFamilies != nil || s.Spec.IPFamilyPolicy != nil || s.Spec.Ports[0].NodePort != 0 || s.Spec.ExternalTrafficPolicy != "" {
				t.Errorf("got spec %+v, want cluster IPs, families, node ports and traffic policy dropped", s.Spec)
			}
		}},
		{"to ClusterIP keeping node ports (apply)", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }, nil,
			func(t *testing.T, s *corev1.Service) {
				if s.Spec.Ports[0].NodePort != 0 || s.Spec.ExternalTrafficPolicy != "" || s.Spec.ClusterIP != "10.96.0.10" {
					t.Errorf("got nodePort %d policy %q clusterIP %q, want node port and policy dropped, cluster IP kept", s.Spec.Ports[0].NodePort, s.Spec.ExternalTrafficPolicy, s.Spec.ClusterIP)
				}
			}},
		{"to ClusterIP with a changed node port", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.Ports[0].NodePort = 30081
		}, []wantErr{forbidden("spec.ports[0].nodePort")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := allocated()
			s := old.DeepCopy()
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
			tt.mutate(s)
			st := ServiceStrategy{}
			st.Default(s)
			st.PrepareForUpdate(context.Background(), s, old)
			checkErrors(t, st.ValidateUpdate(context.Background(), s, old), tt.want...)
			if len(s.Status.LoadBalancer.Ingress) != 0 {
				t.Errorf("got status %v, want the old (empty) status kept", s.Status)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestServiceStatusUpdate(t *testing.T) {
	vip := corev1.LoadBalancerIPModeVIP
	tests := []struct {
		name    string
		svcType corev1.ServiceType
		ingress []corev1.LoadBalancerIngress
		want    []wantErr
	}{
		{"lb ip", corev1.ServiceTypeLoadBalancer, []corev1.LoadBalancerIngress{{IP: "203.0.113.7", IPMode: &vip}}, nil},
		{"lb ip without mode", corev1.ServiceTypeLoadBalancer, []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}, []wantErr{req("status.loadBalancer.ingress[0].ipMode")}},
		{"ingress on ClusterIP", corev1.ServiceTypeClusterIP, []corev1.LoadBalancerIngress{{IP: "203.0.113.7", IPMode: &vip}}, []wantErr{forbidden("status.loadBalancer.ingress")}},
		{"hostname is an IP", corev1.ServiceTypeLoadBalancer, []corev1.LoadBalancerIngress{{Hostname: "1.2.3.4"}}, []wantErr{inv("status.loadBalancer.ingress[0].hostname")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := newService(func(s *corev1.Service) { s.Spec.Type = tt.svcType })
			s := old.DeepCopy()
			s.Spec.Selector = nil
			s.Status.LoadBalancer.Ingress = tt.ingress
			st := ServiceStrategy{}
			st.PrepareForStatusUpdate(context.Background(), s, old)
			if s.Spec.Selector == nil {
				t.Errorf("got spec changed by a status update, want the old spec")
			}
			checkErrors(t, st.ValidateStatusUpdate(context.Background(), s, old), tt.want...)
		})
	}
}
