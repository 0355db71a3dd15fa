package framework

import (
	"errors"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
)

// AffinityTerm is a parsed PodAffinityTerm: the namespaces it applies to,
// its label selector and its topology key.
type AffinityTerm struct {
	// Namespaces are the namespaces named in the term, or the pod's own
	// namespace when the term names none and has no namespace selector.
	Namespaces sets.Set[string]
	Selector   labels.Selector
	// TopologyKey is the node label whose value groups nodes into domains.
	TopologyKey string
	// NamespaceSelector selects namespaces by their labels; labels.Nothing()
	// when the term has none.
	NamespaceSelector labels.Selector

	// fast is set by Compile: Matches then compares a few namespaces and
	// label values directly instead of going through sets and selectors,
	// which matters because Filter matches terms against every pod of
	// every node it looks at.
	fast *termMatcher
	// signature identifies what the term selects; set by Compile.
	signature string
}

// Signature identifies the pods a term selects and how it groups nodes:
// terms with equal signatures are interchangeable. Compile sets it.
func (at *AffinityTerm) Signature() string {
	if at.signature == "" {
		return termSignature(at)
	}
	return at.signature
}

func termSignature(at *AffinityTerm) string {
	var b strings.Builder
	b.WriteString(at.TopologyKey)
	b.WriteByte(0)
	for _, ns := range sets.List(at.Namespaces) {
		b.WriteString(ns)
		b.WriteByte(',')
	}
	b.WriteByte(0)
	if at.Selector != nil {
		b.WriteString(at.Selector.String())
	}
	b.WriteByte(0)
	if at.NamespaceSelector != nil {
		if _, selectable := at.NamespaceSelector.Requirements(); selectable {
			b.WriteString("sel:")
			b.WriteString(at.NamespaceSelector.String())
		}
	}
	return b.String()
}

// termMatcher is a compiled AffinityTerm.
type termMatcher struct {
	namespaces []string
	// anyNamespace is set when the namespace selector selects everything.
	anyNamespace bool
	// noNamespaceSelector is set when there is no namespace selector.
	noNamespaceSelector bool
	// equals are the selector's requirements when all of them are
	// "label = value"; nil otherwise (Selector is used).
	equals []labelEquals
	// everything is set when the selector selects every pod.
	everything bool
}

type labelEquals struct{ key, value string }

// maxFastNamespaces bounds the namespaces compared one by one.
const maxFastNamespaces = 8

// Compile prepares the fast path of Matches. Call it again after changing
// the term's fields.
func (at *AffinityTerm) Compile() {
	at.fast = nil
	at.signature = termSignature(at)
	if len(at.Namespaces) > maxFastNamespaces || at.Selector == nil || at.NamespaceSelector == nil {
		return
	}
	m := &termMatcher{namespaces: sets.List(at.Namespaces)}
	if at.NamespaceSelector.Empty() {
		m.anyNamespace = true
	} else if _, selectable := at.NamespaceSelector.Requirements(); !selectable {
		m.noNamespaceSelector = true
	} else {
		return
	}
	reqs, selectable := at.Selector.Requirements()
	switch {
	case !selectable:
		return
	case at.Selector.Empty():
		m.everything = true
	default:
		for _, r := range reqs {
			op := r.Operator()
			vals := r.Values()
			if (op != selection.Equals && op != selection.DoubleEquals && op != selection.In) || vals.Len() != 1 {
				return
			}
			m.equals = append(m.equals, labelEquals{key: r.Key(), value: vals.List()[0]})
		}
	}
	at.fast = m
}

