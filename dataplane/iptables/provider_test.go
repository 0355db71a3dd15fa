package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/dataplane"
)

// kube-proxy's TestOverallIPTablesRules, with the expected output adjusted
// for what this provider does not model: health check node ports,
// loadBalancerSourceRanges (KUBE-FW-*), localhost NodePorts (KUBE-FIREWALL,
// the 127.0.0.0/8 NodePort rules) and nfacct counters. Chain names and
// every other rule are kube-proxy's, character for character.
func TestOverallRules(t *testing.T) {
	p, _, _ := newFakeProvider(t)
	tcpPort := func(name string, port, nodePort int32) []v1.ServicePort {
		return []v1.ServicePort{{Name: name, Port: port, Protocol: v1.ProtocolTCP, NodePort: nodePort, TargetPort: intstr.FromInt32(80)}}
	}
	for _, svc := range []*v1.Service{
		makeService("ns1", "svc1", func(s *v1.Service) {
			s.Spec.ClusterIP = "172.30.0.41"
			s.Spec.Ports = tcpPort("p80", 80, 0)
		}),
		makeService("ns2", "svc2", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			s.Spec.ClusterIP = "172.30.0.42"
			s.Spec.Ports = tcpPort("p80", 80, 3001)
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "1.2.3.4"}}
			s.Spec.ExternalIPs = []string{"192.168.99.22"}
		}),
		makeService("ns3", "svc3", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.ClusterIP = "172.30.0.43"
			s.Spec.Ports = tcpPort("p80", 80, 3003)
		}),
		makeService("ns4", "svc4", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.ClusterIP = "172.30.0.44"
			s.Spec.ExternalIPs = []string{"192.168.99.33"}
			s.Spec.Ports = tcpPort("p80", 80, 0)
		}),
		makeService("ns5", "svc5", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
			s.Spec.ClusterIP = "172.30.0.45"
			s.Spec.Ports = tcpPort("p80", 80, 3002)
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](10800)}}
		}),
		makeService("ns6", "svc6", func(s *v1.Service) {
			s.Spec.ClusterIP = "172.30.0.46"
			s.Spec.Ports = tcpPort("p80", 80, 0)
		}),
	} {
		p.OnServiceAdd(svc)
	}
	ep := func(ip string, node string) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{ip}}
		if node != "" {
			e.NodeName = ptr(node)
		}
		return e
	}
	for _, s := range []*discoveryv1.EndpointSlice{
		makeSlice("ns1", "svc1", 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{ep("10.180.0.1", "")}
			s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
		}),
		makeSlice("ns2", "svc2", 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{ep("10.180.0.2", "")}
			s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
		}),
		makeSlice("ns3", "svc3", 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{ep("10.180.0.3", "")}
			s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
		}),
		makeSlice("ns4", "svc4", 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{ep("10.180.0.4", ""), ep("10.180.0.5", testNodeName)}
			s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
		}),
		makeSlice("ns5", "svc5", 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{ep("10.180.0.3", "")}
			s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
		}),
	} {
		p.OnEndpointSliceAdd(s)
	}
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	assertRestore(t, p.iptablesData.String(), `
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		COMMIT
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
		:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
		:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
		:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
		:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
		:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
		:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
		:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
		:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
		:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
		:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
		:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
		:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
		-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
		-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
		-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
		-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS
		-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
		-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
		-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
		-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
		-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
		-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
		-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
		-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
		-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
		-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
		-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
		-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
		-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
		-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
		COMMIT
	`)
}

