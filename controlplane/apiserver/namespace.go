package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// DefaultNamespaces are created at first start, as kube-apiserver does.
var DefaultNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

var namespacesGR = schema.GroupResource{Resource: "namespaces"}

func namespaceKey(name string) string { return "/registry/namespaces/" + name }

// admitNamespace enforces namespace lifecycle for a create in ns: the
// namespace must exist (404) and not be terminating (403). It returns the
// condition that keeps the check true until the write: the namespace's
// ModRevision. fresh asks for a linearizable read (a retry after the
// condition failed); dry for a check that no write will confirm.
func (s *Server) admitNamespace(req *request, r *resource, ns, name string, fresh, dry bool) ([]storage.Condition, error) {
	if !r.Namespaced {
		return nil, nil
	}
	if !fresh && !dry {
		// The revision this namespace was last admitted at: if it has
		// changed since (terminating, deleted, or any update), the
		// write's condition fails and the retry reads it afresh.
		if rev, ok := s.nsRevs.get(ns); ok {
			return []storage.Condition{{Key: namespaceKey(ns), ModRevision: rev}}, nil
		}
		// A serializable read is enough when it admits, for the same
		// reason. Anything else is checked again with a linearizable read.
		conds, err := s.admitNamespaceFrom(req, r, ns, name, s.store.GetSerializable)
		if err == nil {
			return conds, nil
		}
	}
	return s.admitNamespaceFrom(req, r, ns, name, s.store.Get)
}

func (s *Server) admitNamespaceFrom(req *request, r *resource, ns, name string, get func(context.Context, string) (storage.KeyValue, error)) ([]storage.Condition, error) {
	kv, err := get(req.ctx, namespaceKey(ns))
	if errors.Is(err, storage.ErrNotFound) {
		s.nsRevs.forget(ns)
		return nil, apierrors.NewNotFound(namespacesGR, ns)
	}
	if err != nil {
		return nil, internalError(err)
	}
	nsRes := s.resources.lookup(schema.GroupVersion{Version: "v1"}, "namespaces")
	if nsRes == nil {
		return []storage.Condition{{Key: kv.Key, ModRevision: kv.ModRevision}}, nil
	}
	obj, err := decodeKV(nsRes, kv)
	if err != nil {
		return nil, internalError(err)
	}
	n := obj.(*corev1.Namespace)
	if n.Status.Phase == corev1.NamespaceTerminating || n.DeletionTimestamp != nil {
		s.nsRevs.forget(ns)
		msg := fmt.Sprintf("unable to create new content in namespace %s because it is being terminated", ns)
		e := apierrors.NewForbidden(r.gr(), name, errors.New(msg))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: msg, Field: "metadata.namespace",
		})
		return nil, e
	}
	s.nsRevs.remember(ns, kv.ModRevision)
	return []storage.Condition{{Key: kv.Key, ModRevision: kv.ModRevision}}, nil
}

// nsRevisions maps namespaces to the ModRevision at which they were last
// seen to admit creates. It saves every create an etcd read and a decode
// of its namespace; the condition on the revision keeps it correct (an
// out-of-date entry costs one failed transaction and a fresh read, which
// replaces or forgets it). Bounded: past maxNSRevisions entries it starts
// over.
type nsRevisions struct {
	mu sync.Mutex
	m  map[string]int64
}

const maxNSRevisions = 10000

func (c *nsRevisions) get(ns string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev, ok := c.m[ns]
	return rev, ok
}

func (c *nsRevisions) remember(ns string, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxNSRevisions {
		c.m = make(map[string]int64)
	}
	c.m[ns] = rev
}

func (c *nsRevisions) forget(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, ns)
}

