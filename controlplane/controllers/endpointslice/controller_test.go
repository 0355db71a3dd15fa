package endpointslice

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// fakeClient returns a fake clientset that, like the API server, fills
// metadata.name from generateName and sets a uid on create.
func fakeClient(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	var n atomic.Int64
	c.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		m, err := metaAccessor(obj)
		if err != nil {
			return false, nil, nil
		}
		if m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), n.Add(1)))
		}
		if m.GetUID() == "" {
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", n.Add(1))))
		}
		return false, nil, nil
	})
	return c
}

func metaAccessor(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object meta", obj)
	}
	return m, nil
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func startController(t *testing.T, client *fake.Clientset, opts Options) *Controller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	log := slog.New(slog.NewTextHandler(tWriter{t}, nil))
	c, err := New(client, factory, record.NewFakeRecorder(100), log, nil, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx, 2); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return c
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sliceState summarises a Service's managed slices as "pod:ready" lists.
func sliceState(t *testing.T, client *fake.Clientset, svc string) (int, map[string]bool) {
	t.Helper()
	list, err := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: ControllerName}).String(),
	})
	if err != nil {
		t.Fatalf("list slices: %v", err)
	}
	eps := map[string]bool{}
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			eps[ep.TargetRef.Name] = *ep.Conditions.Ready
		}
	}
	return len(list.Items), eps
}

func TestControllerFollowsPods(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "z1"}}}
	svc := service("web")
	client := fakeClient(node, svc, pod("a", "10.0.0.1"), pod("b", "10.0.0.2", notReady))
	startController(t, client, Options{})
	ctx := context.Background()

	waitFor(t, "a ready and b not ready", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		return n == 1 && len(eps) == 2 && eps["a"] && !eps["b"], fmt.Sprint(n, eps)
	})
	list, _ := client.DiscoveryV1().EndpointSlices("ns").List(ctx, metav1.ListOptions{})
	if z := list.Items[0].Endpoints[0].Zone; z == nil || *z != "z1" {
		t.Errorf("got zone %v, want z1", z)
	}

	// b becomes ready.
	b := pod("b", "10.0.0.2")
	if _, err := client.CoreV1().Pods("ns").UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b ready", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		return n == 1 && eps["a"] && eps["b"], fmt.Sprint(n, eps)
	})

	// a goes away.
	if err := client.CoreV1().Pods("ns").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "only b", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		_, hasA := eps["a"]
		return n == 1 && !hasA && eps["b"], fmt.Sprint(n, eps)
	})

	// b's labels stop matching: the slice empties to a placeholder.
	b = pod("b", "10.0.0.2")
	b.Labels = map[string]string{"app": "other"}
	if _, err := client.CoreV1().Pods("ns").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a placeholder", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		return n == 1 && len(eps) == 0, fmt.Sprint(n, eps)
	})

	// The Service goes: its slices go too.
	if err := client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no slices", func() (bool, string) {
		n, _ := sliceState(t, client, "web")
		return n == 0, fmt.Sprint(n)
	})
}

func TestControllerLeavesSelectorlessServicesAlone(t *testing.T) {
	manual := service("manual", func(s *corev1.Service) { s.Spec.Selector = nil })
	userSlice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "manual-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: "manual", discoveryv1.LabelManagedBy: "someone-else",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.1"}}},
	}
	// A Service with a selector in the same namespace shows the controller
	// is running when its slice appears.
	client := fakeClient(manual, userSlice, service("web"), pod("a", "10.0.0.1"))
	startController(t, client, Options{})
	waitFor(t, "web's slice", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		return n == 1 && eps["a"], fmt.Sprint(n, eps)
	})
	list, err := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=manual",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "manual-1" || len(list.Items[0].Endpoints) != 1 {
		t.Errorf("got %d slices for the selectorless Service, want the user's one untouched", len(list.Items))
	}
}

func TestControllerSplitsAtMaxEndpoints(t *testing.T) {
	objs := []runtime.Object{service("web")}
	for _, p := range manyPods(25) {
		objs = append(objs, p)
	}
	client := fakeClient(objs...)
	startController(t, client, Options{MaxEndpointsPerSlice: 10})
	waitFor(t, "3 slices with 25 endpoints", func() (bool, string) {
		n, eps := sliceState(t, client, "web")
		return n == 3 && len(eps) == 25, fmt.Sprint(n, len(eps))
	})
}

func TestNewRejectsBadMax(t *testing.T) {
	client := fakeClient()
	factory := informers.NewSharedInformerFactory(client, 0)
	for _, max := range []int{-1, 1001} {
		if _, err := New(client, factory, nil, nil, nil, Options{MaxEndpointsPerSlice: max}); err == nil {
			t.Errorf("got no error for max endpoints per slice %d, want one", max)
		}
	}
}
