package replicaset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	lbls := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 2, ResourceVersion: "1"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: map[string]string{"a": "b"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
			},
		},
	}
}

type podOpt func(*corev1.Pod)

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func readySince(d time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(testNow.Add(-d))}}
	}
}
func created(d time.Duration) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(testNow.Add(-d)) }
}
func labelled(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }
func orphan() podOpt                      { return func(p *corev1.Pod) { p.OwnerReferences = nil } }

func newPod(rs *appsv1.ReplicaSet, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: rs.Namespace, UID: types.UID("uid-" + name), ResourceVersion: "1",
			Labels:          rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, controllerKind)},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	ctrl     *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	// The fake tracker does not implement generateName.
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = p.GenerateName + rand.String(5)
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(100)
	ctrl, err := New(Config{
		Client: client, ReplicaSets: factory.Apps().V1().ReplicaSets(), Pods: factory.Core().V1().Pods(),
		Recorder: rec, Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, client: client, factory: factory, ctrl: ctrl, recorder: rec}
	for _, o := range objs {
		f.addToCache(o)
	}
	return f
}

// addToCache puts obj in the informer stores without running handlers: the
// tests drive Sync directly.
func (f *fixture) addToCache(o runtime.Object) {
	switch o := o.(type) {
	case *appsv1.ReplicaSet:
		f.factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		f.factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
	}
}

func (f *fixture) actions(verb, resource string) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == "" {
			out = append(out, a)
		}
	}
	return out
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) sync(rs *appsv1.ReplicaSet) error {
	return f.ctrl.Sync(context.Background(), rs.Namespace+"/"+rs.Name)
}

func TestScaleUpCreatesPodsOnce(t *testing.T) {
	rs := newRS("web", 3)
	f := newFixture(t, rs)
	if err := f.sync(rs); err != nil {
		t.Fatal(err)
	}
	creates := f.actions("create", "pods")
	if len(creates) != 3 {
		t.Fatalf("got %d pod creates, want 3", len(creates))
	}
	list, err := f.client.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.UID != rs.UID || !*ref.BlockOwnerDeletion {
			t.Errorf("got controller ref %+v, want a blocking ref to %s", ref, rs.UID)
		}
		if !strings.HasPrefix(p.Name, "web-") || p.Labels["app"] != "web" || p.Annotations["a"] != "b" {
			t.Errorf("got pod %s labels %v annotations %v, want web- prefix and the template's", p.Name, p.Labels, p.Annotations)
		}
	}
	if adds, _ := f.ctrl.exp.Pending("ns/web"); adds != 3 {
		t.Errorf("got %d pending creations, want 3", adds)
	}
	// The informer has not seen the pods yet: a second sync must not create
	// them again.
	if err := f.sync(rs); err != nil {
		t.Fatal(err)
	}
	if got := len(f.actions("create", "pods")); got != 3 {
		t.Errorf("got %d pod creates after the second sync, want 3", got)
	}
	evs := f.events()
	if len(evs) != 3 || !strings.HasPrefix(evs[0], "Normal SuccessfulCreate Created pod: web-") {
		t.Errorf("got events %q, want 3 SuccessfulCreate", evs)
	}
	// Observing the creations releases the next sync.
	for i := range list.Items {
		p := &list.Items[i]
		f.addToCache(p)
		f.ctrl.addPod(p)
	}
	if !f.ctrl.exp.Satisfied("ns/web") {
		t.Errorf("got expectations unsatisfied after observing all creations, want satisfied")
	}
}

func TestScaleDownDeletesCheapestPods(t *testing.T) {
	rs := newRS("web", 2)
	ps := []*corev1.Pod{
		newPod(rs, "ready-old", onNode("n1"), readySince(time.Hour), created(2*time.Hour)),
		newPod(rs, "ready-new", onNode("n2"), readySince(time.Minute), created(2*time.Minute)),
		newPod(rs, "unscheduled", phase(corev1.PodPending)),
		newPod(rs, "pending", onNode("n3"), phase(corev1.PodPending)),
		newPod(rs, "running-not-ready", onNode("n4"), phase(corev1.PodRunning)),
	}
	objs := []runtime.Object{rs}
	for _, p := range ps {
		objs = append(objs, p)
	}
	f := newFixture(t, objs...)
	if err := f.sync(rs); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, a := range f.actions("delete", "pods") {
		deleted = append(deleted, a.(k8stesting.DeleteAction).GetName())
	}
	sort.Strings(deleted)
	want := []string{"pending", "running-not-ready", "unscheduled"}
	if !slices.Equal(deleted, want) {
		t.Errorf("got deleted %v, want %v", deleted, want)
	}
	if _, dels := f.ctrl.exp.Pending("ns/web"); dels != 3 {
		t.Errorf("got %d pending deletions, want 3", dels)
	}
	// A deletionTimestamp update counts as the deletion, once.
	for _, name := range want {
		for _, p := range ps {
			if p.Name == name {
				d := p.DeepCopy()
				d.ResourceVersion = "2"
				d.DeletionTimestamp = &metav1.Time{Time: testNow}
				f.ctrl.updatePod(p, d)
				f.ctrl.deletePod(d)
			}
		}
	}
	if !f.ctrl.exp.Satisfied("ns/web") {
		t.Errorf("got expectations unsatisfied after observing deletions, want satisfied")
	}
}

