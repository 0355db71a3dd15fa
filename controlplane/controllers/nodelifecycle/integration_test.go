package nodelifecycle_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/controllers"
	"github.com/skiff-project/skiff/controlplane/scheduler"
	"github.com/skiff-project/skiff/tools/hollownode"
)

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestIntegrationNodeFailure runs a real API server, the controller manager
// (replicaset, node lifecycle, taint eviction, endpointslice), the scheduler
// and three hollow nodes. One node stops renewing its lease: it must turn
// Unknown and get the unreachable taints, its pods must be evicted after
// their tolerationSeconds, leave the Service's ready endpoints, and be
// replaced by pods scheduled on the other nodes.
func TestIntegrationNodeFailure(t *testing.T) {
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

	m, err := controllers.NewManager(controllers.Config{
		RESTConfig:  cfg,
		Logger:      log,
		Controllers: []string{"replicaset", "nodelifecycle", "taint-eviction-controller", "endpointslice"},
		Options: controllers.Options{Network: controllers.NetworkOptions{
			NodeMonitorGracePeriod: 4 * time.Second,
			NodeMonitorPeriod:      500 * time.Millisecond,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(ctx); err != nil {
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
	sched, err := scheduler.New(scheduler.Config{Client: client, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sched.Stop() })
	hn, err := hollownode.Start(ctx, hollownode.Config{Client: client, Count: 3, RenewInterval: 500 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hn.Stop)

	nsObj, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "nodefail-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	const replicas = 6
	two := int64(2)
	lbls := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "nginx:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
					// Short tolerations instead of the API server's 300 s.
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &two},
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &two},
					},
				},
			},
		},
	}
	if _, err := client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: lbls,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// podsByNode returns the active (not terminating) ready pods per node
	// and the number of active ones.
	podsByNode := func() (map[string]int, int, error) {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return nil, 0, err
		}
		byNode := map[string]int{}
		active := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			active++
			if ready(&p) {
				byNode[p.Spec.NodeName]++
			}
		}
		return byNode, active, nil
	}
	readyEndpoints := func() (map[string]int, error) {
		list, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return nil, err
		}
		out := map[string]int{}
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && ep.NodeName != nil {
					out[*ep.NodeName]++
				}
			}
		}
		return out, nil
	}
	sum := func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	}

	var victim string
	waitUntil(t, "all replicas ready and in the EndpointSlices", 60*time.Second, func() (bool, string) {
		byNode, _, err := podsByNode()
		if err != nil {
			return false, err.Error()
		}
		eps, err := readyEndpoints()
		if err != nil {
			return false, err.Error()
		}
		for n, c := range byNode {
			if c > 0 && (victim == "" || c > byNode[victim]) {
				victim = n
			}
		}
		return sum(byNode) == replicas && sum(eps) == replicas, fmt.Sprintf("pods %v endpoints %v", byNode, eps)
	})
	t.Logf("stopping node %s", victim)
	stopped := time.Now()
	if err := hn.StopNode(victim); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "the node Unknown with the unreachable taints", 60*time.Second, func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var readyCond corev1.NodeCondition
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				readyCond = c
			}
		}
		var taints []string
		for _, tt := range n.Spec.Taints {
			taints = append(taints, tt.ToString())
		}
		ok := readyCond.Status == corev1.ConditionUnknown && readyCond.Reason == "NodeStatusUnknown" &&
			slices.Contains(taints, "node.kubernetes.io/unreachable:NoExecute") &&
			slices.Contains(taints, "node.kubernetes.io/unreachable:NoSchedule")
		return ok, fmt.Sprintf("ready=%s/%s taints=%v", readyCond.Status, readyCond.Reason, taints)
	})
	t.Logf("node unknown and tainted %s after it stopped", time.Since(stopped).Round(100*time.Millisecond))

	waitUntil(t, "replacements ready on the other nodes", 90*time.Second, func() (bool, string) {
		byNode, active, err := podsByNode()
		if err != nil {
			return false, err.Error()
		}
		eps, err := readyEndpoints()
		if err != nil {
			return false, err.Error()
		}
		ok := byNode[victim] == 0 && active == replicas && sum(byNode) == replicas && eps[victim] == 0 && sum(eps) == replicas
		return ok, fmt.Sprintf("active %d ready by node %v ready endpoints %v", active, byNode, eps)
	})
	t.Logf("replicas back %s after the node stopped", time.Since(stopped).Round(100*time.Millisecond))

	waitUntil(t, "TaintManagerEviction events", 30*time.Second, func() (bool, string) {
		evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var reasons []string
		for _, e := range evs.Items {
			reasons = append(reasons, e.Reason)
			if e.Reason == "TaintManagerEviction" && strings.HasPrefix(e.Message, "Marking for deletion Pod "+ns+"/web-") {
				return true, ""
			}
		}
		return false, fmt.Sprint(reasons)
	})
}

func ptr[T any](v T) *T { return &v }
