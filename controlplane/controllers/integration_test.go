package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/controllers"
	"github.com/skiff-project/skiff/controlplane/controllers/deployment"
	"github.com/skiff-project/skiff/controlplane/scheduler"
	"github.com/skiff-project/skiff/tools/hollownode"
)

// cluster is a real API server (embedded etcd) with the workload
// controllers, the scheduler and hollow nodes.
type cluster struct {
	srv    *apiservertest.Server
	client kubernetes.Interface
	nodes  *hollownode.Cluster
}

func startCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := apiservertest.Start(t)
	cfg := srv.RESTConfig()
	cfg.QPS, cfg.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	m, err := controllers.NewManager(controllers.Config{
		RESTConfig:  cfg,
		Logger:      log,
		Controllers: []string{"replicaset", "deployment", "garbagecollector", "namespace"},
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

	hn, err := hollownode.Start(ctx, hollownode.Config{Client: client, Count: nodes, RenewInterval: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hn.Stop)
	return &cluster{srv: srv, client: client, nodes: hn}
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

func (c *cluster) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := c.client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func newDeployment(name string, replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	lbls := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1"}}},
			},
		},
	}
}

// rolledOut is kubectl rollout status's test.
func rolledOut(d *appsv1.Deployment) bool {
	if d.Generation > d.Status.ObservedGeneration {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == deployment.ReasonTimedOut {
			return false
		}
	}
	want := *d.Spec.Replicas
	return d.Status.UpdatedReplicas == want && d.Status.Replicas == want && d.Status.AvailableReplicas == want
}

func (c *cluster) waitRolledOut(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	waitFor(t, "rollout of "+name, func() (bool, error) {
		var err error
		d, err = c.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return rolledOut(d), nil
	})
	return d
}

func (c *cluster) setImage(t *testing.T, ns, name, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":%q}]}}}}`, image)
	if _, err := c.client.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podWatch tracks every pod of a selector through a watch and checks an
// invariant at every event.
type podWatch struct {
	pods map[types.UID]*corev1.Pod
}

func (w *podWatch) counts() (active, available int) {
	for _, p := range w.pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		active++
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				available++
			}
		}
	}
	return active, available
}

func TestIntegrationRollingUpdateBoundsAndRollback(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	ns := c.namespace(t, "rolling")
	const replicas, surge, unavailable = 6, 2, 1
	d := newDeployment("web", replicas, intstr.FromInt32(surge), intstr.FromInt32(unavailable))
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(t, ns, "web")

	list, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	w := &podWatch{pods: map[types.UID]*corev1.Pod{}}
	for i := range list.Items {
		w.pods[list.Items[i].UID] = &list.Items[i]
	}
	watcher, err := c.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=web", ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	check := func(phase string) {
		t.Helper()
		events := 0
		for {
			select {
			case ev, ok := <-watcher.ResultChan():
				if !ok {
					t.Fatalf("%s: pod watch closed", phase)
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if !isPod {
					continue
				}
				events++
				if ev.Type == watch.Deleted {
					delete(w.pods, p.UID)
				} else {
					w.pods[p.UID] = p
				}
				active, available := w.counts()
				if active > replicas+surge {
					t.Fatalf("%s: got %d active pods after event %d, want at most %d (maxSurge %d)", phase, active, events, replicas+surge, surge)
				}
				if available < replicas-unavailable {
					t.Fatalf("%s: got %d ready pods after event %d, want at least %d (maxUnavailable %d)", phase, available, events, replicas-unavailable, unavailable)
				}
			case <-time.After(100 * time.Millisecond):
				d, err := c.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rolledOut(d) && len(w.pods) == replicas {
					if events == 0 {
						t.Fatalf("%s: saw no pod events", phase)
					}
					return
				}
			}
		}
	}

	c.setImage(t, ns, "web", "nginx:2")
	check("update to nginx:2")
	c.setImage(t, ns, "web", "nginx:1") // kubectl rollout undo
	check("rollback to nginx:1")

	rss, err := c.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Fatalf("got %d ReplicaSets, want 2", len(rss.Items))
	}
	for _, rs := range rss.Items {
		img := rs.Spec.Template.Spec.Containers[0].Image
		rev := rs.Annotations[deployment.RevisionAnnotation]
		switch img {
		case "nginx:1":
			if rev != "3" || rs.Annotations[deployment.RevisionHistoryAnnotation] != "1" || *rs.Spec.Replicas != replicas {
				t.Errorf("rolled back ReplicaSet: got revision %s history %q replicas %d, want 3, 1 and %d", rev, rs.Annotations[deployment.RevisionHistoryAnnotation], *rs.Spec.Replicas, replicas)
			}
		case "nginx:2":
			if rev != "2" || *rs.Spec.Replicas != 0 {
				t.Errorf("old ReplicaSet: got revision %s replicas %d, want 2 and 0", rev, *rs.Spec.Replicas)
			}
		}
	}
	evs, err := c.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Items {
		if e.Reason == "ScalingReplicaSet" && e.InvolvedObject.Kind == "Deployment" && strings.HasPrefix(e.Message, "Scaled up replica set web-") {
			found = true
		}
	}
	if !found {
		t.Errorf("got no ScalingReplicaSet event for the deployment, want one")
	}
}