// Port of kube-proxy's TestSyncProxyRulesRepeated (the first steps): a
// partial sync writes the top-level chains and only the changed Services'
// chains, and removes the chains of deleted Services.
func TestPartialSync(t *testing.T) {
	p, ipt, _ := newFakeProvider(t)
	svc := func(ns, name, ip, port string, n int32) *v1.Service {
		return makeService(ns, name, func(s *v1.Service) {
			s.Spec.ClusterIP = ip
			s.Spec.Ports = []v1.ServicePort{{Name: port, Port: n, Protocol: v1.ProtocolTCP}}
		})
	}
	slice := func(ns, name, ip, port string, n int32) *discoveryv1.EndpointSlice {
		return makeSlice(ns, name, 1, func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{ip}}}
			s.Ports = slicePort(port, v1.ProtocolTCP, n)
		})
	}
	svc2 := svc("ns2", "svc2", "172.30.0.42", "p8080", 8080)
	p.OnServiceAdd(svc("ns1", "svc1", "172.30.0.41", "p80", 80))
	p.OnServiceAdd(svc2)
	p.OnEndpointSliceAdd(slice("ns1", "svc1", "10.0.1.1", "p80", 80))
	p.OnEndpointSliceAdd(slice("ns2", "svc2", "10.0.2.1", "p8080", 8080))
	if err := p.Sync(); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	const filter = `
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		COMMIT
	`
	const natBase = `
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
		-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
	`
	assertRestore(t, p.iptablesData.String(), filter+natBase+`
		:KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
		:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
		:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
		-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -s 10.0.1.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
		-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -s 10.0.2.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:8080
		-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 -> 10.0.2.1:8080" -j KUBE-SEP-UHEGFW77JX3KXTOV
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.1.1:80" -j KUBE-SEP-SNQ3ZNILQDEJNDQO
		COMMIT
	`)
	jumpCalls := countCalls(ipt, "iptables ")

	// A new Service: only its chains are written.
	p.OnServiceAdd(svc("ns3", "svc3", "172.30.0.43", "p80", 80))
	p.OnEndpointSliceAdd(slice("ns3", "svc3", "10.0.3.1", "p80", 80))
	if err := p.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	assertRestore(t, p.iptablesData.String(), filter+natBase+`
		:KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]
		:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
		-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
		-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -s 10.0.3.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.1:80
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.1:80" -j KUBE-SEP-BSWRHOQ77KEXZLNL
		COMMIT
	`)
	if got := countCalls(ipt, "iptables "); got != jumpCalls {
		t.Errorf("partial sync ran iptables %d more times, want 0 (jump rules only on full syncs)", got-jumpCalls)
	}

	// Deleting a Service removes its chains and leaves the others alone.
	p.OnServiceDelete(svc2)
	if err := p.Sync(); err != nil {
		t.Fatalf("third Sync: %v", err)
	}
	assertRestore(t, p.iptablesData.String(), filter+natBase+`
		:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
		:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
		-X KUBE-SEP-UHEGFW77JX3KXTOV
		-X KUBE-SVC-2VJB64SDSIJUP5T6
		COMMIT
	`)

	// The fake kernel state is the union of all that: svc1 and svc3 only.
	nat := ipt.dump("nat")
	for _, want := range []string{":KUBE-SVC-XPGD46QRK7WJZT7O", ":KUBE-SEP-SNQ3ZNILQDEJNDQO", ":KUBE-SVC-X27LE4BHSL4DOUIK"} {
		if !slices.Contains(nat, want) {
			t.Errorf("nat table lacks %s after partial syncs", want)
		}
	}
	for _, gone := range []string{":KUBE-SVC-2VJB64SDSIJUP5T6", ":KUBE-SEP-UHEGFW77JX3KXTOV"} {
		if slices.Contains(nat, gone) {
			t.Errorf("nat table still has %s of the deleted Service", gone)
		}
	}

	// A Service without endpoints: REJECT only, no nat chains.
	p.OnServiceAdd(svc("ns4", "svc4", "172.30.0.44", "p80", 80))
	if err := p.Sync(); err != nil {
		t.Fatalf("fourth Sync: %v", err)
	}
	if got, want := ipt.chainRules("filter", kubeServicesChain), []string{
		`-m comment --comment "ns4/svc4:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j REJECT`,
	}; !slices.Equal(got, want) {
		t.Errorf("filter KUBE-SERVICES: got %q, want %q", got, want)
	}
}

