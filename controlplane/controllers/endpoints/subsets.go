package endpoints

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/controllers/endpointslice"
)

// MaxCapacity is the most addresses one Endpoints object holds; beyond it
// the controller truncates and sets the over-capacity annotation.
const MaxCapacity = 1000

// desiredSubsets computes the packed subsets of svc from its pods: every
// pod's address with the ports it resolves, grouped by identical port set,
// ready addresses apart from not-ready ones, all sorted so that equal
// inputs give equal output.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	family := endpointslice.AddressTypes(svc)[0]
	for _, pod := range pods {
		if !endpointslice.PodIncluded(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		ip := endpointslice.PodAddress(pod, family)
		if ip == "" {
			continue
		}
		addr := corev1.EndpointAddress{
			IP: ip,
			TargetRef: &corev1.ObjectReference{
				Kind:      "Pod",
				Namespace: pod.Namespace,
				Name:      pod.Name,
				UID:       pod.UID,
			},
		}
		if pod.Spec.NodeName != "" {
			n := pod.Spec.NodeName
			addr.NodeName = &n
		}
		if endpointslice.ShouldSetHostname(pod, svc) {
			addr.Hostname = pod.Spec.Hostname
		}

		var ports []corev1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, err := endpointslice.FindPort(pod, sp)
			if err != nil {
				continue
			}
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: num, Protocol: proto, AppProtocol: sp.AppProtocol})
		}
		if len(ports) == 0 && !(len(svc.Spec.Ports) == 0 && svc.Spec.ClusterIP == corev1.ClusterIPNone) {
			// Only a headless Service without ports has port-less
			// addresses.
			continue
		}
		slices.SortFunc(ports, comparePorts)
		key := portSetKey(ports)
		g, ok := groups[key]
		if !ok {
			g = &group{ports: ports}
			groups[key] = g
		}
		if svc.Spec.PublishNotReadyAddresses || isReady(pod) {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}

	subsets := []corev1.EndpointSubset{}
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		slices.SortFunc(g.ready, compareAddresses)
		slices.SortFunc(g.notReady, compareAddresses)
		subsets = append(subsets, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return subsets
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func comparePorts(a, b corev1.EndpointPort) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}

func compareAddresses(a, b corev1.EndpointAddress) int {
	c := cmp.Compare(a.IP, b.IP)
	if c == 0 && a.TargetRef != nil && b.TargetRef != nil {
		c = cmp.Compare(a.TargetRef.UID, b.TargetRef.UID)
	}
	return c
}

func portSetKey(ports []corev1.EndpointPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		app := ""
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		parts[i] = fmt.Sprintf("%s/%s/%d/%s", p.Name, p.Protocol, p.Port, app)
	}
	return strings.Join(parts, ",")
}

// truncate cuts subsets down to MaxCapacity addresses as upstream does:
// ready addresses come first; whichever kind must be cut is cut in every
// subset in proportion to its share (rounded up, the last subsets taking
// what is left). It reports whether anything was cut.
func truncate(subsets []corev1.EndpointSubset) bool {
	ready, notReady := 0, 0
	for _, s := range subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	if ready+notReady <= MaxCapacity {
		return false
	}
	cutReady := ready > MaxCapacity
	budget, total := MaxCapacity-ready, notReady
	if cutReady {
		budget, total = MaxCapacity, ready
	}
	left := budget
	for i := range subsets {
		s := &subsets[i]
		n := len(s.NotReadyAddresses)
		if cutReady {
			n = len(s.Addresses)
		}
		share := int(math.Ceil(float64(n) / float64(total) * float64(budget)))
		share = min(share, left, n)
		if cutReady {
			s.Addresses = s.Addresses[:share]
			s.NotReadyAddresses = nil
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:share]
		}
		left -= share
	}
	return true
}
