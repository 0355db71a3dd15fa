package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func service(mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": "web"},
			ClusterIP:  "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")},
				{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9100)},
			},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func pod(name, ip string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: "node-a",
			Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
				{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			}}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func terminating(p *corev1.Pod) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

// describe renders subsets compactly: "[ports] ready=ips notready=ips; ...".
func describe(subsets []corev1.EndpointSubset) string {
	var parts []string
	for _, s := range subsets {
		var ports, ready, notReady []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
		}
		for _, a := range s.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range s.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
		parts = append(parts, fmt.Sprintf("[%s] ready=%s notready=%s", strings.Join(ports, ","), strings.Join(ready, ","), strings.Join(notReady, ",")))
	}
	return strings.Join(parts, "; ")
}

func TestDesiredSubsets(t *testing.T) {
	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want string
	}{
		{
			"ready and not ready share a port set",
			service(),
			[]*corev1.Pod{pod("b", "10.0.0.2", notReady), pod("a", "10.0.0.1"), pod("c", "10.0.0.3")},
			"[http:8080,metrics:9100] ready=10.0.0.1,10.0.0.3 notready=10.0.0.2",
		},
		{
			"terminating pods are left out",
			service(),
			[]*corev1.Pod{pod("a", "10.0.0.1"), pod("b", "10.0.0.2", terminating)},
			"[http:8080,metrics:9100] ready=10.0.0.1 notready=",
		},
		{
			"publishNotReadyAddresses includes everything as ready",
			service(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }),
			[]*corev1.Pod{pod("a", "10.0.0.1", notReady), pod("b", "10.0.0.2", terminating)},
			"[http:8080,metrics:9100] ready=10.0.0.1,10.0.0.2 notready=",
		},
		{
			"different named port numbers make different subsets",
			service(),
			[]*corev1.Pod{pod("a", "10.0.0.1"), pod("b", "10.0.0.2", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 9090 })},
			"[http:8080,metrics:9100] ready=10.0.0.1 notready=; [http:9090,metrics:9100] ready=10.0.0.2 notready=",
		},
		{
			"a pod without the named port keeps its other ports",
			service(),
			[]*corev1.Pod{pod("a", "10.0.0.1", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil })},
			"[metrics:9100] ready=10.0.0.1 notready=",
		},
		{
			"headless without ports",
			service(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil }),
			[]*corev1.Pod{pod("a", "10.0.0.1")},
			"[] ready=10.0.0.1 notready=",
		},
		{
			"no IP yet",
			service(),
			[]*corev1.Pod{pod("a", "")},
			"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(desiredSubsets(tt.svc, tt.pods)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func addresses(prefix string, n int) []corev1.EndpointAddress {
	out := make([]corev1.EndpointAddress, n)
	for i := range out {
		out[i].IP = fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)
	}
	return out
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name                    string
		subsets                 []corev1.EndpointSubset
		wantCut                 bool
		wantReady, wantNotReady []int
	}{
		{"under capacity", []corev1.EndpointSubset{{Addresses: addresses("10.0", 600), NotReadyAddresses: addresses("10.1", 400)}}, false, []int{600}, []int{400}},
		// 600 ready leave a budget of 400 for 800 not ready: 600 -> 300,
		// 200 -> 100.
		{"not ready cut first in proportion", []corev1.EndpointSubset{
			{Addresses: addresses("10.0", 300), NotReadyAddresses: addresses("10.1", 600)},
			{Addresses: addresses("10.2", 300), NotReadyAddresses: addresses("10.3", 200)},
		}, true, []int{300, 300}, []int{300, 100}},
		// 1200 ready over 1000: 800 -> ceil(666.7) = 667, 400 -> the 333
		// left; not-ready addresses all go.
		{"ready over capacity cut in proportion", []corev1.EndpointSubset{
			{Addresses: addresses("10.0", 800), NotReadyAddresses: addresses("10.1", 10)},
			{Addresses: addresses("10.2", 400)},
		}, true, []int{667, 333}, []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cut := truncate(tt.subsets)
			var ready, notReady []int
			total := 0
			for _, s := range tt.subsets {
				ready = append(ready, len(s.Addresses))
				notReady = append(notReady, len(s.NotReadyAddresses))
				total += len(s.Addresses) + len(s.NotReadyAddresses)
			}
			if cut != tt.wantCut || fmt.Sprint(ready) != fmt.Sprint(tt.wantReady) || fmt.Sprint(notReady) != fmt.Sprint(tt.wantNotReady) {
				t.Errorf("got cut=%v ready=%v notready=%v, want %v %v %v", cut, ready, notReady, tt.wantCut, tt.wantReady, tt.wantNotReady)
			}
			if total > MaxCapacity {
				t.Errorf("got %d addresses, want at most %d", total, MaxCapacity)
			}
		})
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func start(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory, record.NewFakeRecorder(100), slog.New(slog.NewTextHandler(tWriter{t}, nil)), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return client
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

func TestControllerWritesEndpoints(t *testing.T) {
	client := start(t, service(), pod("a", "10.0.0.1"), pod("b", "10.0.0.2"))
	ctx := context.Background()
	get := func() (*corev1.Endpoints, string) {
		ep, err := client.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return nil, err.Error()
		}
		return ep, describe(ep.Subsets)
	}
	waitFor(t, "two ready addresses", func() (bool, string) {
		_, d := get()
		return d == "[http:8080,metrics:9100] ready=10.0.0.1,10.0.0.2 notready=", d
	})
	ep, _ := get()
	if ep.Labels["team"] != "a" || ep.Labels[LabelManagedBy] != ControllerName {
		t.Errorf("got labels %v, want the Service's plus %s=%s", ep.Labels, LabelManagedBy, ControllerName)
	}
	if a := ep.Subsets[0].Addresses[0]; a.TargetRef == nil || a.TargetRef.Name != "a" || a.NodeName == nil || *a.NodeName != "node-a" {
		t.Errorf("got address %+v, want targetRef pod a on node-a", a)
	}

	if _, err := client.CoreV1().Pods("ns").UpdateStatus(ctx, pod("b", "10.0.0.2", notReady), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b not ready", func() (bool, string) {
		_, d := get()
		return d == "[http:8080,metrics:9100] ready=10.0.0.1 notready=10.0.0.2", d
	})

	if err := client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "endpoints deleted", func() (bool, string) {
		_, err := client.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

func TestControllerOverCapacity(t *testing.T) {
	objs := []runtime.Object{service(func(s *corev1.Service) { s.Spec.Ports = s.Spec.Ports[:1] })}
	for i := range MaxCapacity + 5 {
		objs = append(objs, pod(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)))
	}
	client := start(t, objs...)
	waitFor(t, "a truncated object", func() (bool, string) {
		ep, err := client.CoreV1().Endpoints("ns").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range ep.Subsets {
			n += len(s.Addresses) + len(s.NotReadyAddresses)
		}
		ann := ep.Annotations[corev1.EndpointsOverCapacity]
		return n == MaxCapacity && ann == "truncated", fmt.Sprintf("%d addresses, annotation %q", n, ann)
	})
}

func TestControllerIgnoresSelectorless(t *testing.T) {
	manual := service(func(s *corev1.Service) { s.Name = "manual"; s.Spec.Selector = nil })
	userEP := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "manual"},
		Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}}},
	}
	client := start(t, manual, userEP, service(), pod("a", "10.0.0.1"))
	waitFor(t, "web's endpoints", func() (bool, string) {
		_, err := client.CoreV1().Endpoints("ns").Get(context.Background(), "web", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	ep, err := client.CoreV1().Endpoints("ns").Get(context.Background(), "manual", metav1.GetOptions{})
	if err != nil || describe(ep.Subsets) != "[] ready=192.0.2.1 notready=" {
		t.Errorf("got %v, %v for the selectorless Service's Endpoints, want the user's object untouched", ep, err)
	}
}
