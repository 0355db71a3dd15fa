package endpointslice_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/controllers"
	"github.com/skiff-project/skiff/controlplane/controllers/endpointslice"
)

type env struct {
	t       *testing.T
	srv     *apiservertest.Server
	client  kubernetes.Interface
	ns      string
	metrics *prometheus.Registry
}

// counter sums a counter of the controller manager's registry over the
// label value given (all series when value is "").
func (e *env) counter(name, value string) float64 {
	e.t.Helper()
	mfs, err := e.metrics.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if value == "" || l.GetValue() == value {
					sum += m.GetCounter().GetValue()
					break
				}
			}
		}
	}
	return sum
}

func start(t *testing.T, network controllers.NetworkOptions) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := apiservertest.Start(t)
	cfg := srv.RESTConfig()
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	m, err := controllers.NewManager(controllers.Config{
		RESTConfig:  cfg,
		Logger:      log,
		Metrics:     reg,
		Controllers: []string{"endpointslice", "endpoints"},
		Options:     controllers.Options{Network: network},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop controller manager: %v", err)
		}
	})
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "eps-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, client: client, ns: ns.Name, metrics: reg}
}

// runPod creates a pod bound to a node and gives it the status a node agent
// would: Running with an IP, Ready or not.
func (e *env) runPod(name, ip string, port int32, isReady bool) {
	e.t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: "node-a",
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx:1",
				Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: port}},
			}},
		},
	}
	p, err := e.client.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.setStatus(p, ip, isReady)
}

