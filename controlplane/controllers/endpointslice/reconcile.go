package endpointslice

import (
	"cmp"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// plan is what one sync writes: slices to create (no name yet: the API
// server generates it), to update (full objects with their
// resourceVersion) and to delete.
type plan struct {
	create []*discoveryv1.EndpointSlice
	update []*discoveryv1.EndpointSlice
	delete []*discoveryv1.EndpointSlice
}

func (p *plan) empty() bool {
	return len(p.create) == 0 && len(p.update) == 0 && len(p.delete) == 0
}

// reconciler turns a Service, its pods and its existing slices into a plan,
// packing endpoints as upstream's EndpointSlice reconciler does to keep
// churn low: existing slices keep their endpoints in place, slices that
// change anyway are filled up first, a remainder that fits goes into the
// fullest unchanged slice with room, and only then new slices are created;
// a create paired with a delete becomes an update of the deleted slice.
type reconciler struct {
	maxPerSlice int
}

// desiredGroup is the endpoints of one port set.
type desiredGroup struct {
	ports     []discoveryv1.EndpointPort
	endpoints map[string]discoveryv1.Endpoint
}

func (r *reconciler) reconcile(svc *corev1.Service, podList []*corev1.Pod, existing []*discoveryv1.EndpointSlice, zoneOf func(node string) string) plan {
	var p plan
	types := AddressTypes(svc)

	existingByType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !ownedBy(s, svc) || !slices.Contains(types, s.AddressType) {
			p.delete = append(p.delete, s)
			continue
		}
		existingByType[s.AddressType] = append(existingByType[s.AddressType], s)
	}

	podList = slices.Clone(podList)
	slices.SortFunc(podList, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })

	total := 0
	desiredByType := map[discoveryv1.AddressType]map[string]*desiredGroup{}
	for _, t := range types {
		groups := map[string]*desiredGroup{}
		for _, pod := range podList {
			if !PodIncluded(pod, true) {
				continue
			}
			addr := PodAddress(pod, t)
			if addr == "" {
				continue
			}
			ports := podPorts(pod, svc)
			key := portsKey(ports)
			g, ok := groups[key]
			if !ok {
				g = &desiredGroup{ports: ports, endpoints: map[string]discoveryv1.Endpoint{}}
				groups[key] = g
			}
			ep := podEndpoint(pod, svc, addr, zoneOf(pod.Spec.NodeName))
			g.endpoints[endpointKey(&ep)] = ep
			total++
		}
		desiredByType[t] = groups
	}

	if total == 0 {
		r.placeholder(svc, types[0], existingByType, &p)
	} else {
		for _, t := range types {
			r.reconcileType(svc, t, desiredByType[t], existingByType[t], &p)
		}
	}
	finalize(&p)
	return p
}

// reconcileType plans the slices of one address type.
func (r *reconciler) reconcileType(svc *corev1.Service, t discoveryv1.AddressType, groups map[string]*desiredGroup, existing []*discoveryv1.EndpointSlice, p *plan) {
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := portsKey(s.Ports)
		existingByPorts[k] = append(existingByPorts[k], s)
	}
	for _, k := range slices.Sorted(maps.Keys(existingByPorts)) {
		if _, ok := groups[k]; !ok {
			p.delete = append(p.delete, existingByPorts[k]...)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		r.reconcilePorts(svc, t, groups[k], existingByPorts[k], p)
	}
}

// reconcilePorts plans the slices of one address type and port set.
func (r *reconciler) reconcilePorts(svc *corev1.Service, t discoveryv1.AddressType, g *desiredGroup, existing []*discoveryv1.EndpointSlice, p *plan) {
	remaining := maps.Clone(g.endpoints)
	wantLabels := sliceLabels(svc)

	var toUpdate, unchanged []*discoveryv1.EndpointSlice
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	// 1. Keep endpoints where they are; drop the ones no longer wanted.
	for _, s := range existing {
		changed := false
		kept := make([]discoveryv1.Endpoint, 0, len(s.Endpoints))
		for i := range s.Endpoints {
			k := endpointKey(&s.Endpoints[i])
			want, ok := remaining[k]
			if !ok || len(kept) >= r.maxPerSlice {
				// Gone, a duplicate, or over a lowered limit.
				changed = true
				continue
			}
			if !apiequality.Semantic.DeepEqual(s.Endpoints[i], want) {
				changed = true
			}
			kept = append(kept, want)
			delete(remaining, k)
		}
		metaChanged := !maps.Equal(s.Labels, wantLabels) || !hasControllerRef(s, svc) ||
			!apiequality.Semantic.DeepEqual(s.Ports, g.ports)
		switch {
		case len(kept) == 0:
			p.delete = append(p.delete, s)
		case changed || metaChanged:
			u := s.DeepCopy()
			u.Endpoints = kept
			u.Ports = g.ports
			u.Labels = wantLabels
			setControllerRef(u, svc)
			toUpdate = append(toUpdate, u)
		default:
			unchanged = append(unchanged, s)
		}
	}

	keys := slices.Sorted(maps.Keys(remaining))
	take := func(s *discoveryv1.EndpointSlice) {
		for len(keys) > 0 && len(s.Endpoints) < r.maxPerSlice {
			s.Endpoints = append(s.Endpoints, remaining[keys[0]])
			keys = keys[1:]
		}
	}

	// 2. Fill the slices that are written anyway, fullest first.
	slices.SortStableFunc(toUpdate, func(a, b *discoveryv1.EndpointSlice) int {
		return cmp.Compare(len(b.Endpoints), len(a.Endpoints))
	})
	for _, s := range toUpdate {
		take(s)
	}

	// 3. What is left goes into new slices, except that a last part that
	// fits into an unchanged slice goes there (the fullest that has room),
	// so a single new pod costs one update rather than a new slice.
	for len(keys) > 0 {
		var fill *discoveryv1.EndpointSlice
		if len(keys) < r.maxPerSlice {
			fill, unchanged = sliceToFill(unchanged, len(keys), r.maxPerSlice)
		}
		if fill != nil {
			fill = fill.DeepCopy()
			take(fill)
			toUpdate = append(toUpdate, fill)
			continue
		}
		n := newSlice(svc, t, g.ports)
		take(n)
		p.create = append(p.create, n)
	}
	p.update = append(p.update, toUpdate...)
}