func countCalls(ipt *fakeIPTables, prefix string) int {
	ipt.mu.Lock()
	defer ipt.mu.Unlock()
	n := 0
	for _, c := range ipt.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func TestFailedRestoreForcesFullSync(t *testing.T) {
	p, ipt, _ := newFakeProvider(t)
	p.OnServiceAdd(makeService("ns1", "svc1", func(s *v1.Service) {
		s.Spec.ClusterIP = "172.30.0.41"
		s.Spec.Ports = []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}}
	}))
	p.OnEndpointSliceAdd(makeSlice("ns1", "svc1", 1, func(s *discoveryv1.EndpointSlice) {
		s.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.0.1.1"}}}
		s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
	}))
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	p.OnServiceAdd(makeService("ns2", "svc2", func(s *v1.Service) {
		s.Spec.ClusterIP = "172.30.0.42"
		s.Spec.Ports = []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}}
	}))
	ipt.failRestore = true
	if err := p.Sync(); err == nil {
		t.Fatalf("Sync with failing iptables-restore: got nil error, want one")
	}
	// Nothing is pending any more, yet the next sync must rewrite everything.
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync after failure: %v", err)
	}
	if !strings.Contains(ipt.lastRestore(), ":KUBE-SVC-XPGD46QRK7WJZT7O") {
		t.Errorf("sync after a failure did not rewrite the unchanged svc1's chain: want a full sync")
	}
}

// TestPolicies checks the chains of traffic policies, affinity and
// terminating endpoints against kube-proxy's behaviour.
func TestPolicies(t *testing.T) {
	local := v1.ServiceInternalTrafficPolicyLocal
	tcp := v1.ProtocolTCP
	epc := func(ip, node string, ready, serving, terminating bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses: []string{ip}, NodeName: ptr(node),
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		}
	}
	type want struct {
		chain string // table/chain
		rules []string
	}
	tests := []struct {
		name  string
		svc   func(*v1.Service)
		eps   []discoveryv1.Endpoint
		wants []want
	}{
		{
			name: "externalTrafficPolicy Local with a local endpoint uses KUBE-SVL for external traffic",
			svc: func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeNodePort
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.Ports[0].NodePort = 30080
			},
			eps: []discoveryv1.Endpoint{epc("10.180.0.1", testNodeName, true, true, false), epc("10.0.2.1", "other", true, true, false)},
			wants: []want{
				{"nat/KUBE-EXT-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O`,
					`-m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
					`-m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O`,
					`-j KUBE-SVL-XPGD46QRK7WJZT7O`,
				}},
				{"nat/KUBE-SVL-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
				}},
				{"nat/KUBE-NODEPORTS", []string{
					`-m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
				}},
			},
		},
		{
			name: "internalTrafficPolicy Local without local endpoints drops ClusterIP traffic",
			svc: func(s *v1.Service) {
				s.Spec.InternalTrafficPolicy = &local
			},
			eps: []discoveryv1.Endpoint{epc("10.0.2.1", "other", true, true, false)},
			wants: []want{
				{"filter/KUBE-SERVICES", []string{
					`-m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j DROP`,
				}},
				{"nat/KUBE-SERVICES", nil},
			},
		},
		{
			name: "internalTrafficPolicy Local with a local endpoint sends ClusterIP traffic to KUBE-SVL",
			svc: func(s *v1.Service) {
				s.Spec.InternalTrafficPolicy = &local
			},
			eps: []discoveryv1.Endpoint{epc("10.180.0.1", testNodeName, true, true, false), epc("10.0.2.1", "other", true, true, false)},
			wants: []want{
				{"nat/KUBE-SERVICES", []string{
					`-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O`,
				}},
				{"nat/KUBE-SVL-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
					`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
				}},
			},
		},
		{
			name: "no ready endpoint: serving terminating ones take traffic, non-serving never",
			eps: []discoveryv1.Endpoint{
				epc("10.180.0.1", testNodeName, false, true, true),
				epc("10.0.1.2", testNodeName, false, false, true),
				epc("10.0.1.3", "other", false, true, true),
			},
			wants: []want{
				{"nat/KUBE-SVC-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
					`-m comment --comment "ns1/svc1:p80 -> 10.0.1.3:80" -m statistic --mode random --probability 0.5000000000 -j ` + servicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.0.1.3:80"),
					`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
				}},
			},
		},
		{
			name: "a ready endpoint wins over terminating ones",
			eps: []discoveryv1.Endpoint{
				epc("10.180.0.1", testNodeName, false, true, true),
				epc("10.0.1.3", "other", true, true, false),
			},
			wants: []want{
				{"nat/KUBE-SVC-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
					`-m comment --comment "ns1/svc1:p80 -> 10.0.1.3:80" -j ` + servicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.0.1.3:80"),
				}},
			},
		},
		{
			name: "sessionAffinity ClientIP checks and sets recent lists",
			svc: func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
			},
			eps: []discoveryv1.Endpoint{epc("10.180.0.1", testNodeName, true, true, false)},
			wants: []want{
				{"nat/KUBE-SVC-XPGD46QRK7WJZT7O", []string{
					`-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
					`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --rcheck --seconds 60 --reap -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
					`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
				}},
				{"nat/KUBE-SEP-SXIVWICOYRO3J4NJ", []string{
					`-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ`,
					`-m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
				}},
			},
		},
		{
			name: "no endpoints: REJECT on every frontend",
			svc: func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.Ports[0].NodePort = 30080
				s.Spec.ExternalIPs = []string{"192.0.2.7"}
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.51.100.1"}}
			},
			wants: []want{
				{"filter/KUBE-SERVICES", []string{
					`-m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j REJECT`,
				}},
				{"filter/KUBE-EXTERNAL-SERVICES", []string{
					`-m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.0.2.7 --dport 80 -j REJECT`,
					`-m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 198.51.100.1 --dport 80 -j REJECT`,
					`-m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT`,
				}},
				{"nat/KUBE-NODEPORTS", nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ipt, _ := newFakeProvider(t)
			p.OnServiceAdd(makeService("ns1", "svc1", func(s *v1.Service) {
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.Ports = []v1.ServicePort{{Name: "p80", Port: 80, Protocol: tcp}}
				if tt.svc != nil {
					tt.svc(s)
				}
			}))
			if tt.eps != nil {
				p.OnEndpointSliceAdd(makeSlice("ns1", "svc1", 1, func(s *discoveryv1.EndpointSlice) {
					s.Endpoints = tt.eps
					s.Ports = slicePort("p80", tcp, 80)
				}))
			}
			if err := p.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			for _, w := range tt.wants {
				table, chain, _ := strings.Cut(w.chain, "/")
				got := ipt.chainRules(table, chain)
				if chain == kubeServicesChain && table == "nat" {
					got = slices.DeleteFunc(got, func(r string) bool { return strings.Contains(r, "must be the last rule") })
				}
				if !slices.Equal(got, w.rules) {
					t.Errorf("%s:\ngot  %q\nwant %q", w.chain, got, w.rules)
				}
			}
		})
	}
}

