package lb

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/dataplane/testbed"
)

// The Services of one run: Service 0 carries the traffic (ClusterIP
// trafficVIP:80 and NodePort trafficNodePort, to the echo servers of
// three pods: one on node 0, two on node 1); Services 1..N-1 are idle
// ClusterIP Services with three endpoints each on addresses nothing
// answers on, which only make the tables big.
const (
	namespace       = "bench"
	servicePort     = 80
	targetPort      = 8080
	trafficNodePort = 30080
)

// trafficVIP is the ClusterIP of Service 0.
func trafficVIP() netip.Addr { return netip.AddrFrom4([4]byte{10, 96, 0, 1}) }

func serviceIP(i int) netip.Addr {
	if i == 0 {
		return trafficVIP()
	}
	return netip.AddrFrom4([4]byte{10, 96 + byte((i+1)>>16), byte((i + 1) >> 8), byte(i + 1)})
}

func service(i int) *v1.Service {
	ip := serviceIP(i).String()
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("svc%d", i)},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  ip,
			ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: servicePort,
				TargetPort: intstr.FromString("http")}},
		},
	}
	if i == 0 {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = trafficNodePort
	}
	return s
}

type endpoint struct {
	ip   netip.Addr
	node string
}

// slice returns Service i's EndpointSlice; an odd gen moves one endpoint
// to another address (an endpoint change): for an idle Service its first
// endpoint, for the traffic Service its third (to the other pod of node 0).
func slice(i, gen int, c *testbed.Cluster) *discoveryv1.EndpointSlice {
	var eps []endpoint
	if i == 0 {
		pods := []*testbed.Pod{c.Nodes[0].Pods[0], c.Nodes[1].Pods[0], c.Nodes[1].Pods[1]}
		if gen%2 == 1 {
			pods[2] = c.Nodes[0].Pods[1]
		}
		for _, p := range pods {
			eps = append(eps, endpoint{p.IP, p.Node.Name})
		}
	} else {
		for k := 0; k < 3; k++ {
			eps = append(eps, endpoint{netip.AddrFrom4([4]byte{10, byte(250 + k), byte(i >> 8), byte(i)}), c.Nodes[1].Name})
		}
		if gen%2 == 1 {
			eps[0].ip = netip.AddrFrom4([4]byte{10, 253, byte(i >> 8), byte(i)})
		}
	}
	name, proto, port := "http", v1.ProtocolTCP, int32(targetPort)
	tru, fal := true, false
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("svc%d-1", i),
			Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc%d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
	}
	for _, e := range eps {
		node := e.node
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip.String()}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &tru, Serving: &tru, Terminating: &fal}})
	}
	return s
}
