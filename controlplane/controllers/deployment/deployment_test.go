package deployment

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// fixture drives the controller against a fake clientset. The informer
// stores are refreshed from the fake API before every sync, and a tiny
// ReplicaSet "controller" (settle) turns specs into status, so a rollout
// can be stepped through and checked at every step.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	ctrl     *Controller
	recorder *record.FakeRecorder
	now      time.Time
	uids     int
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	f.client = fake.NewClientset(objs...)
	// The fake tracker sets neither uids, creation timestamps nor
	// generations: do it like the API server.
	f.client.PrependReactor("create", "replicasets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rs := a.(k8stesting.CreateAction).GetObject().(*appsv1.ReplicaSet)
		f.uids++
		rs.UID = types.UID(fmt.Sprintf("rs-uid-%d", f.uids))
		rs.CreationTimestamp = metav1.NewTime(f.now.Add(time.Duration(f.uids) * time.Second))
		rs.Generation = 1
		return false, nil, nil
	})
	f.client.PrependReactor("update", "replicasets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "" {
			rs := a.(k8stesting.UpdateAction).GetObject().(*appsv1.ReplicaSet)
			rs.Generation++
		}
		return false, nil, nil
	})
	f.factory = informers.NewSharedInformerFactory(f.client, 0)
	f.recorder = record.NewFakeRecorder(1000)
	ctrl, err := New(Config{
		Client: f.client, Deployments: f.factory.Apps().V1().Deployments(),
		ReplicaSets: f.factory.Apps().V1().ReplicaSets(), Pods: f.factory.Core().V1().Pods(),
		Recorder: f.recorder, Now: func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.ctrl = ctrl
	return f
}

func (f *fixture) refresh() {
	f.t.Helper()
	ctx := context.Background()
	ds, err := f.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var objs []any
	for i := range ds.Items {
		objs = append(objs, &ds.Items[i])
	}
	f.factory.Apps().V1().Deployments().Informer().GetIndexer().Replace(objs, "")
	rss, err := f.client.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	objs = nil
	for i := range rss.Items {
		objs = append(objs, &rss.Items[i])
	}
	f.factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Replace(objs, "")
}

func (f *fixture) sync(name string) {
	f.t.Helper()
	f.refresh()
	if err := f.ctrl.Sync(context.Background(), "ns/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

func (f *fixture) deployment(name string) *appsv1.Deployment {
	f.t.Helper()
	d, err := f.client.AppsV1().Deployments("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) replicaSets() []*appsv1.ReplicaSet {
	f.t.Helper()
	l, err := f.client.AppsV1().ReplicaSets("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*appsv1.ReplicaSet
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Sort(byCreation(out))
	return out
}

// settle plays the ReplicaSet controller and the nodes: scaled-down pods
// vanish at once, new pods exist at once and become available one round
// later (when ready is set).
func (f *fixture) settle(ready bool) {
	f.t.Helper()
	for _, rs := range f.replicaSets() {
		want := replicas(rs.Spec.Replicas)
		st := rs.Status
		avail := min(st.AvailableReplicas, want)
		if ready {
			avail = min(st.Replicas, want)
		}
		rs.Status = appsv1.ReplicaSetStatus{
			Replicas: want, FullyLabeledReplicas: want, ReadyReplicas: avail, AvailableReplicas: avail,
			ObservedGeneration: rs.Generation,
		}
		if _, err := f.client.AppsV1().ReplicaSets("ns").UpdateStatus(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
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

func newDeployment(name string, n int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	lbls := map[string]string{"app": name}
	pd := int32(600)
	rhl := int32(10)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("d-" + name), Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			ProgressDeadlineSeconds: &pd,
			RevisionHistoryLimit:    &rhl,
		},
	}
}

// setImage changes d's template like kubectl set image, bumping generation.
func (f *fixture) setImage(name, image string) {
	f.t.Helper()
	d := f.deployment(name)
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Generation++
	if _, err := f.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// rollout syncs and settles until the deployment is complete, checking
// the surge and availability bounds after every step. It returns the
// number of steps.
func (f *fixture) rollout(name string, checkAvailability bool) int {
	f.t.Helper()
	for step := 1; step <= 100; step++ {
		f.sync(name)
		d := f.deployment(name)
		want := replicas(d.Spec.Replicas)
		maxTotal := want + MaxSurge(d)
		minAvail := want - MaxUnavailable(d)
		var total, avail int32
		for _, rs := range f.replicaSets() {
			total += replicas(rs.Spec.Replicas)
			avail += min(rs.Status.AvailableReplicas, replicas(rs.Spec.Replicas))
		}
		if total > maxTotal {
			f.t.Fatalf("step %d: got %d replicas in all ReplicaSets, want at most %d (maxSurge)", step, total, maxTotal)
		}
		if checkAvailability && avail < minAvail {
			f.t.Fatalf("step %d: got %d available replicas, want at least %d (maxUnavailable)", step, avail, minAvail)
		}
		if deploymentComplete(d, &d.Status) && condition(d.Status, appsv1.DeploymentProgressing).Reason == ReasonNewRSAvailable {
			return step
		}
		f.settle(true)
	}
	f.t.Fatalf("rollout of %s did not complete in 100 steps", name)
	return 0
}

func TestRollingUpdateBounds(t *testing.T) {
	tests := []struct {
		replicas           int32
		surge, unavailable intstr.IntOrString
	}{
		{10, intstr.FromString("25%"), intstr.FromString("25%")},
		{3, intstr.FromInt32(1), intstr.FromInt32(0)},
		{3, intstr.FromInt32(0), intstr.FromInt32(1)},
		{5, intstr.FromInt32(0), intstr.FromInt32(0)},
		{1, intstr.FromInt32(1), intstr.FromInt32(0)},
		{10, intstr.FromString("50%"), intstr.FromInt32(0)},
		{7, intstr.FromInt32(2), intstr.FromInt32(3)},
		{4, intstr.FromString("100%"), intstr.FromString("0%")},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d replicas surge %s unavailable %s", tt.replicas, tt.surge.String(), tt.unavailable.String())
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, newDeployment("web", tt.replicas, tt.surge, tt.unavailable))
			// The first rollout starts from nothing: availability cannot
			// hold yet.
			f.rollout("web", false)
			first := f.replicaSets()
			if len(first) != 1 || first[0].Annotations[RevisionAnnotation] != "1" {
				t.Fatalf("got %d ReplicaSets (revision %q), want 1 at revision 1", len(first), first[0].Annotations[RevisionAnnotation])
			}
			f.setImage("web", "img:2")
			f.rollout("web", true)
			rss := f.replicaSets()
			if len(rss) != 2 {
				t.Fatalf("got %d ReplicaSets, want 2", len(rss))
			}
			if got := replicas(rss[0].Spec.Replicas); got != 0 {
				t.Errorf("got old ReplicaSet at %d replicas, want 0", got)
			}
			if got := replicas(rss[1].Spec.Replicas); got != tt.replicas {
				t.Errorf("got new ReplicaSet at %d replicas, want %d", got, tt.replicas)
			}
			if got := rss[1].Annotations[RevisionAnnotation]; got != "2" {
				t.Errorf("got new revision %q, want 2", got)
			}
			d := f.deployment("web")
			if d.Annotations[RevisionAnnotation] != "2" {
				t.Errorf("got deployment revision %q, want 2", d.Annotations[RevisionAnnotation])
			}
			if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != tt.replicas || d.Status.AvailableReplicas != tt.replicas {
				t.Errorf("got status %+v, want observed generation %d and %d updated and available", d.Status, d.Generation, tt.replicas)
			}
			if c := condition(d.Status, appsv1.DeploymentAvailable); c == nil || c.Reason != ReasonMinimumReplicasAvailable {
				t.Errorf("got Available condition %+v, want MinimumReplicasAvailable", c)
			}
		})
	}
}

func TestNewReplicaSetNamingAndEvents(t *testing.T) {
	f := newFixture(t, newDeployment("web", 3, intstr.FromInt32(1), intstr.FromInt32(0)))
	f.annotate("web", ChangeCauseAnnotation, "kubectl create deployment web")
	f.sync("web")
	rss := f.replicaSets()
	if len(rss) != 1 {
		t.Fatalf("got %d ReplicaSets, want 1", len(rss))
	}
	rs := rss[0]
	d := f.deployment("web")
	hash := ComputeHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
		t.Errorf("got ReplicaSet %s labels %v selector %v, want name, labels and selector with hash %s", rs.Name, rs.Labels, rs.Spec.Selector.MatchLabels, hash)
	}
	if got := rs.Annotations[ChangeCauseAnnotation]; got != "kubectl create deployment web" {
		t.Errorf("got change-cause %q on the ReplicaSet, want it copied", got)
	}
	if rs.Annotations[DesiredReplicasAnnotation] != "3" || rs.Annotations[MaxReplicasAnnotation] != "4" {
		t.Errorf("got desired/max annotations %q/%q, want 3/4", rs.Annotations[DesiredReplicasAnnotation], rs.Annotations[MaxReplicasAnnotation])
	}
	evs := f.events()
	want := fmt.Sprintf("Normal ScalingReplicaSet Scaled up replica set web-%s from 0 to 3", hash)
	if len(evs) == 0 || evs[0] != want {
		t.Errorf("got events %q, want first %q", evs, want)
	}
	if c := condition(d.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonNewReplicaSet {
		t.Errorf("got Progressing %+v, want NewReplicaSetCreated", c)
	}
}

func (f *fixture) annotate(name, k, v string) {
	f.t.Helper()
	d := f.deployment(name)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[k] = v
	if _, err := f.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func TestComputeHash(t *testing.T) {
	d := newDeployment("web", 1, intstr.FromInt32(1), intstr.FromInt32(0))
	h1 := ComputeHash(&d.Spec.Template, nil)
	if h1 != ComputeHash(d.Spec.Template.DeepCopy(), nil) {
		t.Errorf("got different hashes for equal templates")
	}
	one := int32(1)
	if h1 == ComputeHash(&d.Spec.Template, &one) {
		t.Errorf("got the same hash with a collision count, want a different one")
	}
	d.Spec.Template.Spec.Containers[0].Image = "img:2"
	if h1 == ComputeHash(&d.Spec.Template, nil) {
		t.Errorf("got the same hash for a different image")
	}
	if strings.ContainsAny(h1, "aeiou013") {
		t.Errorf("got hash %q with characters SafeEncodeString never emits", h1)
	}
}

func TestRollbackMakesOldReplicaSetNew(t *testing.T) {
	f := newFixture(t, newDeployment("web", 3, intstr.FromInt32(1), intstr.FromInt32(0)))
	f.rollout("web", false)
	f.setImage("web", "img:2")
	f.rollout("web", true)
	// kubectl rollout undo: the template of revision 1 is written back.
	f.setImage("web", "img:1")
	f.rollout("web", true)
	rss := f.replicaSets()
	if len(rss) != 2 {
		t.Fatalf("got %d ReplicaSets, want 2 (the old one reused)", len(rss))
	}
	first, second := rss[0], rss[1]
	if first.Annotations[RevisionAnnotation] != "3" || first.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Errorf("got first ReplicaSet revision %q history %q, want 3 and 1", first.Annotations[RevisionAnnotation], first.Annotations[RevisionHistoryAnnotation])
	}
	if replicas(first.Spec.Replicas) != 3 || replicas(second.Spec.Replicas) != 0 {
		t.Errorf("got replicas %d/%d, want 3/0", replicas(first.Spec.Replicas), replicas(second.Spec.Replicas))
	}
	if got := f.deployment("web").Annotations[RevisionAnnotation]; got != "3" {
		t.Errorf("got deployment revision %q, want 3", got)
	}
}

func TestRevisionHistoryLimit(t *testing.T) {
	d := newDeployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0))
	limit := int32(1)
	d.Spec.RevisionHistoryLimit = &limit
	f := newFixture(t, d)
	f.rollout("web", false)
	for i := 2; i <= 4; i++ {
		f.setImage("web", fmt.Sprintf("img:%d", i))
		f.rollout("web", true)
		f.settle(true)
		f.sync("web") // the complete deployment cleans up
	}
	var revs []string
	for _, rs := range f.replicaSets() {
		revs = append(revs, rs.Annotations[RevisionAnnotation])
	}
	if strings.Join(revs, ",") != "3,4" {
		t.Errorf("got revisions %v kept, want [3 4] (one old plus the new)", revs)
	}
}

func TestRecreate(t *testing.T) {
	d := newDeployment("web", 3, intstr.FromInt32(0), intstr.FromInt32(0))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	f := newFixture(t, d)
	f.rollout("web", false)
	f.setImage("web", "img:2")
	// First step: old scaled to zero, no new ReplicaSet yet.
	f.sync("web")
	rss := f.replicaSets()
	if len(rss) != 1 || replicas(rss[0].Spec.Replicas) != 0 {
		t.Fatalf("got %d ReplicaSets, first at %d, want only the old one at 0", len(rss), replicas(rss[0].Spec.Replicas))
	}
	// The old pods still run (status not settled): nothing new yet.
	f.sync("web")
	if got := len(f.replicaSets()); got != 1 {
		t.Fatalf("got %d ReplicaSets while old pods run, want 1", got)
	}
	f.settle(true)
	f.rollout("web", false)
	rss = f.replicaSets()
	if len(rss) != 2 || replicas(rss[1].Spec.Replicas) != 3 {
		t.Fatalf("got %d ReplicaSets, want the new one at 3", len(rss))
	}
}

func TestPausedDoesNotRollOut(t *testing.T) {
	f := newFixture(t, newDeployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0)))
	f.rollout("web", false)
	d := f.deployment("web")
	d.Spec.Paused = true
	d.Spec.Template.Spec.Containers[0].Image = "img:2"
	d.Generation++
	if _, err := f.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.sync("web")
	f.sync("web")
	if got := len(f.replicaSets()); got != 1 {
		t.Errorf("got %d ReplicaSets while paused, want 1", got)
	}
	d = f.deployment("web")
	if c := condition(d.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonPaused || c.Status != corev1.ConditionUnknown {
		t.Errorf("got Progressing %+v, want Unknown DeploymentPaused", c)
	}
	if d.Status.ObservedGeneration != d.Generation {
		t.Errorf("got observedGeneration %d, want %d: status is updated while paused", d.Status.ObservedGeneration, d.Generation)
	}
	// Resume: the rollout happens.
	d.Spec.Paused = false
	if _, err := f.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.sync("web")
	if c := condition(f.deployment("web").Status, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonResumed && c.Reason != ReasonNewReplicaSet {
		t.Errorf("got Progressing %+v after resume, want DeploymentResumed or NewReplicaSetCreated", c)
	}
	f.rollout("web", true)
	if got := len(f.replicaSets()); got != 2 {
		t.Errorf("got %d ReplicaSets after resume, want 2", got)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	d := newDeployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0))
	pd := int32(30)
	d.Spec.ProgressDeadlineSeconds = &pd
	f := newFixture(t, d)
	f.sync("web")
	f.settle(false) // pods exist but never become available
	f.sync("web")
	f.now = f.now.Add(time.Minute)
	f.sync("web")
	c := condition(f.deployment("web").Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason != ReasonTimedOut || c.Status != corev1.ConditionFalse {
		t.Errorf("got Progressing %+v, want False ProgressDeadlineExceeded", c)
	}
	if a := condition(f.deployment("web").Status, appsv1.DeploymentAvailable); a == nil || a.Reason != ReasonMinimumReplicasUnavailable {
		t.Errorf("got Available %+v, want MinimumReplicasUnavailable", a)
	}
}

func TestProportionalScaling(t *testing.T) {
	// 10 replicas, maxSurge 3, maxUnavailable 2, mid-rollout: old at 8,
	// new at 5 (13 = 10 + 3). Scaling to 20 (max 23) adds 10
	// proportionally: old 8*23/13 = 14.15 -> +6, new 5*23/13 = 8.8 -> +4.
	d := newDeployment("web", 10, intstr.FromInt32(3), intstr.FromInt32(2))
	d.Status.Replicas = 13
	mk := func(name, image string, n int32, created int) *appsv1.ReplicaSet {
		tmpl := d.Spec.Template.DeepCopy()
		tmpl.Spec.Containers[0].Image = image
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": "web"},
				CreationTimestamp: metav1.NewTime(time.Unix(int64(created), 0)),
				OwnerReferences:   []metav1.OwnerReference{*metav1.NewControllerRef(d, controllerKind)},
				Annotations:       map[string]string{DesiredReplicasAnnotation: "10", MaxReplicasAnnotation: "13", RevisionAnnotation: fmt.Sprint(created)},
			},
			Spec: appsv1.ReplicaSetSpec{Replicas: &n, Selector: d.Spec.Selector, Template: *tmpl},
		}
	}
	d.Spec.Template.Spec.Containers[0].Image = "img:2"
	old, cur := mk("old", "img:1", 8, 1), mk("new", "img:2", 5, 2)
	twenty := int32(20)
	d.Spec.Replicas = &twenty
	f := newFixture(t, d, old, cur)
	f.sync("web")
	got := map[string]int32{}
	for _, rs := range f.replicaSets() {
		got[rs.Name] = replicas(rs.Spec.Replicas)
	}
	if got["old"] != 14 || got["new"] != 9 {
		t.Errorf("got old=%d new=%d, want old=14 new=9 (23 in all)", got["old"], got["new"])
	}
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		surge, unavailable intstr.IntOrString
		desired            int32
		wantSurge, wantU   int32
	}{
		{intstr.FromString("25%"), intstr.FromString("25%"), 10, 3, 2},
		{intstr.FromInt32(0), intstr.FromInt32(0), 5, 0, 1},
		{intstr.FromString("0%"), intstr.FromString("0%"), 5, 0, 1},
		{intstr.FromString("10%"), intstr.FromString("10%"), 5, 1, 0},
		{intstr.FromInt32(2), intstr.FromString("50%"), 3, 2, 1},
	}
	for _, tt := range tests {
		s, u, err := ResolveFenceposts(&tt.surge, &tt.unavailable, tt.desired)
		if err != nil {
			t.Fatal(err)
		}
		if s != tt.wantSurge || u != tt.wantU {
			t.Errorf("ResolveFenceposts(%s, %s, %d): got %d/%d, want %d/%d", tt.surge.String(), tt.unavailable.String(), tt.desired, s, u, tt.wantSurge, tt.wantU)
		}
	}
}

// TestNewRSWaitsForOldPodsToGo: the new ReplicaSet grows into surge freed
// by an old one's scale-down only once the old one reports its pod gone,
// so that active pods never exceed replicas + maxSurge, even for a moment.
func TestNewRSWaitsForOldPodsToGo(t *testing.T) {
	d := newDeployment("web", 6, intstr.FromInt32(2), intstr.FromInt32(1))
	rs := func(spec, status int32) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: &spec}, Status: appsv1.ReplicaSetStatus{Replicas: status}}
	}
	newRS := rs(2, 2)
	// The old ReplicaSet was scaled from 6 to 5; its sixth pod is still active.
	got, err := NewRSNewReplicas(d, []*appsv1.ReplicaSet{rs(5, 6), newRS}, newRS)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2 {
		t.Errorf("with the old pod still active: new ReplicaSet to %d, want to stay at 2", got)
	}
	// Once it reports 5, the new one takes the freed place.
	if got, _ = NewRSNewReplicas(d, []*appsv1.ReplicaSet{rs(5, 5), newRS}, newRS); got != 3 {
		t.Errorf("after the old pod went: new ReplicaSet to %d, want 3", got)
	}
}