func TestNodePortAddresses(t *testing.T) {
	p, ipt, _ := newFakeProvider(t, netip.MustParseAddr("172.30.0.10"), netip.MustParseAddr("127.0.0.1"))
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	want := []string{`-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 172.30.0.10 -j KUBE-NODEPORTS`}
	if got := ipt.chainRules("nat", kubeServicesChain); !slices.Equal(got, want) {
		t.Errorf("nat KUBE-SERVICES: got %q, want %q", got, want)
	}
}

func TestConntrackCleanup(t *testing.T) {
	p, _, ct := newFakeProvider(t)
	udp := v1.ProtocolUDP
	ap := netip.MustParseAddrPort
	p.OnServiceAdd(makeService("ns1", "dns", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.ClusterIP = "172.30.0.53"
		s.Spec.ExternalIPs = []string{"192.0.2.53"}
		s.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: udp, NodePort: 30053}}
	}))
	p.OnServiceAdd(makeService("ns1", "empty", func(s *v1.Service) {
		s.Spec.ClusterIP = "172.30.0.54"
		s.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: udp}}
	}))
	slice := func(ips ...string) *discoveryv1.EndpointSlice {
		return makeSlice("ns1", "dns", 1, func(s *discoveryv1.EndpointSlice) {
			for _, ip := range ips {
				s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}})
			}
			s.Ports = slicePort("dns", udp, 5353)
		})
	}
	p.OnEndpointSliceAdd(slice("10.0.1.1", "10.0.1.2"))
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	flow := func(src, dst, reply string) Flow {
		return Flow{Protocol: 17, OrigSrc: ap(src), OrigDst: ap(dst), ReplySrc: ap(reply)}
	}
	keep1 := flow("10.0.9.9:1000", "172.30.0.53:53", "10.0.1.1:5353")
	stale := flow("10.0.9.9:1001", "172.30.0.53:53", "10.0.1.2:5353")
	staleExt := flow("10.0.9.9:1002", "192.0.2.53:53", "10.0.1.2:5353")
	staleNodePort := flow("10.0.9.9:1003", "172.30.0.10:30053", "10.0.1.2:5353")
	noEndpoints := flow("10.0.9.9:1004", "172.30.0.54:53", "172.30.0.54:53")
	unrelated := flow("10.0.9.9:1005", "10.0.7.7:53", "10.0.7.7:53")
	ct.flows = []Flow{keep1, stale, staleExt, staleNodePort, noEndpoints, unrelated}

	// 10.0.1.2 goes away.
	p.OnEndpointSliceUpdate(nil, slice("10.0.1.1"))
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if want := []Flow{stale, staleExt, staleNodePort, noEndpoints}; !sameFlows(ct.deleted, want) {
		t.Errorf("deleted %v, want %v", ct.deleted, want)
	}
	if want := []Flow{keep1, unrelated}; !sameFlows(ct.flows, want) {
		t.Errorf("left %v, want %v", ct.flows, want)
	}
}