func TestDeletionOrder(t *testing.T) {
	rs := newRS("web", 0)
	tests := []struct {
		name string
		pods []*corev1.Pod
		want []string // full order, cheapest first
	}{
		{"unscheduled before scheduled", []*corev1.Pod{
			newPod(rs, "sched", onNode("n1"), phase(corev1.PodPending)),
			newPod(rs, "unsched", phase(corev1.PodPending)),
		}, []string{"unsched", "sched"}},
		{"pending before unknown before running", []*corev1.Pod{
			newPod(rs, "running", onNode("n1"), phase(corev1.PodRunning)),
			newPod(rs, "unknown", onNode("n1"), phase(corev1.PodUnknown)),
			newPod(rs, "pending", onNode("n1"), phase(corev1.PodPending)),
		}, []string{"pending", "unknown", "running"}},
		{"not ready before ready", []*corev1.Pod{
			newPod(rs, "ready", onNode("n1"), readySince(time.Hour)),
			newPod(rs, "notready", onNode("n2"), phase(corev1.PodRunning)),
		}, []string{"notready", "ready"}},
		{"doubled up before alone", []*corev1.Pod{
			newPod(rs, "alone", onNode("n1"), readySince(time.Hour)),
			newPod(rs, "double1", onNode("n2"), readySince(time.Hour)),
			newPod(rs, "double2", onNode("n2"), readySince(time.Hour)),
		}, []string{"double1", "double2", "alone"}},
		{"recently ready before long ready", []*corev1.Pod{
			newPod(rs, "long", onNode("n1"), readySince(10*time.Hour)),
			newPod(rs, "recent", onNode("n2"), readySince(time.Second)),
		}, []string{"recent", "long"}},
		{"newer before older", []*corev1.Pod{
			newPod(rs, "older", onNode("n1"), phase(corev1.PodPending), created(10*time.Hour)),
			newPod(rs, "newer", onNode("n2"), phase(corev1.PodPending), created(time.Second)),
		}, []string{"newer", "older"}},
		{"deletion cost", []*corev1.Pod{
			newPod(rs, "costly", onNode("n1"), readySince(time.Second), func(p *corev1.Pod) { p.Annotations = map[string]string{DeletionCostAnnotation: "100"} }),
			newPod(rs, "cheap", onNode("n2"), readySince(10*time.Hour)),
		}, []string{"cheap", "costly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rankPods(tt.pods, tt.pods, testNow)
			sort.Sort(r)
			var got []string
			for _, p := range r.pods {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAdoptAndRelease(t *testing.T) {
	rs := newRS("web", 2)
	adoptee := newPod(rs, "orphan", onNode("n1"), orphan())
	releasee := newPod(rs, "relabelled", onNode("n1"), labelled(map[string]string{"app": "other"}))
	kept := newPod(rs, "kept", onNode("n1"))
	f := newFixture(t, rs, adoptee, releasee, kept)
	if err := f.sync(rs); err != nil {
		t.Fatal(err)
	}
	patched := map[string]string{}
	for _, a := range f.actions("patch", "pods") {
		pa := a.(k8stesting.PatchAction)
		patched[pa.GetName()] = string(pa.GetPatch())
	}
	if p, ok := patched["orphan"]; !ok || !strings.Contains(p, `"uid":"uid-web"`) {
		t.Errorf("got adoption patch %q, want one adding uid-web", p)
	}
	if p, ok := patched["relabelled"]; !ok || strings.Contains(p, "uid-web") {
		t.Errorf("got release patch %q, want one dropping uid-web", p)
	}
	if _, ok := patched["kept"]; ok {
		t.Errorf("got a patch of an owned matching pod, want none")
	}
	// orphan adopted + kept = 2 = replicas: nothing to create or delete.
	if n := len(f.actions("create", "pods")) + len(f.actions("delete", "pods")); n != 0 {
		t.Errorf("got %d creates/deletes, want 0", n)
	}
	got, err := f.client.CoreV1().Pods("ns").Get(context.Background(), "orphan", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != rs.UID {
		t.Errorf("got controller %+v after adoption, want %s", ref, rs.UID)
	}
}

func TestNoAdoptionByDeletedOwner(t *testing.T) {
	rs := newRS("web", 1)
	inCache := rs.DeepCopy()
	// The API server has a new ReplicaSet of the same name.
	fresh := rs.DeepCopy()
	fresh.UID = "someone-else"
	f := newFixture(t, fresh, newPod(rs, "orphan", orphan()))
	f.addToCache(inCache)
	if err := f.sync(rs); err == nil {
		t.Errorf("got no error adopting for a replaced owner, want one")
	}
	if n := len(f.actions("patch", "pods")); n != 0 {
		t.Errorf("got %d patches, want 0", n)
	}
}

func TestStatus(t *testing.T) {
	rs := newRS("web", 3)
	rs.Spec.MinReadySeconds = 30
	f := newFixture(t, rs,
		newPod(rs, "available", onNode("n1"), readySince(time.Minute)),
		newPod(rs, "ready", onNode("n1"), readySince(10*time.Second)),
		newPod(rs, "starting", onNode("n1"), phase(corev1.PodRunning), labelled(map[string]string{"app": "web", "extra": "x"})),
		newPod(rs, "done", onNode("n1"), phase(corev1.PodSucceeded)),
	)
	if err := f.sync(rs); err != nil {
		t.Fatal(err)
	}
	ups := f.client.Actions()
	var got *appsv1.ReplicaSet
	for _, a := range ups {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			got = a.(k8stesting.UpdateAction).GetObject().(*appsv1.ReplicaSet)
		}
	}
	if got == nil {
		t.Fatal("got no status update, want one")
	}
	want := appsv1.ReplicaSetStatus{Replicas: 3, FullyLabeledReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 1, ObservedGeneration: 2}
	if got.Status.Replicas != want.Replicas || got.Status.FullyLabeledReplicas != want.FullyLabeledReplicas ||
		got.Status.ReadyReplicas != want.ReadyReplicas || got.Status.AvailableReplicas != want.AvailableReplicas ||
		got.Status.ObservedGeneration != want.ObservedGeneration {
		t.Errorf("got status %+v, want %+v", got.Status, want)
	}
	// The ready pod becomes available in 20s: a resync is scheduled.
	if n := f.ctrl.queue.Len(); n != 0 {
		t.Errorf("got %d queued keys right away, want 0 (the recheck is delayed)", n)
	}
}

func TestReplicaFailureCondition(t *testing.T) {
	rs := newRS("web", 2)
	f := newFixture(t, rs)
	var calls atomic.Int32
	f.client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		return true, nil, errors.New("quota exceeded")
	})
	if err := f.sync(rs); err == nil {
		t.Fatal("got no error from a failing create, want one")
	}
	// Slow start: the first batch of one failed, so the second pod was
	// never tried.
	if got := calls.Load(); got != 1 {
		t.Errorf("got %d create attempts, want 1", got)
	}
	if adds, _ := f.ctrl.exp.Pending("ns/web"); adds != 0 {
		t.Errorf("got %d pending creations after failures, want 0", adds)
	}
	cur, err := f.client.AppsV1().ReplicaSets("ns").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := Condition(cur.Status, appsv1.ReplicaSetReplicaFailure)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != ReasonFailedCreate || !strings.Contains(c.Message, "quota exceeded") {
		t.Errorf("got condition %+v, want ReplicaFailure True FailedCreate", c)
	}
	evs := f.events()
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning FailedCreate Error creating: quota exceeded") {
		t.Errorf("got events %q, want one FailedCreate", evs)
	}
}

func TestSlowStartBatch(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		failAt    int // 1-based call that fails; 0 none
		wantCalls int
		wantOK    int
	}{
		{"all succeed", 10, 0, 10, 10},
		{"first fails", 10, 1, 1, 0},
		{"fails in third batch", 10, 4, 7, 6},
		{"zero", 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			ok, err := slowStartBatch(tt.count, 1, func() error {
				if n := calls.Add(1); int(n) == tt.failAt {
					return fmt.Errorf("call %d", n)
				}
				return nil
			})
			if int(calls.Load()) != tt.wantCalls || ok != tt.wantOK {
				t.Errorf("got %d calls %d ok, want %d calls %d ok", calls.Load(), ok, tt.wantCalls, tt.wantOK)
			}
			if (err != nil) != (tt.failAt != 0) {
				t.Errorf("got error %v, want error %v", err, tt.failAt != 0)
			}
		})
	}
}
