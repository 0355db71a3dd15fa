package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestCIDRSetAllocation(t *testing.T) {
	s, err := NewCIDRSet(netip.MustParsePrefix("10.244.0.0/22"), 24)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		p, err := s.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext: %v", err)
		}
		got = append(got, p.String())
	}
	want := []string{"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := s.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Errorf("got %v from a full set, want ErrFull", err)
	}
	if err := s.Release(netip.MustParsePrefix("10.244.1.0/24")); err != nil {
		t.Fatal(err)
	}
	if p, err := s.AllocateNext(); err != nil || p.String() != "10.244.1.0/24" {
		t.Errorf("got %v, %v after a release, want 10.244.1.0/24", p, err)
	}
	if s.Free() != 0 || s.popcount() != 4 {
		t.Errorf("got free=%d used=%d, want 0 and 4", s.Free(), s.popcount())
	}
}

func TestCIDRSetRoundRobinAndOccupy(t *testing.T) {
	s, err := NewCIDRSet(netip.MustParsePrefix("10.0.0.0/16"), 24)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Occupy(netip.MustParsePrefix("10.0.0.0/23")); err != nil {
		t.Fatal(err)
	}
	p, _ := s.AllocateNext()
	if p.String() != "10.0.2.0/24" {
		t.Errorf("got %s after occupying a /23 at the start, want 10.0.2.0/24", p)
	}
	if err := s.Release(netip.MustParsePrefix("10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	// A released subnet is not handed out again at once.
	p, _ = s.AllocateNext()
	if p.String() != "10.0.3.0/24" {
		t.Errorf("got %s, want 10.0.3.0/24 (round robin)", p)
	}
	if s.Free() != 256-3 {
		t.Errorf("got %d free, want %d", s.Free(), 256-3)
	}
	for _, bad := range []string{"10.1.0.0/24", "10.0.0.0/15", "fd00::/64"} {
		if err := s.Occupy(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("got no error occupying %s, want one", bad)
		}
	}
}

func TestCIDRSetIPv6(t *testing.T) {
	s, err := NewCIDRSet(netip.MustParsePrefix("fd00:10::/56"), 64)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		p, err := s.AllocateNext()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	if want := []string{"fd00:10::/64", "fd00:10:0:1::/64"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if s.Size() != 256 {
		t.Errorf("got %d subnets, want 256", s.Size())
	}
}

func TestNewCIDRSetValidation(t *testing.T) {
	tests := []struct {
		cidr string
		mask int
	}{
		{"10.0.0.0/16", 15},
		{"10.0.0.0/16", 33},
		{"10.0.0.0/8", 25},
		{"fd00::/48", 65},
	}
	for _, tt := range tests {
		if _, err := NewCIDRSet(netip.MustParsePrefix(tt.cidr), tt.mask); err == nil {
			t.Errorf("got no error for %s with mask %d, want one", tt.cidr, tt.mask)
		}
	}
	if _, err := buildSets(Options{ClusterCIDRs: []string{"10.0.0.0/16", "10.1.0.0/16"}}); err == nil {
		t.Error("got no error for two IPv4 cluster CIDRs, want one")
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func node(name, podCIDR string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	if podCIDR != "" {
		n.Spec.PodCIDR = podCIDR
		n.Spec.PodCIDRs = []string{podCIDR}
	}
	return n
}

func run(t *testing.T, client *fake.Clientset, rec *record.FakeRecorder, opts Options) func() {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory, rec, slog.New(slog.NewTextHandler(tWriter{t}, nil)), nil, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx, 2); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop := func() {
		cancel()
		<-done
		factory.Shutdown()
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cidrs returns node name -> podCIDR.
func cidrs(t *testing.T, client *fake.Clientset) map[string]string {
	t.Helper()
	list, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = n.Spec.PodCIDR
	}
	return out
}

func unique(m map[string]string) bool {
	seen := map[string]bool{}
	for _, c := range m {
		if c == "" {
			continue
		}
		if seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

func TestControllerAllocatesRecoversAndReleases(t *testing.T) {
	client := fake.NewClientset(node("n1", "10.244.0.0/24"), node("n2", ""))
	rec := record.NewFakeRecorder(100)
	opts := Options{ClusterCIDRs: []string{"10.244.0.0/22"}, NodeMaskSize: 24}
	stop := run(t, client, rec, opts)
	ctx := context.Background()

	waitFor(t, "n2's subnet", func() (bool, string) {
		m := cidrs(t, client)
		return m["n2"] == "10.244.1.0/24", fmt.Sprint(m)
	})
	for _, n := range []string{"n3", "n4"} {
		if _, err := client.CoreV1().Nodes().Create(ctx, node(n, ""), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "four nodes with subnets", func() (bool, string) {
		m := cidrs(t, client)
		return m["n3"] != "" && m["n4"] != "" && unique(m), fmt.Sprint(m)
	})

	// The range is full: n5 waits with an event and a condition.
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n5", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n5 NetworkUnavailable", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, "n5", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := networkCondition(n)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == "CIDRNotAvailable", fmt.Sprintf("%+v", c)
	})
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "CIDRNotAvailable") {
			t.Errorf("got event %q, want CIDRNotAvailable", e)
		}
	default:
		t.Error("got no event for the full range, want CIDRNotAvailable")
	}

	// n2 goes: n5 gets its subnet and the condition clears.
	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n5's subnet", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, "n5", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := networkCondition(n)
		return n.Spec.PodCIDR == "10.244.1.0/24" && c != nil && c.Status == corev1.ConditionFalse, fmt.Sprintf("%s %+v", n.Spec.PodCIDR, c)
	})

	// A restarted controller recovers the allocations: a new node after
	// freeing n3's subnet gets exactly that one, never a held one.
	stop()
	if err := client.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	before := cidrs(t, client)
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n6", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, client, rec, opts)
	waitFor(t, "n6's subnet", func() (bool, string) {
		m := cidrs(t, client)
		return m["n6"] != "" && unique(m), fmt.Sprint(m)
	})
	if got := cidrs(t, client)["n6"]; slices.Contains([]string{before["n1"], before["n4"], before["n5"]}, got) {
		t.Errorf("got %s for n6, which another node holds", got)
	}
}

func TestControllerDualStack(t *testing.T) {
	client := fake.NewClientset(node("n1", ""), node("n2", ""), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}})
	run(t, client, record.NewFakeRecorder(10), Options{ClusterCIDRs: []string{"10.244.0.0/16", "fd00:10::/56"}})
	waitFor(t, "dual-stack subnets", func() (bool, string) {
		list, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var state []string
		ok := true
		for _, n := range list.Items {
			state = append(state, fmt.Sprint(n.Name, n.Spec.PodCIDRs))
			if len(n.Spec.PodCIDRs) != 2 || n.Spec.PodCIDR != n.Spec.PodCIDRs[0] ||
				!strings.HasPrefix(n.Spec.PodCIDRs[0], "10.244.") || !strings.HasPrefix(n.Spec.PodCIDRs[1], "fd00:10:") {
				ok = false
			}
		}
		return ok, strings.Join(state, " ")
	})
}