// Matches reports whether pod, living in a namespace with labels nsLabels,
// is selected by the term.
func (at *AffinityTerm) Matches(pod *v1.Pod, nsLabels labels.Set) bool {
	if m := at.fast; m != nil {
		inNamespace := m.anyNamespace
		for _, ns := range m.namespaces {
			if ns == pod.Namespace {
				inNamespace = true
				break
			}
		}
		if !inNamespace {
			return false
		}
		if m.everything {
			return true
		}
		for _, eq := range m.equals {
			if v, ok := pod.Labels[eq.key]; !ok || v != eq.value {
				return false
			}
		}
		return true
	}
	if at.Namespaces.Has(pod.Namespace) || at.NamespaceSelector.Matches(nsLabels) {
		return at.Selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

// WeightedAffinityTerm is a preferred affinity term with its weight.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// PodInfo is a pod with what the scheduler derives from it once: parsed
// affinity terms, resource requests and host ports. It is immutable once
// built, so the cache and snapshots share it.
type PodInfo struct {
	Pod *v1.Pod

	RequiredAffinityTerms      []AffinityTerm
	RequiredAntiAffinityTerms  []AffinityTerm
	PreferredAffinityTerms     []WeightedAffinityTerm
	PreferredAntiAffinityTerms []WeightedAffinityTerm

	// Requests is what NodeResourcesFit counts for the pod.
	Requests Resource
	// NonZeroCPU and NonZeroMemory are the requests with defaults filled in
	// for containers that request nothing; scoring uses them.
	NonZeroCPU    int64
	NonZeroMemory int64
	// HostPorts are the container ports with a hostPort.
	HostPorts []v1.ContainerPort

	// ParseErr is set when an affinity term has an invalid selector; the
	// pod is then unschedulable.
	ParseErr error
}

// NewPodInfo parses pod. An invalid affinity term is reported in ParseErr;
// the other fields are filled in regardless.
func NewPodInfo(pod *v1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Requests, pi.NonZeroCPU, pi.NonZeroMemory = ComputePodRequests(pod)
	pi.HostPorts = hostPorts(pod)

	var errs []error
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			var err error
			pi.RequiredAffinityTerms, err = affinityTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution)
			errs = append(errs, err)
			pi.PreferredAffinityTerms, err = weightedAffinityTerms(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
			errs = append(errs, err)
		}
		if paa := a.PodAntiAffinity; paa != nil {
			var err error
			pi.RequiredAntiAffinityTerms, err = affinityTerms(pod, paa.RequiredDuringSchedulingIgnoredDuringExecution)
			errs = append(errs, err)
			pi.PreferredAntiAffinityTerms, err = weightedAffinityTerms(pod, paa.PreferredDuringSchedulingIgnoredDuringExecution)
			errs = append(errs, err)
		}
	}
	pi.ParseErr = errors.Join(errs...)
	return pi
}

// HasAffinity reports whether the pod has any pod affinity or anti-affinity.
func (pi *PodInfo) HasAffinity() bool {
	a := pi.Pod.Spec.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// HasRequiredAntiAffinity reports whether the pod has required
// anti-affinity terms.
func (pi *PodInfo) HasRequiredAntiAffinity() bool {
	return len(pi.RequiredAntiAffinityTerms) > 0
}

// HasScoringAffinity reports whether the pod has terms that score other pods:
// required affinity (scored with the hard pod affinity weight) or preferred
// affinity or anti-affinity.
func (pi *PodInfo) HasScoringAffinity() bool {
	return len(pi.RequiredAffinityTerms) > 0 || len(pi.PreferredAffinityTerms) > 0 || len(pi.PreferredAntiAffinityTerms) > 0
}

// HasNonHostnameRequiredAntiAffinity reports whether one of the pod's
// required anti-affinity terms has a topology key other than the hostname.
func (pi *PodInfo) HasNonHostnameRequiredAntiAffinity() bool {
	for i := range pi.RequiredAntiAffinityTerms {
		if pi.RequiredAntiAffinityTerms[i].TopologyKey != v1.LabelHostname {
			return true
		}
	}
	return false
}

func newAffinityTerm(pod *v1.Pod, term *v1.PodAffinityTerm) (AffinityTerm, error) {
	selector, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("label selector: %w", err)
	}
	nsSelector, err := metav1.LabelSelectorAsSelector(term.NamespaceSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("namespace selector: %w", err)
	}
	namespaces := sets.New[string]()
	if len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
		namespaces.Insert(pod.Namespace)
	} else {
		namespaces.Insert(term.Namespaces...)
	}
	at := AffinityTerm{Namespaces: namespaces, Selector: selector, TopologyKey: term.TopologyKey, NamespaceSelector: nsSelector}
	at.Compile()
	return at, nil
}

func affinityTerms(pod *v1.Pod, terms []v1.PodAffinityTerm) ([]AffinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]AffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func weightedAffinityTerms(pod *v1.Pod, terms []v1.WeightedPodAffinityTerm) ([]WeightedAffinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]WeightedAffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			return nil, err
		}
		out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: terms[i].Weight})
	}
	return out, nil
}

// hostPorts returns the ports of containers (and sidecar init containers,
// which run for the pod's lifetime) that bind a host port.
func hostPorts(pod *v1.Pod) []v1.ContainerPort {
	var ports []v1.ContainerPort
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			continue
		}
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// PodKey is the key the cache and queue use for a pod: its UID, or
// namespace/name for pods without one (only in tests).
func PodKey(pod *v1.Pod) string {
	if pod.UID != "" {
		return string(pod.UID)
	}
	return pod.Namespace + "/" + pod.Name
}
