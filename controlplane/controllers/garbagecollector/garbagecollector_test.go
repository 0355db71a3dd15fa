package garbagecollector

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

func ref(uid string, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "o-" + uid, UID: types.UID(uid), BlockOwnerDeletion: &block}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name          string
		refs          []metav1.OwnerReference
		states        map[types.UID]ownerState
		finalizers    []string
		hasDependents bool
		depDeleting   bool
		want          actionKind
		wantPolicy    metav1.DeletionPropagation
		wantRefs      []types.UID
		wantUnblocked []types.UID
	}{
		{name: "no owners", want: actNone},
		{name: "solid owner", refs: []metav1.OwnerReference{ref("a", true)}, states: map[types.UID]ownerState{"a": ownerSolid}, want: actNone},
		{name: "dangling owner: background delete", refs: []metav1.OwnerReference{ref("a", true)},
			states: map[types.UID]ownerState{"a": ownerDangling}, want: actDelete, wantPolicy: metav1.DeletePropagationBackground},
		{name: "dangling owner, orphan finalizer", refs: []metav1.OwnerReference{ref("a", true)}, finalizers: []string{metav1.FinalizerOrphanDependents},
			states: map[types.UID]ownerState{"a": ownerDangling}, want: actDelete, wantPolicy: metav1.DeletePropagationOrphan},
		{name: "dangling owner, foreground finalizer", refs: []metav1.OwnerReference{ref("a", true)}, finalizers: []string{metav1.FinalizerDeleteDependents},
			states: map[types.UID]ownerState{"a": ownerDangling}, want: actDelete, wantPolicy: metav1.DeletePropagationForeground},
		{name: "one solid one dangling: drop the dangling ref", refs: []metav1.OwnerReference{ref("a", true), ref("b", true)},
			states: map[types.UID]ownerState{"a": ownerSolid, "b": ownerDangling}, want: actPatchRefs, wantRefs: []types.UID{"a"}},
		{name: "solid and waiting: unblock the waiting owner", refs: []metav1.OwnerReference{ref("a", true), ref("b", true)},
			states: map[types.UID]ownerState{"a": ownerSolid, "b": ownerWaiting}, want: actPatchRefs, wantRefs: []types.UID{"a", "b"}, wantUnblocked: []types.UID{"b"}},
		{name: "waiting owner, leaf: background delete", refs: []metav1.OwnerReference{ref("a", true)},
			states: map[types.UID]ownerState{"a": ownerWaiting}, want: actDelete, wantPolicy: metav1.DeletePropagationBackground},
		{name: "waiting owner, has dependents: foreground delete", refs: []metav1.OwnerReference{ref("a", true)}, hasDependents: true,
			states: map[types.UID]ownerState{"a": ownerWaiting}, want: actDelete, wantPolicy: metav1.DeletePropagationForeground},
		{name: "waiting owner, cycle: unblock", refs: []metav1.OwnerReference{ref("a", true)}, hasDependents: true, depDeleting: true,
			states: map[types.UID]ownerState{"a": ownerWaiting}, want: actPatchRefs, wantRefs: []types.UID{"a"}, wantUnblocked: []types.UID{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(tt.refs, tt.states, tt.finalizers, tt.hasDependents, tt.depDeleting)
			if got.kind != tt.want {
				t.Fatalf("got action %d, want %d", got.kind, tt.want)
			}
			if got.kind == actDelete && got.policy != tt.wantPolicy {
				t.Errorf("got policy %s, want %s", got.policy, tt.wantPolicy)
			}
			if got.kind != actPatchRefs {
				return
			}
			var uids []types.UID
			for _, r := range got.refs {
				uids = append(uids, r.UID)
				unblocked := r.BlockOwnerDeletion != nil && !*r.BlockOwnerDeletion
				want := false
				for _, u := range tt.wantUnblocked {
					want = want || u == r.UID
				}
				if unblocked != want {
					t.Errorf("ref %s: got unblocked %v, want %v", r.UID, unblocked, want)
				}
			}
			if len(uids) != len(tt.wantRefs) {
				t.Fatalf("got refs %v, want %v", uids, tt.wantRefs)
			}
			for i := range uids {
				if uids[i] != tt.wantRefs[i] {
					t.Errorf("got refs %v, want %v", uids, tt.wantRefs)
				}
			}
		})
	}
}

// newTestController returns a collector with queues but no clients, for
// tests of the graph builder, which only touches the graph and the queues.
func newTestController(t *testing.T) *Controller {
	t.Helper()
	if _, err := New(Config{}); err == nil {
		t.Fatalf("got no error for missing clients, want one")
	}
	return &Controller{
		graph:    newGraph(),
		absent:   newUIDCache(100),
		changes:  workqueue.NewTyped[*event](),
		toDelete: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[*node]()),
		toOrphan: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[*node]()),
	}
}

