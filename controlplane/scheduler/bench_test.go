package scheduler

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/cache"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins"
	"github.com/skiff-project/skiff/controlplane/scheduler/plugins/defaultbinder"
)

// cacheBinder binds by confirming the pod in the cache, as the informer
// would after a successful pods/binding call: the benchmarks measure the
// scheduler without an API server.
type cacheBinder struct{ c *cache.Cache }

func (b *cacheBinder) Name() string { return "CacheBinder" }

func (b *cacheBinder) Bind(_ context.Context, _ *framework.CycleState, pod *v1.Pod, node string) *framework.Status {
	bound := pod.DeepCopy()
	bound.Spec.NodeName = node
	return framework.AsStatus(b.c.AddPod(bound))
}

func benchNode(i, zones int) *v1.Node {
	name := fmt.Sprintf("node-%05d", i)
	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourcePods: resource.MustParse("110"), v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("32Gi"),
		}},
	}
	if zones > 0 {
		n.Labels[v1.LabelTopologyZone] = fmt.Sprintf("moon-%d", i%zones)
	}
	return n
}

func benchPod(workload string, i int) *v1.Pod {
	req := v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("500Mi")}
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%06d", i), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%06d", i))},
		Spec: v1.PodSpec{SchedulerName: v1.DefaultSchedulerName, Containers: []v1.Container{{
			Name: "pause", Image: "pause", Resources: v1.ResourceRequirements{Requests: req},
		}}},
	}
	switch workload {
	case "anti-affinity":
		group := fmt.Sprintf("group-%d", i/2500)
		p.Labels = map[string]string{"group": group}
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}}, TopologyKey: v1.LabelHostname,
		}}}}
	case "topology-spread":
		p.Labels = map[string]string{"color": "blue"}
		p.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}},
		}}
	}
	return p
}

// BenchmarkScheduleOne measures the scheduler's own cost per pod on 5,000
// nodes holding 1,000 pods, with the default plugins and a binder that
// confirms the pod in the cache: the throughput the scheduler allows when
// the API server is not the bottleneck. Run with
//
//	go test -run '^$' -bench ScheduleOne -benchtime 10000x ./controlplane/scheduler/
func BenchmarkScheduleOne(b *testing.B) {
	for _, workload := range []string{"basic", "anti-affinity", "topology-spread"} {
		b.Run(workload, func(b *testing.B) {
			const nodes, initPods = 5000, 1000
			profile := plugins.DefaultProfile()
			for i := range profile.Plugins {
				if profile.Plugins[i].Name == defaultbinder.Name {
					profile.Plugins[i] = runtime.PluginConfig{Name: "CacheBinder"}
				}
			}
			var binder cacheBinder
			s, err := New(Config{
				Client:  fake.NewClientset(),
				Profile: &profile,
				Registry: runtime.Registry{"CacheBinder": func(context.Context, any, framework.Handle) (framework.Plugin, error) {
					return &binder, nil
				}},
				EventRecorder: &recorder{},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			inst, err := s.newInstance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			binder.c = inst.cache
			zones := 0
			if workload == "topology-spread" {
				zones = 3
			}
			for i := range nodes {
				inst.cache.AddNode(benchNode(i, zones))
			}
			for i := range initPods {
				p := benchPod("basic", i)
				p.Spec.NodeName = fmt.Sprintf("node-%05d", i%nodes)
				if err := inst.cache.AddPod(p); err != nil {
					b.Fatal(err)
				}
			}
			pods := make([]*v1.Pod, b.N)
			for i := range pods {
				pods[i] = benchPod(workload, initPods+i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, p := range pods {
				inst.queue.Add(p)
				if !inst.scheduleOne(ctx) {
					b.Fatal("queue closed")
				}
			}
			inst.bindWG.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
			b.ReportMetric(float64(inst.evaluatedNodes)/float64(b.N), "nodes/pod")
			if _, cached, assumed := inst.cache.Counts(); cached != initPods+b.N || assumed != 0 {
				b.Fatalf("got %d pods in the cache (%d assumed), want %d bound", cached, assumed, initPods+b.N)
			}
		})
	}
}
