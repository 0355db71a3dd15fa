package cache

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	st "github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

type res = map[v1.ResourceName]string

func newNode(name string) *v1.Node {
	return st.MakeNode().Name(name).Capacity(res{"cpu": "4", "memory": "8Gi", "pods": "110"}).Obj()
}

func pod(name, node, cpu string) *v1.Pod {
	return st.MakePod().Name(name).Node(node).Req(res{"cpu": cpu}).Obj()
}

// requested returns the snapshot's requested millicores and pod count on
// a node.
func requested(t *testing.T, c *Cache, node string) (int64, int) {
	t.Helper()
	s := NewEmptySnapshot()
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	ni, err := s.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	return ni.Requested.MilliCPU, len(ni.Pods)
}

func TestAssumeForgetConfirm(t *testing.T) {
	c := New(st.TestLogger(t), time.Minute)
	c.AddNode(newNode("n1"))
	c.AddNode(newNode("n2"))
	p := pod("p", "n1", "1")

	if err := c.AssumePod(framework.NewPodInfo(p)); err != nil {
		t.Fatal(err)
	}
	if !c.IsAssumedPod(p) {
		t.Errorf("got not assumed after AssumePod, want assumed")
	}
	if cpu, n := requested(t, c, "n1"); cpu != 1000 || n != 1 {
		t.Errorf("assumed: got %dm in %d pods on n1, want 1000m in 1", cpu, n)
	}
	if err := c.AssumePod(framework.NewPodInfo(p)); err == nil {
		t.Errorf("assuming twice: got no error, want one")
	}

	if err := c.ForgetPod(p); err != nil {
		t.Fatal(err)
	}
	if cpu, n := requested(t, c, "n1"); cpu != 0 || n != 0 {
		t.Errorf("forgotten: got %dm in %d pods on n1, want none", cpu, n)
	}
	if err := c.ForgetPod(p); err == nil {
		t.Errorf("forgetting a pod that is not assumed: got no error, want one")
	}

	// Assume again and confirm through the informer.
	if err := c.AssumePod(framework.NewPodInfo(p)); err != nil {
		t.Fatal(err)
	}
	c.FinishBinding(p)
	bound := p.DeepCopy()
	bound.ResourceVersion = "2"
	if err := c.AddPod(bound); err != nil {
		t.Fatal(err)
	}
	if c.IsAssumedPod(p) {
		t.Errorf("confirmed pod is still assumed")
	}
	if cpu, n := requested(t, c, "n1"); cpu != 1000 || n != 1 {
		t.Errorf("confirmed: got %dm in %d pods on n1, want 1000m in 1", cpu, n)
	}
	got, err := c.GetPod(p)
	if err != nil || got.ResourceVersion != "2" {
		t.Errorf("got cached pod version %v (err %v), want the informer's 2", got, err)
	}
	if err := c.ForgetPod(p); err == nil {
		t.Errorf("forgetting a confirmed pod: got no error, want one")
	}
	if err := c.RemovePod(bound); err != nil {
		t.Fatal(err)
	}
	if cpu, n := requested(t, c, "n1"); cpu != 0 || n != 0 {
		t.Errorf("removed: got %dm in %d pods on n1, want none", cpu, n)
	}
}

func TestConfirmOnAnotherNode(t *testing.T) {
	c := New(st.TestLogger(t), time.Minute)
	c.AddNode(newNode("n1"))
	c.AddNode(newNode("n2"))
	p := pod("p", "n1", "1")
	if err := c.AssumePod(framework.NewPodInfo(p)); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPod(pod("p", "n2", "1")); err != nil {
		t.Fatal(err)
	}
	if cpu, _ := requested(t, c, "n1"); cpu != 0 {
		t.Errorf("n1: got %dm, want 0", cpu)
	}
	if cpu, _ := requested(t, c, "n2"); cpu != 1000 {
		t.Errorf("n2: got %dm, want 1000m", cpu)
	}
}

func TestAssumedPodsExpire(t *testing.T) {
	tests := []struct {
		name          string
		finishBinding bool
		wait          time.Duration
		wantAssumed   bool
	}{
		{"binding not finished never expires", false, time.Hour, true},
		{"within the TTL", true, 30 * time.Second, true},
		{"after the TTL", true, 2 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			c := New(st.TestLogger(t), time.Minute)
			c.SetClock(func() time.Time { return now })
			c.AddNode(newNode("n1"))
			p := pod("p", "n1", "1")
			if err := c.AssumePod(framework.NewPodInfo(p)); err != nil {
				t.Fatal(err)
			}
			if tt.finishBinding {
				c.FinishBinding(p)
			}
			now = now.Add(tt.wait)
			c.CleanupAssumedPods()
			if got := c.IsAssumedPod(p); got != tt.wantAssumed {
				t.Errorf("got assumed %v, want %v", got, tt.wantAssumed)
			}
			wantCPU := int64(0)
			if tt.wantAssumed {
				wantCPU = 1000
			}
			if cpu, _ := requested(t, c, "n1"); cpu != wantCPU {
				t.Errorf("got %dm requested, want %dm", cpu, wantCPU)
			}
		})
	}
}