func meta(uid, name string, refs ...metav1.OwnerReference) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid), OwnerReferences: refs}}
}

var podGVK = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
var rsGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}

func drain(c *Controller) (del, orphan []string) {
	for c.toDelete.Len() > 0 {
		n, _ := c.toDelete.Get()
		del = append(del, n.id.Name)
		c.toDelete.Done(n)
		c.toDelete.Forget(n)
	}
	for c.toOrphan.Len() > 0 {
		n, _ := c.toOrphan.Get()
		orphan = append(orphan, n.id.Name)
		c.toOrphan.Done(n)
		c.toOrphan.Forget(n)
	}
	return del, orphan
}

func TestGraphBuilder(t *testing.T) {
	c := newTestController(t)
	rs := meta("rs", "web")
	pod := meta("p1", "web-1", ref("rs", true))

	// A dependent seen before its owner creates a virtual owner, which is
	// queued for verification.
	c.apply(&event{typ: addEvent, gvk: podGVK, obj: pod})
	del, _ := drain(c)
	if len(del) != 1 || del[0] != "o-rs" {
		t.Fatalf("got queued %v, want the virtual owner o-rs", del)
	}
	if n := c.graph.get("rs"); n == nil || !n.virtual || len(n.dependents) != 1 {
		t.Fatalf("got owner node %+v, want a virtual node with one dependent", n)
	}
	// The owner observed: no longer virtual, nothing queued.
	c.apply(&event{typ: addEvent, gvk: rsGVK, obj: rs})
	if n := c.graph.get("rs"); n.virtual || n.id.Name != "web" {
		t.Errorf("got owner %+v, want observed web", n.id)
	}
	if del, _ := drain(c); len(del) != 0 {
		t.Errorf("got queued %v, want nothing", del)
	}

	// Foreground deletion of the owner queues its dependents and itself.
	now := metav1.Now()
	deleting := rs.DeepCopy()
	deleting.DeletionTimestamp = &now
	deleting.Finalizers = []string{metav1.FinalizerDeleteDependents}
	c.apply(&event{typ: updateEvent, gvk: rsGVK, obj: deleting, old: rs})
	del, _ = drain(c)
	if len(del) != 2 || del[0] != "web-1" || del[1] != "web" {
		t.Errorf("got queued %v, want [web-1 web]", del)
	}
	if s := c.graph.snapshot(c.graph.get("rs")); !s.deletingDependents || len(s.blocking) != 1 {
		t.Errorf("got deletingDependents %v with %d blocking, want true with 1", s.deletingDependents, len(s.blocking))
	}
	// The pod goes: the waiting owner is woken.
	c.apply(&event{typ: deleteEvent, gvk: podGVK, obj: pod})
	del, _ = drain(c)
	if len(del) != 1 || del[0] != "web" {
		t.Errorf("got queued %v, want [web]", del)
	}
	if s := c.graph.snapshot(c.graph.get("rs")); len(s.blocking) != 0 {
		t.Errorf("got %d blocking dependents, want 0", len(s.blocking))
	}

	// Orphan deletion of another owner queues it for orphaning.
	rs2 := meta("rs2", "api")
	c.apply(&event{typ: addEvent, gvk: rsGVK, obj: rs2})
	c.apply(&event{typ: addEvent, gvk: podGVK, obj: meta("p2", "api-1", ref("rs2", true))})
	orphaning := rs2.DeepCopy()
	orphaning.DeletionTimestamp = &now
	orphaning.Finalizers = []string{metav1.FinalizerOrphanDependents}
	c.apply(&event{typ: updateEvent, gvk: rsGVK, obj: orphaning, old: rs2})
	if _, orphan := drain(c); len(orphan) != 1 || orphan[0] != "api" {
		t.Errorf("got orphan queue %v, want [api]", orphan)
	}
	// Background: the owner vanishes, its dependents are queued.
	c.apply(&event{typ: deleteEvent, gvk: rsGVK, obj: rs2})
	if del, _ := drain(c); len(del) != 1 || del[0] != "api-1" {
		t.Errorf("got queued %v, want [api-1]", del)
	}
	// A new dependent of an owner known to be gone is queued at once.
	c.apply(&event{typ: addEvent, gvk: podGVK, obj: meta("p3", "api-2", ref("rs2", true))})
	if del, _ := drain(c); len(del) != 2 || del[0] != "api-2" {
		t.Errorf("got queued %v, want api-2 and the virtual owner", del)
	}
}
