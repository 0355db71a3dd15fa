package framework

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestAffinityTermMatches(t *testing.T) {
	owner := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a"}}
	pod := func(ns string, l map[string]string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: l}}
	}
	sel := func(ml map[string]string, exprs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: ml, MatchExpressions: exprs}
	}
	web := map[string]string{"app": "web", "tier": "front"}
	tests := []struct {
		name     string
		term     v1.PodAffinityTerm
		pod      *v1.Pod
		nsLabels labels.Set
		want     bool
	}{
		{"own namespace by default", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"})}, pod("a", web), nil, true},
		{"other namespace by default", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"})}, pod("b", web), nil, false},
		{"named namespaces", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"}), Namespaces: []string{"b", "c"}}, pod("b", web), nil, true},
		{"named namespaces exclude the own one", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"}), Namespaces: []string{"b"}}, pod("a", web), nil, false},
		{"label value differs", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "db"})}, pod("a", web), nil, false},
		{"label missing", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"zone": "x"})}, pod("a", web), nil, false},
		{"two labels", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web", "tier": "front"})}, pod("a", web), nil, true},
		{"In with one value", v1.PodAffinityTerm{LabelSelector: sel(nil, metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}})}, pod("a", web), nil, true},
		{"In with two values", v1.PodAffinityTerm{LabelSelector: sel(nil, metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"db", "web"}})}, pod("a", web), nil, true},
		{"NotIn", v1.PodAffinityTerm{LabelSelector: sel(nil, metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}})}, pod("a", web), nil, false},
		{"Exists", v1.PodAffinityTerm{LabelSelector: sel(nil, metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpExists})}, pod("a", web), nil, true},
		{"empty selector selects all", v1.PodAffinityTerm{LabelSelector: sel(nil)}, pod("a", nil), nil, true},
		{"nil selector selects none", v1.PodAffinityTerm{}, pod("a", web), nil, false},
		{"empty namespace selector selects every namespace", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"}), NamespaceSelector: sel(nil)}, pod("z", web), nil, true},
		{"namespace selector", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"}), NamespaceSelector: sel(map[string]string{"team": "x"})}, pod("z", web), labels.Set{"team": "x"}, true},
		{"namespace selector mismatch", v1.PodAffinityTerm{LabelSelector: sel(map[string]string{"app": "web"}), NamespaceSelector: sel(map[string]string{"team": "x"})}, pod("z", web), labels.Set{"team": "y"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term, err := newAffinityTerm(owner, &tt.term)
			if err != nil {
				t.Fatal(err)
			}
			if got := term.Matches(tt.pod, tt.nsLabels); got != tt.want {
				t.Errorf("compiled: got %v, want %v", got, tt.want)
			}
			term.fast = nil
			if got := term.Matches(tt.pod, tt.nsLabels); got != tt.want {
				t.Errorf("generic: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCycleState(t *testing.T) {
	s := NewCycleState()
	if _, err := s.Read("a"); err == nil {
		t.Errorf("reading a missing key: got no error, want one")
	}
	s.Write("a", stateInt(1))
	s.Write("b", stateInt(2))
	s.Write("a", stateInt(3))
	c := s.Clone()
	s.Delete("a")
	for _, tc := range []struct {
		state *CycleState
		key   StateKey
		want  StateData
	}{{s, "b", stateInt(2)}, {c, "a", stateInt(3)}, {c, "b", stateInt(2)}} {
		if got, err := tc.state.Read(tc.key); err != nil || got != tc.want {
			t.Errorf("read %s: got %v (%v), want %v", tc.key, got, err, tc.want)
		}
	}
	if _, err := s.Read("a"); err == nil {
		t.Errorf("reading a deleted key: got no error, want one")
	}
}

type stateInt int

func (s stateInt) Clone() StateData { return s }