func TestUpdateSnapshotCopiesOnlyChanges(t *testing.T) {
	c := New(st.TestLogger(t), 0)
	for _, n := range []string{"a", "b", "c"} {
		c.AddNode(newNode(n))
	}
	s := NewEmptySnapshot()
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	if got := s.NumNodes(); got != 3 {
		t.Fatalf("got %d nodes, want 3", got)
	}
	version := s.ListVersion()
	aBefore, _ := s.Get("a")
	bBefore, _ := s.Get("b")
	bGen := bBefore.Generation

	if err := c.AddPod(pod("p", "a", "500m")); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	aAfter, _ := s.Get("a")
	bAfter, _ := s.Get("b")
	if aAfter != aBefore || bAfter != bBefore {
		t.Errorf("got NodeInfos replaced, want them updated in place")
	}
	if aAfter.Requested.MilliCPU != 500 {
		t.Errorf("a: got %dm, want 500m", aAfter.Requested.MilliCPU)
	}
	if bAfter.Generation != bGen {
		t.Errorf("b: got generation %d, want unchanged %d", bAfter.Generation, bGen)
	}
	if s.ListVersion() != version {
		t.Errorf("got list version %d after a pod change, want unchanged %d", s.ListVersion(), version)
	}

	// Node removal and addition rebuild the list.
	if err := c.RemoveNode(newNode("c")); err != nil {
		t.Fatal(err)
	}
	c.AddNode(newNode("d"))
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	if s.ListVersion() == version {
		t.Errorf("got list version unchanged after node changes, want a new one")
	}
	var names []string
	for _, ni := range s.List() {
		names = append(names, ni.Node().Name)
	}
	if len(names) != 3 || s.nodeInfoMap["c"] != nil {
		t.Errorf("got nodes %v, want a, b, d", names)
	}
}

func TestRemovedNodeKeepsPodsUntilTheyGo(t *testing.T) {
	c := New(st.TestLogger(t), 0)
	c.AddNode(newNode("a"))
	p := pod("p", "a", "1")
	if err := c.AddPod(p); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNode(newNode("a")); err != nil {
		t.Fatal(err)
	}
	s := NewEmptySnapshot()
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	if s.NumNodes() != 0 {
		t.Errorf("got %d nodes in the snapshot, want 0", s.NumNodes())
	}
	if err := c.RemovePod(p); err != nil {
		t.Errorf("removing the pod of a removed node: %v", err)
	}
	if nodes, pods, _ := c.Counts(); nodes != 0 || pods != 0 {
		t.Errorf("got %d nodes and %d pods, want none", nodes, pods)
	}
}

func TestSnapshotAffinityLists(t *testing.T) {
	c := New(st.TestLogger(t), 0)
	for _, n := range []string{"a", "b", "c"} {
		c.AddNode(newNode(n))
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	pods := []*v1.Pod{
		st.MakePod().Name("anti").Node("a").PodAffinity(st.AntiAffinity, v1.LabelHostname, sel).Obj(),
		st.MakePod().Name("zone-anti").Node("b").PodAffinity(st.AntiAffinity, v1.LabelTopologyZone, sel).Obj(),
		st.MakePod().Name("pref").Node("c").PreferredPodAffinity(st.Affinity, 1, v1.LabelHostname, sel).Obj(),
	}
	for _, p := range pods {
		if err := c.AddPod(p); err != nil {
			t.Fatal(err)
		}
	}
	s := NewEmptySnapshot()
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	names := func(l []*framework.NodeInfo) map[string]bool {
		m := map[string]bool{}
		for _, ni := range l {
			m[ni.Node().Name] = true
		}
		return m
	}
	checks := []struct {
		name string
		got  map[string]bool
		want []string
	}{
		{"with affinity", names(s.HavePodsWithAffinityList()), []string{"a", "b", "c"}},
		{"with required anti-affinity", names(s.HavePodsWithRequiredAntiAffinityList()), []string{"a", "b"}},
		{"with non-hostname anti-affinity", names(s.HavePodsWithNonHostnameRequiredAntiAffinityList()), []string{"b"}},
		{"with scoring affinity", names(s.HavePodsWithScoringAffinityList()), []string{"c"}},
	}
	for _, ch := range checks {
		if len(ch.got) != len(ch.want) {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
			continue
		}
		for _, n := range ch.want {
			if !ch.got[n] {
				t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
			}
		}
	}
	if err := c.RemovePod(pods[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	if got := names(s.HavePodsWithRequiredAntiAffinityList()); len(got) != 1 || !got["b"] {
		t.Errorf("after removing the pod on a: got %v, want only b", got)
	}
}

func TestNodeTreeInterleavesZones(t *testing.T) {
	tree := newNodeTree()
	for _, n := range []struct{ name, zone string }{{"a1", "a"}, {"a2", "a"}, {"a3", "a"}, {"b1", "b"}, {"c1", "c"}, {"c2", "c"}} {
		tree.addNode(st.MakeNode().Name(n.name).Label(v1.LabelTopologyZone, n.zone).Obj())
	}
	want := []string{"a1", "b1", "c1", "a2", "c2", "a3"}
	got := tree.list()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