func sameFlows(a, b []Flow) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			return false
		}
	}
	return true
}

func TestCleanup(t *testing.T) {
	p, ipt, _ := newFakeProvider(t)
	p.OnServiceAdd(makeService("ns1", "svc1", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.ClusterIP = "172.30.0.41"
		s.Spec.Ports = []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP, NodePort: 30080}}
	}))
	p.OnEndpointSliceAdd(makeSlice("ns1", "svc1", 1, func(s *discoveryv1.EndpointSlice) {
		s.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.0.1.1"}}}
		s.Ports = slicePort("p80", v1.ProtocolTCP, 80)
	}))
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := ipt.chainRules("nat", "PREROUTING"); len(got) != 1 {
		t.Fatalf("nat PREROUTING: got %q, want the jump to KUBE-SERVICES", got)
	}
	if err := p.Cleanup(); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, table := range []string{"nat", "filter"} {
		if got := ipt.dump(table); len(got) != 0 {
			t.Errorf("%s after Cleanup: got %q, want nothing", table, got)
		}
	}
	// Cleanup is idempotent, and a later Sync programs everything again.
	if err := p.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync after Cleanup: %v", err)
	}
	if !slices.Contains(ipt.dump("nat"), ":KUBE-SVC-XPGD46QRK7WJZT7O") {
		t.Errorf("Sync after Cleanup did not restore the service chain")
	}
}

func TestCloseRefusesSync(t *testing.T) {
	p, _, _ := newFakeProvider(t)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Sync(); err == nil {
		t.Fatalf("Sync after Close: got nil, want an error")
	}
}

// BenchmarkFullSyncRules measures generating (not applying) the rules of a
// full sync at 1,000 Services with 2 endpoints each.
func BenchmarkFullSyncRules(b *testing.B) {
	p, err := New(Config{Node: dataplane.NodeConfig{Name: testNodeName}, Executor: newFakeIPTables(), Conntrack: &fakeConntrack{}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		name := fmt.Sprintf("svc%d", i)
		p.OnServiceAdd(makeService("ns", name, func(s *v1.Service) {
			s.Spec.ClusterIP = netip.AddrFrom4([4]byte{10, 96, byte(i / 250), byte(i%250 + 1)}).String()
			s.Spec.Ports = []v1.ServicePort{{Name: "p", Port: 80, Protocol: v1.ProtocolTCP}}
		}))
		p.OnEndpointSliceAdd(makeSlice("ns", name, 1, func(s *discoveryv1.EndpointSlice) {
			for k := range 2 {
				s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(i%250 + k)}).String()}})
			}
			s.Ports = slicePort("p", v1.ProtocolTCP, 8080)
		}))
	}
	u := p.Apply()
	p.services, p.endpoints = u.Services, u.Endpoints
	b.ResetTimer()
	for b.Loop() {
		p.writeRules(b.Context(), true, nil)
	}
}