// sliceToFill returns the fullest slice of candidates that can take n more
// endpoints, and candidates without it.
func sliceToFill(candidates []*discoveryv1.EndpointSlice, n, maxPerSlice int) (*discoveryv1.EndpointSlice, []*discoveryv1.EndpointSlice) {
	best := -1
	for i, s := range candidates {
		if len(s.Endpoints)+n > maxPerSlice {
			continue
		}
		if best < 0 || len(s.Endpoints) > len(candidates[best].Endpoints) {
			best = i
		}
	}
	if best < 0 {
		return nil, candidates
	}
	return candidates[best], slices.Delete(slices.Clone(candidates), best, best+1)
}

// placeholder plans exactly one empty slice for a Service without endpoints,
// so that consumers see the Service is handled (as upstream does).
func (r *reconciler) placeholder(svc *corev1.Service, t discoveryv1.AddressType, existingByType map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice, p *plan) {
	want := newSlice(svc, t, nil)
	kept := false
	for _, at := range slices.Sorted(maps.Keys(existingByType)) {
		for _, s := range existingByType[at] {
			if !kept && at == t && len(s.Endpoints) == 0 && len(s.Ports) == 0 {
				kept = true
				if !maps.Equal(s.Labels, want.Labels) || !hasControllerRef(s, svc) {
					u := s.DeepCopy()
					u.Labels = want.Labels
					setControllerRef(u, svc)
					p.update = append(p.update, u)
				}
				continue
			}
			p.delete = append(p.delete, s)
		}
	}
	if !kept {
		p.create = append(p.create, want)
	}
}

// finalize turns pairs of a create and a delete of the same address type
// into an update of the deleted slice, which consumers see as one change.
func finalize(p *plan) {
	var deletes []*discoveryv1.EndpointSlice
	for _, d := range p.delete {
		i := slices.IndexFunc(p.create, func(c *discoveryv1.EndpointSlice) bool { return c.AddressType == d.AddressType })
		if i < 0 || !ownedBySame(d, p.create[i]) {
			deletes = append(deletes, d)
			continue
		}
		c := p.create[i]
		p.create = slices.Delete(p.create, i, i+1)
		u := d.DeepCopy()
		u.Labels = c.Labels
		u.OwnerReferences = c.OwnerReferences
		u.Ports = c.Ports
		u.Endpoints = c.Endpoints
		p.update = append(p.update, u)
	}
	p.delete = deletes
}

// ownedBySame reports whether d is controlled by the Service that c is for:
// slices of an earlier incarnation of the Service are deleted, not reused,
// so that the garbage collector deleting them races with nothing.
func ownedBySame(d, c *discoveryv1.EndpointSlice) bool {
	for _, o := range d.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return o.UID == c.OwnerReferences[0].UID
		}
	}
	return true
}

// sliceLabels are the labels of a Service's slices: the Service's own, the
// service-name and managed-by labels, and the headless label for a Service
// without a ClusterIP.
func sliceLabels(svc *corev1.Service) map[string]string {
	l := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		switch k {
		case discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy, corev1.IsHeadlessService:
			continue
		}
		l[k] = v
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ControllerName
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	}
	return l
}

func newSlice(svc *corev1.Service, t discoveryv1.AddressType, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: svc.Name + "-",
			Namespace:    svc.Namespace,
			Labels:       sliceLabels(svc),
		},
		AddressType: t,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	setControllerRef(s, svc)
	return s
}

func controllerRef(svc *corev1.Service) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         "v1",
		Kind:               "Service",
		Name:               svc.Name,
		UID:                svc.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

func setControllerRef(s *discoveryv1.EndpointSlice, svc *corev1.Service) {
	s.OwnerReferences = []metav1.OwnerReference{controllerRef(svc)}
}

func hasControllerRef(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	return len(s.OwnerReferences) == 1 && apiequality.Semantic.DeepEqual(s.OwnerReferences[0], controllerRef(svc))
}

// ownedBy reports whether s belongs to this incarnation of svc: a slice
// whose controller is another Service UID (deleted and recreated under the
// same name) is deleted rather than reused.
func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "Service" {
			return o.UID == svc.UID
		}
	}
	return true
}
