package controllerref

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var rsGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}

func pod(name string, lbls map[string]string, owner types.UID) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: lbls, ResourceVersion: "7"}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: owner, Controller: new(true)}}
	}
	return p
}

func TestClaim(t *testing.T) {
	match := map[string]string{"app": "web"}
	other := map[string]string{"app": "db"}
	now := metav1.Now()
	tests := []struct {
		name         string
		ownerDeleted bool
		canAdopt     error
		pods         []*corev1.Pod
		wantClaimed  []string
		wantPatched  []string
		wantErr      bool
	}{
		{"owned and matching", false, nil, []*corev1.Pod{pod("a", match, "owner")}, []string{"a"}, nil, false},
		{"orphan matching is adopted", false, nil, []*corev1.Pod{pod("a", match, "")}, []string{"a"}, []string{"a"}, false},
		{"orphan not matching is ignored", false, nil, []*corev1.Pod{pod("a", other, "")}, nil, nil, false},
		{"owned not matching is released", false, nil, []*corev1.Pod{pod("a", other, "owner")}, nil, []string{"a"}, false},
		{"other controller's pod is left", false, nil, []*corev1.Pod{pod("a", match, "someone")}, nil, nil, false},
		{"deleting owner does not adopt", true, nil, []*corev1.Pod{pod("a", match, "")}, nil, nil, false},
		{"deleting owner does not release", true, nil, []*corev1.Pod{pod("a", other, "owner")}, nil, nil, false},
		{"failed recheck blocks adoption", false, errors.New("gone"), []*corev1.Pod{pod("a", match, ""), pod("b", match, "owner")}, []string{"b"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner := &metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "owner"}
			if tt.ownerDeleted {
				owner.DeletionTimestamp = &now
			}
			var patched []string
			m := &Manager{
				Owner: owner, OwnerGVK: rsGVK,
				Selector: labels.SelectorFromSet(match),
				CanAdopt: func(context.Context) error { return tt.canAdopt },
				Patch: func(_ context.Context, ns, name string, _ []byte) error {
					patched = append(patched, name)
					return nil
				},
			}
			claimed, err := Claim(context.Background(), m, tt.pods)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			var names []string
			for _, p := range claimed {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.wantClaimed) {
				t.Errorf("got claimed %v, want %v", names, tt.wantClaimed)
			}
			if !slices.Equal(patched, tt.wantPatched) {
				t.Errorf("got patched %v, want %v", patched, tt.wantPatched)
			}
		})
	}
}

func TestPatches(t *testing.T) {
	p := pod("a", nil, "")
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "c", UID: "cm"}}
	owner := &metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "owner"}
	adopt, err := AdoptPatch(p, *metav1.NewControllerRef(owner, rsGVK))
	if err != nil {
		t.Fatal(err)
	}
	var got patchBody
	if err := json.Unmarshal(adopt, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata.UID != "uid-a" || got.Metadata.ResourceVersion != "7" {
		t.Errorf("got preconditions uid=%q rv=%q, want uid-a and 7", got.Metadata.UID, got.Metadata.ResourceVersion)
	}
	if len(got.Metadata.OwnerReferences) != 2 || got.Metadata.OwnerReferences[1].UID != "owner" || !*got.Metadata.OwnerReferences[1].Controller || !*got.Metadata.OwnerReferences[1].BlockOwnerDeletion {
		t.Errorf("got owner references %+v, want the configmap and a blocking controller ref to owner", got.Metadata.OwnerReferences)
	}
	p.OwnerReferences = got.Metadata.OwnerReferences
	release, err := ReleasePatch(p, "owner")
	if err != nil {
		t.Fatal(err)
	}
	got = patchBody{}
	if err := json.Unmarshal(release, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata.OwnerReferences) != 1 || got.Metadata.OwnerReferences[0].UID != "cm" {
		t.Errorf("got owner references %+v, want only the configmap", got.Metadata.OwnerReferences)
	}
}
