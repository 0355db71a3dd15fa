package apiservertest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStartServesDefaultNamespacesAndRestartKeepsObjects(t *testing.T) {
	srv := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nss, err := srv.Client().CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list namespaces: %v", err)
	}
	got := map[string]bool{}
	for _, ns := range nss.Items {
		got[ns.Name] = true
	}
	for _, want := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if !got[want] {
			t.Errorf("namespaces: got %v, want %s among them", got, want)
		}
	}
	cm, err := srv.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	srv.Restart(t)
	after, err := srv.Client().CoreV1().ConfigMaps("default").Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if after.ResourceVersion != cm.ResourceVersion || after.UID != cm.UID || after.Data["k"] != "v" {
		t.Fatalf("after restart: got rv %s uid %s data %v, want rv %s uid %s data k=v", after.ResourceVersion, after.UID, after.Data, cm.ResourceVersion, cm.UID)
	}
}

func TestSharedEtcdSurvivesTheOwnersRestart(t *testing.T) {
	first := Start(t)
	second := Start(t, WithSharedEtcd(first))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := second.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through the second server: %v", err)
	}
	if _, err := first.Client().CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatalf("get through the first server: %v", err)
	}
	url := first.EtcdURL()
	first.Restart(t)
	if first.EtcdURL() != url {
		t.Fatalf("etcd URL after restart: got %s, want %s", first.EtcdURL(), url)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := second.Client().CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second server after the owner's restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWithDefaultTolerationSeconds(t *testing.T) {
	tests := []struct {
		name                          string
		opts                          []Option
		wantNotReady, wantUnreachable int64
	}{
		{"default", nil, 300, 300},
		{"lab", []Option{WithDefaultTolerationSeconds(5, 10)}, 5, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := Start(t, tc.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pod, err := srv.Client().CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, tl := range pod.Spec.Tolerations {
				if tl.TolerationSeconds != nil {
					got[tl.Key] = *tl.TolerationSeconds
				}
			}
			if got[corev1.TaintNodeNotReady] != tc.wantNotReady || got[corev1.TaintNodeUnreachable] != tc.wantUnreachable || len(got) != 2 {
				t.Errorf("got toleration seconds %v, want not-ready %d and unreachable %d", got, tc.wantNotReady, tc.wantUnreachable)
			}
		})
	}
}
