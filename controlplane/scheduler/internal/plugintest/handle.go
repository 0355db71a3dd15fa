// Package plugintest runs plugins the way the framework does, for plugin
// table tests: a Handle over a snapshot of pods and nodes with a fake
// clientset, and helpers that run PreFilter+Filter or PreScore+Score+
// NormalizeScore over every node.
package plugintest

import (
	"context"
	"log/slog"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/cache"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/schedtest"
)

// Handle is a framework.Handle for plugin tests: a snapshot, a fake
// clientset with its informers started, and a logger writing to t.Log.
type Handle struct {
	Snap      framework.SharedLister
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Logger    *slog.Logger
	Par       framework.Parallelizer
}

var _ framework.Handle = (*Handle)(nil)

// NewHandle returns a Handle over a snapshot of pods and nodes. objs are
// extra API objects (namespaces, ...) for the fake clientset; the informers
// for namespaces are started and synced, and stopped when the test ends.
func NewHandle(t testing.TB, pods []*v1.Pod, nodes []*v1.Node, objs ...runtime.Object) *Handle {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	factory.Core().V1().Namespaces().Informer()
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	return &Handle{
		Snap:      cache.NewSnapshot(pods, nodes),
		Client:    client,
		Informers: factory,
		Logger:    schedtest.TestLogger(t),
		Par:       framework.NewParallelizer(2),
	}
}

// SnapshotSharedLister implements framework.Handle.
func (h *Handle) SnapshotSharedLister() framework.SharedLister { return h.Snap }

// Parallelizer implements framework.Handle.
func (h *Handle) Parallelizer() framework.Parallelizer { return h.Par }

// ClientSet implements framework.Handle.
func (h *Handle) ClientSet() kubernetes.Interface { return h.Client }

// SharedInformerFactory implements framework.Handle.
func (h *Handle) SharedInformerFactory() informers.SharedInformerFactory { return h.Informers }

// EventRecorder implements framework.Handle; tests record nothing.
func (h *Handle) EventRecorder() events.EventRecorder { return &events.FakeRecorder{} }

// Log implements framework.Handle.
func (h *Handle) Log() *slog.Logger { return h.Logger }

// NodeInfos returns the snapshot's NodeInfo for each node, in order.
func NodeInfos(t testing.TB, h *Handle, nodes []*v1.Node) []*framework.NodeInfo {
	t.Helper()
	out := make([]*framework.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		ni, err := h.Snap.NodeInfos().Get(n.Name)
		if err != nil {
			t.Fatalf("get node info %s: %v", n.Name, err)
		}
		out = append(out, ni)
	}
	return out
}

// StartInformers starts the informers registered since NewHandle (plugins
// register theirs when they are built) and waits for them to sync.
func (h *Handle) StartInformers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.Informers.Start(ctx.Done())
	for typ, ok := range h.Informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
}
