package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// Allocation keys: one per allocated ClusterIP and NodePort, written in the
// same transaction as the Service that holds it, so that no value is
// handed out twice, across restarts and between servers sharing etcd.
const (
	ipKeyPrefix   = "/registry/allocations/serviceips/"
	portKeyPrefix = "/registry/allocations/servicenodeports/"
)

// allocator picks ClusterIPs and NodePorts.
type allocator struct {
	cidr     *net.IPNet
	base     *big.Int
	size     int64 // usable addresses after the network address
	portBase int
	portSize int
}

func newAllocator(cidr *net.IPNet, portBase, portSize int) (*allocator, error) {
	ones, bits := cidr.Mask.Size()
	if bits-ones < 2 {
		return nil, fmt.Errorf("service CIDR %s is too small", cidr)
	}
	if portBase <= 0 || portSize <= 0 || portBase+portSize-1 > 65535 {
		return nil, fmt.Errorf("invalid node port range %d+%d", portBase, portSize)
	}
	size := new(big.Int).Lsh(big.NewInt(1), uint(bits-ones))
	// Leave out the network address and, for IPv4, the broadcast address;
	// cap huge IPv6 ranges.
	size.Sub(size, big.NewInt(2))
	if !size.IsInt64() || size.Int64() > 1<<24 {
		size = big.NewInt(1 << 24)
	}
	base := new(big.Int).SetBytes(normIP(cidr.IP))
	return &allocator{cidr: cidr, base: base, size: size.Int64(), portBase: portBase, portSize: portSize}, nil
}

func normIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// ipAt returns the address at offset i (1 is the first usable one).
func (a *allocator) ipAt(i int64) net.IP {
	n := new(big.Int).Add(a.base, big.NewInt(i))
	b := n.Bytes()
	l := len(normIP(a.cidr.IP))
	out := make(net.IP, l)
	copy(out[l-len(b):], b)
	return out
}

// firstIP is reserved for the kubernetes Service.
func (a *allocator) firstIP() (net.IP, error) { return a.ipAt(1), nil }

func ipKey(ip net.IP) string { return ipKeyPrefix + ip.String() }
func portKey(proto corev1.Protocol, port int32) string {
	return portKeyPrefix + strings.ToLower(string(proto)) + "-" + strconv.Itoa(int(port))
}

// txnHook is what a resource adds to its write: conditions and writes in
// the same transaction.
type txnHook struct {
	conds []storage.Condition
	ops   []storage.Op
}

func (h *txnHook) claim(key, owner string) {
	h.conds = append(h.conds, storage.Condition{Key: key})
	h.ops = append(h.ops, storage.Op{Key: key, Value: []byte(owner)})
}

func (h *txnHook) release(key string) {
	h.ops = append(h.ops, storage.Op{Key: key, Delete: true})
}

// createHookMutates reports whether createHook may change obj (it fills
// in a Service's cluster IPs and node ports).
func createHookMutates(obj runtime.Object) bool {
	_, ok := obj.(*corev1.Service)
	return ok
}

func (s *Server) createHook(req *request, obj runtime.Object, dry bool) (txnHook, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return txnHook{}, nil
	}
	var h txnHook
	err := s.allocateService(req.ctx, &h, svc, nil)
	return h, err
}

func (s *Server) updateHook(req *request, obj, old runtime.Object, dry bool) (txnHook, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || req.sub == "status" {
		return txnHook{}, nil
	}
	var h txnHook
	err := s.allocateService(req.ctx, &h, svc, old.(*corev1.Service))
	return h, err
}