// markNamespaceTerminating is the first delete of a namespace: it sets the
// deletion timestamp and phase Terminating and leaves removal to the
// namespace controller, which empties it and clears spec.finalizers
// through namespaces/finalize.
func (s *Server) markNamespaceTerminating(req *request, kv storage.KeyValue, ns *corev1.Namespace, opts *metav1.DeleteOptions, dry bool) (runtime.Object, error) {
	now := metav1.Now()
	ns.DeletionTimestamp = &now
	ns.Status.Phase = corev1.NamespaceTerminating
	if changed, f := deletionFinalizers(ns, opts); changed {
		ns.Finalizers = f
	}
	if dry {
		return ns, nil
	}
	data, err := encodeForStorage(req.r, ns)
	if err != nil {
		return nil, internalError(err)
	}
	rev, err := s.store.Update(req.ctx, kv.Key, data, kv.ModRevision, nil)
	if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
		return nil, errRetry
	}
	if err != nil {
		return nil, storageError(err, req.gr(), ns.Name)
	}
	ns.ResourceVersion = strconv.FormatInt(rev, 10)
	return ns, nil
}

// Bootstrap creates the default namespaces and the kubernetes Service (and
// its endpoints) when missing, then marks the server ready and starts the
// allocation repair loop. It retries until ctx ends.
func (s *Server) Bootstrap(ctx context.Context) error {
	for {
		err := s.bootstrap(ctx)
		if err == nil {
			s.ready.Store(true)
			s.startRepair()
			return nil
		}
		s.log.Warn("bootstrap failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrap: %w", err)
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) internalRequest(ctx context.Context, gv schema.GroupVersion, resource, namespace string) *request {
	r := s.resources.lookup(gv, resource)
	if r == nil {
		return nil
	}
	return &request{ctx: ctx, r: r, namespace: namespace, verb: "create"}
}

// ensure creates obj unless an object with its name exists.
func (s *Server) ensure(ctx context.Context, gv schema.GroupVersion, resource string, obj runtime.Object) error {
	m := accessor(obj)
	req := s.internalRequest(ctx, gv, resource, m.GetNamespace())
	if req == nil {
		return nil
	}
	if _, err := s.store.Get(ctx, req.r.key(m.GetNamespace(), m.GetName())); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(req.r.GroupVersionKind())
	_, err := s.createObject(req, obj, false, "skiff-apiserver", nil)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s %s: %w", resource, m.GetName(), err)
	}
	return nil
}

func (s *Server) bootstrap(ctx context.Context) error {
	core := schema.GroupVersion{Version: "v1"}
	for _, name := range DefaultNamespaces {
		if err := s.ensure(ctx, core, "namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			return err
		}
	}
	first, err := s.alloc.firstIP()
	if err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeClusterIP,
			ClusterIP:       first.String(),
			ClusterIPs:      []string{first.String()},
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443,
				TargetPort: intstr.FromInt32(int32(s.cfg.SecurePort))}},
		},
	}
	if err := s.ensure(ctx, core, "services", svc); err != nil {
		return err
	}
	if ip := s.cfg.PublicAddress; ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		// Endpoints may not point at loopback addresses.
		return nil
	}
	return s.ensureKubernetesEndpoints(ctx)
}

// ensureKubernetesEndpoints points the kubernetes Service at this server.
func (s *Server) ensureKubernetesEndpoints(ctx context.Context) error {
	ip := s.cfg.PublicAddress
	port := int32(s.cfg.SecurePort)
	ep := &corev1.Endpoints{ //nolint:staticcheck // core/v1 Endpoints is still served
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck
			Addresses: []corev1.EndpointAddress{{IP: ip.String()}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}, //nolint:staticcheck
		}},
	}
	if err := s.ensure(ctx, schema.GroupVersion{Version: "v1"}, "endpoints", ep); err != nil {
		return err
	}
	family := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		family = discoveryv1.AddressTypeIPv6
	}
	ready := true
	name, proto := "https", corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "skiff-apiserver"}},
		AddressType: family,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	return s.ensure(ctx, discoveryv1.SchemeGroupVersion, "endpointslices", slice)
}