func (e *env) setStatus(p *corev1.Pod, ip string, isReady bool) {
	e.t.Helper()
	status := corev1.ConditionFalse
	if isReady {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: now}}
	if _, err := e.client.CoreV1().Pods(e.ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// state renders a Service's managed slices: one line per slice, "port:
// pod=ready/serving/terminating ...", sorted.
func (e *env) state(svc string) (string, []discoveryv1.EndpointSlice) {
	e.t.Helper()
	list, err := e.client.DiscoveryV1().EndpointSlices(e.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc + "," + discoveryv1.LabelManagedBy + "=" + endpointslice.ControllerName,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var lines []string
	for _, s := range list.Items {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprint(*p.Port))
		}
		var eps []string
		for _, ep := range s.Endpoints {
			b := func(v *bool) string {
				if v != nil && *v {
					return "1"
				}
				return "0"
			}
			c := ep.Conditions
			eps = append(eps, ep.TargetRef.Name+"="+b(c.Ready)+b(c.Serving)+b(c.Terminating))
		}
		sort.Strings(eps)
		lines = append(lines, strings.Join(ports, ",")+": "+strings.Join(eps, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, " | "), list.Items
}

func (e *env) waitState(svc, want string) []discoveryv1.EndpointSlice {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, items := e.state(svc)
		if got == want {
			return items
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for slices of %s:\n got %q\nwant %q", svc, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) service(name string, publishNotReady bool) *corev1.Service {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "web"}},
		Spec: corev1.ServiceSpec{
			Selector:                 map[string]string{"app": "web"},
			Ports:                    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}},
			PublishNotReadyAddresses: publishNotReady,
		},
	}
	svc, err := e.client.CoreV1().Services(e.ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func TestIntegrationSlicesFollowPods(t *testing.T) {
	e := start(t, controllers.NetworkOptions{})
	ctx := context.Background()
	svc := e.service("web", false)
	e.service("web-all", true)
	e.runPod("a", "10.244.1.1", 8080, true)
	e.runPod("b", "10.244.1.2", 8080, false)
	e.runPod("c", "10.244.1.3", 9090, true)

	// Named port: a and b resolve to 8080, c to 9090: two slices.
	items := e.waitState("web", "8080: a=110 b=000 | 9090: c=110")
	for _, s := range items {
		if s.Labels["team"] != "web" || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != svc.UID {
			t.Errorf("got slice %s labels %v owners %v, want the Service's labels and the Service as owner", s.Name, s.Labels, s.OwnerReferences)
		}
	}
	e.waitState("web-all", "8080: a=110 b=100 | 9090: c=110")

	// b turns ready.
	b, err := e.client.CoreV1().Pods(e.ns).Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.setStatus(b, "10.244.1.2", true)
	e.waitState("web", "8080: a=110 b=110 | 9090: c=110")

	// a is deleted gracefully; with no kubelet to finish it, it stays
	// terminating: still serving, no longer ready.
	if err := e.client.CoreV1().Pods(e.ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitState("web", "8080: a=011 b=110 | 9090: c=110")
	e.waitState("web-all", "8080: a=111 b=110 | 9090: c=110")

	// A pod change that matters to no endpoint makes a sync but no write:
	// what the server stores compares equal to what the controller wants.
	writes := e.counter("skiff_endpointslice_controller_changes_total", "")
	syncs := e.counter("skiff_endpointslice_controller_syncs_total", "success")
	c, err := e.client.CoreV1().Pods(e.ns).Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Annotations = map[string]string{"touched": "yes"}
	if _, err := e.client.CoreV1().Pods(e.ns).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.counter("skiff_endpointslice_controller_syncs_total", "success") < syncs+2 {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the syncs of the pod change")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := e.counter("skiff_endpointslice_controller_changes_total", ""); got != writes {
		t.Errorf("got %v slice writes after an irrelevant pod change, want %v (no churn)", got, writes)
	}

	// The Endpoints object: ready b and c, terminating a left out.
	waitEndpoints(t, e, "web", "10.244.1.2:8080 10.244.1.3:9090", "")

	if path, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command(path, "--kubeconfig", e.srv.KubeconfigPath(), "-n", e.ns, "describe", "service", "web").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl describe service: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "10.244.1.2:8080") || !strings.Contains(string(out), "10.244.1.3:9090") {
			t.Errorf("got kubectl describe output without the endpoints:\n%s", out)
		}
	} else {
		t.Logf("kubectl not found (%v): skipping the describe check", err)
	}

	// The Service goes: its slices and Endpoints go too.
	if err := e.client.CoreV1().Services(e.ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitState("web", "")
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err := e.client.CoreV1().Endpoints(e.ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the Endpoints to go: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEndpoints waits for the Endpoints object's ready and not-ready
// "ip:port" lists.
func waitEndpoints(t *testing.T, e *env, name, wantReady, wantNotReady string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ready, notReady []string
		ep, err := e.client.CoreV1().Endpoints(e.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			for _, s := range ep.Subsets {
				for _, p := range s.Ports {
					for _, a := range s.Addresses {
						ready = append(ready, fmt.Sprintf("%s:%d", a.IP, p.Port))
					}
					for _, a := range s.NotReadyAddresses {
						notReady = append(notReady, fmt.Sprintf("%s:%d", a.IP, p.Port))
					}
				}
			}
		}
		slices.Sort(ready)
		slices.Sort(notReady)
		gr, gn := strings.Join(ready, " "), strings.Join(notReady, " ")
		if err == nil && gr == wantReady && gn == wantNotReady {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for Endpoints %s: got ready %q notready %q (err %v), want %q %q", name, gr, gn, err, wantReady, wantNotReady)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIntegrationMaxEndpointsPerSlice(t *testing.T) {
	e := start(t, controllers.NetworkOptions{MaxEndpointsPerSlice: 10})
	e.service("web", false)
	for i := range 25 {
		e.runPod(fmt.Sprintf("p%02d", i), fmt.Sprintf("10.244.2.%d", i+1), 8080, true)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, items := e.state("web")
		var sizes []int
		total := 0
		for _, s := range items {
			sizes = append(sizes, len(s.Endpoints))
			total += len(s.Endpoints)
		}
		slices.Sort(sizes)
		if fmt.Sprint(sizes) == "[5 10 10]" && total == 25 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: got slice sizes %v, want [5 10 10]", sizes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