func (s *Server) deleteHook(req *request, obj runtime.Object) txnHook {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return txnHook{}
	}
	var h txnHook
	for _, k := range serviceKeys(svc) {
		h.release(k)
	}
	return h
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func needsHealthCheckPort(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// serviceKeys are the allocation keys a Service holds.
func serviceKeys(svc *corev1.Service) []string {
	var keys []string
	for _, ip := range svc.Spec.ClusterIPs {
		if p := net.ParseIP(ip); p != nil {
			keys = append(keys, ipKey(p))
		}
	}
	if len(svc.Spec.ClusterIPs) == 0 {
		if p := net.ParseIP(svc.Spec.ClusterIP); p != nil {
			keys = append(keys, ipKey(p))
		}
	}
	seen := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			k := portKey(p.Protocol, p.NodePort)
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		k := portKey(corev1.ProtocolTCP, svc.Spec.HealthCheckNodePort)
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// keepAllocatedValues carries a Service's allocated ClusterIPs and
// NodePorts into an update that leaves them unset, as kube-apiserver's
// patchAllocatedValues does, so that kubectl replace and apply work.
func keepAllocatedValues(svc, old *corev1.Service) {
	if needsClusterIP(svc) && needsClusterIP(old) {
		if svc.Spec.ClusterIP == "" {
			svc.Spec.ClusterIP = old.Spec.ClusterIP
		}
		if len(svc.Spec.ClusterIPs) == 0 && len(old.Spec.ClusterIPs) > 0 && svc.Spec.ClusterIP == old.Spec.ClusterIP {
			svc.Spec.ClusterIPs = old.Spec.ClusterIPs
		}
	}
	if needsNodePorts(svc) && needsNodePorts(old) {
		for i := range svc.Spec.Ports {
			np := &svc.Spec.Ports[i]
			if np.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.NodePort != 0 && op.Port == np.Port && op.Protocol == np.Protocol {
					np.NodePort = op.NodePort
					break
				}
			}
		}
	}
	if needsHealthCheckPort(svc) && needsHealthCheckPort(old) && svc.Spec.HealthCheckNodePort == 0 {
		svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
}

// allocateService fills in and claims svc's ClusterIP and NodePorts and
// releases what old held and svc no longer does. Values the client asked
// for are checked (422 when outside the range or taken).
func (s *Server) allocateService(ctx context.Context, h *txnHook, svc, old *corev1.Service) error {
	owner := svc.Namespace + "/" + svc.Name
	held := map[string]bool{}
	if old != nil {
		for _, k := range serviceKeys(old) {
			held[k] = true
		}
	}
	var errs field.ErrorList

	if needsClusterIP(svc) {
		if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) > 0 {
			svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
		}
		if svc.Spec.ClusterIP == "" {
			ip, err := s.pickIP(ctx)
			if err != nil {
				return err
			}
			svc.Spec.ClusterIP = ip.String()
			h.claim(ipKey(ip), owner)
		} else {
			ip := net.ParseIP(svc.Spec.ClusterIP)
			fp := field.NewPath("spec", "clusterIPs").Index(0)
			switch {
			case ip == nil:
				errs = append(errs, field.Invalid(fp, svc.Spec.ClusterIP, "must be a valid IP address"))
			case held[ipKey(ip)]:
			case !s.alloc.cidr.Contains(ip):
				errs = append(errs, field.Invalid(fp, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip, ip, s.alloc.cidr)))
			default:
				if taken, err := s.taken(ctx, ipKey(ip)); err != nil {
					return err
				} else if taken {
					errs = append(errs, field.Invalid(fp, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip)))
				} else {
					h.claim(ipKey(ip), owner)
				}
			}
		}
		if len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		if len(svc.Spec.IPFamilies) == 0 {
			if ip := net.ParseIP(svc.Spec.ClusterIP); ip != nil && ip.To4() == nil {
				svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
			} else {
				svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
			}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			p := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &p
		}
	} else if svc.Spec.Type == corev1.ServiceTypeExternalName {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
	}

	if needsNodePorts(svc) {
		claimed := map[string]bool{}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			fp := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			if p.NodePort == 0 {
				port, err := s.pickPort(ctx, p.Protocol, claimed)
				if err != nil {
					return err
				}
				p.NodePort = port
				k := portKey(p.Protocol, port)
				claimed[k] = true
				h.claim(k, owner)
				continue
			}
			k := portKey(p.Protocol, p.NodePort)
			switch {
			case held[k] || claimed[k]:
			case int(p.NodePort) < s.alloc.portBase || int(p.NodePort) >= s.alloc.portBase+s.alloc.portSize:
				errs = append(errs, field.Invalid(fp, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", s.alloc.portBase, s.alloc.portBase+s.alloc.portSize-1)))
			default:
				if taken, err := s.taken(ctx, k); err != nil {
					return err
				} else if taken {
					errs = append(errs, field.Invalid(fp, p.NodePort, "provided port is already allocated"))
				} else {
					claimed[k] = true
					h.claim(k, owner)
				}
			}
		}
	} else if svc.Spec.Type == corev1.ServiceTypeClusterIP || svc.Spec.Type == corev1.ServiceTypeExternalName {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	if needsHealthCheckPort(svc) {
		if svc.Spec.HealthCheckNodePort == 0 {
			port, err := s.pickPort(ctx, corev1.ProtocolTCP, nil)
			if err != nil {
				return err
			}
			svc.Spec.HealthCheckNodePort = port
			h.claim(portKey(corev1.ProtocolTCP, port), owner)
		} else if k := portKey(corev1.ProtocolTCP, svc.Spec.HealthCheckNodePort); !held[k] {
			if taken, err := s.taken(ctx, k); err != nil {
				return err
			} else if taken {
				errs = append(errs, field.Invalid(field.NewPath("spec", "healthCheckNodePort"), svc.Spec.HealthCheckNodePort, "provided port is already allocated"))
			} else {
				h.claim(k, owner)
			}
		}
	} else {
		svc.Spec.HealthCheckNodePort = 0
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
	}
	// Release what the old Service held and this one no longer does.
	now := map[string]bool{}
	for _, k := range serviceKeys(svc) {
		now[k] = true
	}
	for k := range held {
		if !now[k] {
			h.release(k)
		}
	}
	return nil
}

func (s *Server) taken(ctx context.Context, key string) (bool, error) {
	_, err := s.store.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, internalError(err)
}

var errFull = errors.New("range is full")

// pickIP chooses a free ClusterIP: random tries first, then a scan of the
// allocated keys. The first address is never chosen (the kubernetes
// Service's).
func (s *Server) pickIP(ctx context.Context) (net.IP, error) {
	a := s.alloc
	if a.size > 1 {
		for range 8 {
			ip := a.ipAt(2 + rand.Int64N(a.size-1))
			taken, err := s.taken(ctx, ipKey(ip))
			if err != nil {
				return nil, err
			}
			if !taken {
				return ip, nil
			}
		}
	}
	used, err := s.allocatedKeys(ctx, ipKeyPrefix)
	if err != nil {
		return nil, err
	}
	start := rand.Int64N(max(a.size-1, 1))
	for i := range a.size - 1 {
		ip := a.ipAt(2 + (start+i)%(a.size-1))
		if !used[ipKey(ip)] {
			return ip, nil
		}
	}
	return nil, apierrors.NewInternalError(fmt.Errorf("allocate ClusterIP from %s: %w", a.cidr, errFull))
}

func (s *Server) pickPort(ctx context.Context, proto corev1.Protocol, claimed map[string]bool) (int32, error) {
	a := s.alloc
	for range 8 {
		port := int32(a.portBase + rand.IntN(a.portSize))
		k := portKey(proto, port)
		if claimed[k] {
			continue
		}
		taken, err := s.taken(ctx, k)
		if err != nil {
			return 0, err
		}
		if !taken {
			return port, nil
		}
	}
	used, err := s.allocatedKeys(ctx, portKeyPrefix)
	if err != nil {
		return 0, err
	}
	start := rand.IntN(a.portSize)
	for i := range a.portSize {
		port := int32(a.portBase + (start+i)%a.portSize)
		k := portKey(proto, port)
		if !used[k] && !claimed[k] {
			return port, nil
		}
	}
	return 0, apierrors.NewInternalError(fmt.Errorf("allocate NodePort from %d-%d: %w", a.portBase, a.portBase+a.portSize-1, errFull))
}

func (s *Server) allocatedKeys(ctx context.Context, prefix string) (map[string]bool, error) {
	used := map[string]bool{}
	start := ""
	for {
		page, err := s.store.List(ctx, prefix, storage.ListOptions{StartKey: start, Limit: 10000, KeysOnly: true})
		if err != nil {
			return nil, internalError(err)
		}
		for _, kv := range page.Items {
			used[kv.Key] = true
		}
		if !page.More || len(page.Items) == 0 {
			return used, nil
		}
		start = page.Items[len(page.Items)-1].Key + "\x00"
	}
}