func (c *cluster) deleteDeployment(t *testing.T, ns, name string, policy metav1.DeletionPropagation) {
	t.Helper()
	if err := c.client.AppsV1().Deployments(ns).Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) count(t *testing.T, ns, selector string) (rss, pods int, err error) {
	t.Helper()
	ctx := context.Background()
	r, err := c.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, 0, err
	}
	p, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, 0, err
	}
	return len(r.Items), len(p.Items), nil
}

func TestIntegrationCascadingDeletes(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	ns := c.namespace(t, "cascade")
	for _, name := range []string{"bg", "fg", "orphan"} {
		if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, newDeployment(name, 2, intstr.FromInt32(1), intstr.FromInt32(0)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"bg", "fg", "orphan"} {
		c.waitRolledOut(t, ns, name)
	}

	t.Run("background", func(t *testing.T) {
		c.deleteDeployment(t, ns, "bg", metav1.DeletePropagationBackground)
		waitFor(t, "ReplicaSets and pods of bg to go", func() (bool, error) {
			rss, pods, err := c.count(t, ns, "app=bg")
			return err == nil && rss == 0 && pods == 0, err
		})
	})

	t.Run("foreground", func(t *testing.T) {
		c.deleteDeployment(t, ns, "fg", metav1.DeletePropagationForeground)
		// The deployment stays, marked, until its dependents are gone.
		d, err := c.client.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
		if err == nil {
			if d.DeletionTimestamp == nil || !containsString(d.Finalizers, metav1.FinalizerDeleteDependents) {
				t.Errorf("got deletionTimestamp %v finalizers %v, want the foregroundDeletion finalizer", d.DeletionTimestamp, d.Finalizers)
			}
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		waitFor(t, "fg and its dependents to go", func() (bool, error) {
			_, err := c.client.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
			if err == nil {
				// While the owner exists, dependents may exist; once it
				// is gone they must be gone too (checked below).
				return false, nil
			}
			if !apierrors.IsNotFound(err) {
				return false, err
			}
			rss, pods, err := c.count(t, ns, "app=fg")
			if err != nil {
				return false, err
			}
			if rss != 0 || pods != 0 {
				t.Fatalf("got fg deleted with %d ReplicaSets and %d pods left, want them deleted first", rss, pods)
			}
			return true, nil
		})
	})

	t.Run("orphan", func(t *testing.T) {
		c.deleteDeployment(t, ns, "orphan", metav1.DeletePropagationOrphan)
		waitFor(t, "orphan deployment to go", func() (bool, error) {
			_, err := c.client.AppsV1().Deployments(ns).Get(ctx, "orphan", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		rss, err := c.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=orphan"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rss.Items) != 1 {
			t.Fatalf("got %d ReplicaSets after an orphan delete, want 1", len(rss.Items))
		}
		if refs := rss.Items[0].OwnerReferences; len(refs) != 0 {
			t.Errorf("got owner references %v on the orphaned ReplicaSet, want none", refs)
		}
		// The ReplicaSet still owns and runs its pods.
		waitFor(t, "orphaned pods to keep running", func() (bool, error) {
			_, pods, err := c.count(t, ns, "app=orphan")
			return err == nil && pods == 2, err
		})
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestIntegrationNamespaceDeletion(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	ns := c.namespace(t, "doomed")
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, newDeployment("web", 3, intstr.FromInt32(1), intstr.FromInt32(0)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(t, ns, "web")
	if err := c.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "namespace "+ns+" to go", func() (bool, error) {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := c.client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items)+len(cms.Items)+len(ds.Items) != 0 {
		t.Errorf("got %d pods, %d configmaps, %d deployments left in the deleted namespace, want none", len(pods.Items), len(cms.Items), len(ds.Items))
	}
}
