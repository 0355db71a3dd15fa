package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"

	"github.com/skiff-project/skiff/controlplane/internal/cachetrim"
	"github.com/skiff-project/skiff/controlplane/internal/eventrecorder"
	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
	"github.com/skiff-project/skiff/controlplane/scheduler/framework/runtime"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/cache"
	"github.com/skiff-project/skiff/controlplane/scheduler/internal/queue"
)

// cacheSyncTimeout bounds the wait for informers that plugins need but the
// scheduler can work without (Services, ReplicaSets, ...), so that a server
// that does not serve one of them does not stop scheduling.
const cacheSyncTimeout = 30 * time.Second

// eventFlushGrace is how long events recorded before the scheduler stopped
// may still be written.
const eventFlushGrace = 5 * time.Second

// instance is the state of one Run: informers, cache, queue and plugins.
type instance struct {
	s         *Scheduler
	log       *slog.Logger
	factory   informers.SharedInformerFactory
	podLister corelisters.PodLister
	cache     *cache.Cache
	snapshot  *cache.Snapshot
	queue     *queue.PriorityQueue
	fwk       *runtime.Framework
	recorder  events.EventRecorder
	// broadcaster is set when the instance records events itself.
	// events writes what recorder records, unless Config gave a recorder.
	events *eventrecorder.Recorder

	// Scheduling-loop state, touched only by the scheduling goroutine.
	nextStartNodeIndex int
	// evaluatedNodes counts the nodes filtered in successful cycles, for
	// the benchmarks.
	evaluatedNodes int64
	statusBuf      []*framework.Status
	feasibleBuf    []*framework.NodeInfo

	bindSem chan struct{}
	bindWG  sync.WaitGroup
}

// stripUnused drops from informer objects what no plugin reads, to save
// memory (the informer holds every pod and node of the cluster): managed
// fields everywhere; of nodes, the images and volume lists (which run to
// many kilobytes on real nodes), the capacity (plugins fit requests
// against allocatable), addresses, system info and daemon endpoints; of
// pods, the volumes, and the commands, environment, mounts, probes and
// resource limits of their containers (plugins use requests, which the
// API server defaults from limits).
func stripUnused(obj any) (any, error) {
	cachetrim.ManagedFields(obj)
	switch o := obj.(type) {
	case *v1.Node:
		o.Status.Images = nil
		o.Status.VolumesAttached = nil
		o.Status.VolumesInUse = nil
		o.Status.Capacity = nil
		o.Status.Addresses = nil
		o.Status.NodeInfo = v1.NodeSystemInfo{}
		o.Status.DaemonEndpoints = v1.NodeDaemonEndpoints{}
	case *v1.Pod:
		cachetrim.Pod(o)
		for _, cs := range [][]v1.Container{o.Spec.InitContainers, o.Spec.Containers} {
			for i := range cs {
				cs[i].Resources.Limits = nil
			}
		}
	}
	return obj, nil
}

func (s *Scheduler) newInstance(ctx context.Context) (*instance, error) {
	cfg := s.cfg
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(stripUnused))
	inst := &instance{
		s:        s,
		log:      s.log,
		factory:  factory,
		snapshot: cache.NewEmptySnapshot(),
		bindSem:  make(chan struct{}, cfg.BindParallelism),
	}
	ttl := cfg.AssumedPodTTL
	if ttl < 0 {
		ttl = 0
	}
	inst.cache = cache.New(s.log, ttl)

	inst.recorder = cfg.EventRecorder
	if inst.recorder == nil {
		inst.events = eventrecorder.New(eventrecorder.Config{Client: cfg.EventClient, Controller: cfg.SchedulerName, Log: s.log})
		inst.recorder = inst.events
	}

	fwk, err := runtime.New(ctx, s.registry, s.profile, runtime.Options{
		Log:             s.log,
		Client:          cfg.Client,
		InformerFactory: factory,
		EventRecorder:   inst.recorder,
		Snapshot:        inst.snapshot,
		Parallelizer:    framework.NewParallelizer(cfg.Parallelism),
	})
	if err != nil {
		return nil, fmt.Errorf("build profile %q: %w", s.profile.SchedulerName, err)
	}
	inst.fwk = fwk
	inst.queue = queue.New(queue.Options{
		Log:                s.log,
		Less:               fwk.QueueSortLess(),
		PreEnqueue:         fwk.PreEnqueuePlugins(),
		Hints:              fwk.EnqueueHints(),
		InitialBackoff:     cfg.InitialBackoff,
		MaxBackoff:         cfg.MaxBackoff,
		MaxInUnschedulable: cfg.MaxInUnschedulable,
	})
	if err := inst.addEventHandlers(); err != nil {
		return nil, err
	}
	return inst, nil
}

// run starts the informers and schedules until ctx ends. synced, when not
// nil, receives nil once the informers have synced, or the start error.
func (inst *instance) run(ctx context.Context, synced chan<- error) error {
	s := inst.s
	ctx, cancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	// Events get a few seconds after scheduling stops to reach the API,
	// so that the last ones are not cut off mid-request.
	evCtx, evCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		cancel()
		inst.queue.Close()
		bg.Wait()
		inst.bindWG.Wait()
		inst.factory.Shutdown()
		if inst.events != nil {
			inst.events.Close()
		}
		time.AfterFunc(eventFlushGrace, evCancel)
		s.metrics.current.CompareAndSwap(inst, nil)
	}()
	if inst.events != nil {
		go inst.events.Run(evCtx)
	}

	inst.factory.Start(ctx.Done())
	required := []toolscache.InformerSynced{
		inst.factory.Core().V1().Pods().Informer().HasSynced,
		inst.factory.Core().V1().Nodes().Informer().HasSynced,
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), required...) {
		err := errors.New("pod and node informers did not sync")
		if ctx.Err() != nil {
			err = fmt.Errorf("wait for informers: %w", ctx.Err())
		}
		if synced != nil {
			synced <- err
		}
		return err
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, cacheSyncTimeout)
	for typ, ok := range inst.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			inst.log.Warn("informer did not sync; scheduling without it", "type", typ.String())
		}
	}
	syncCancel()
	if ctx.Err() != nil {
		if synced != nil {
			synced <- ctx.Err()
		}
		return nil
	}
	s.metrics.current.Store(inst)
	nodes, pods, _ := inst.cache.Counts()
	inst.log.Info("scheduler started", "schedulerName", s.profile.SchedulerName, "nodes", nodes, "pods", pods)
	if synced != nil {
		synced <- nil
	}

	bg.Add(2)
	go func() { defer bg.Done(); inst.queue.Run(ctx) }()
	go func() { defer bg.Done(); inst.cache.Run(ctx, time.Second) }()

	for ctx.Err() == nil {
		if !inst.scheduleOne(ctx) {
			break
		}
	}
	return nil
}

// responsible reports whether the pod is for this scheduler.
func (inst *instance) responsible(pod *v1.Pod) bool {
	name := pod.Spec.SchedulerName
	if name == "" {
		name = v1.DefaultSchedulerName
	}
	return name == inst.s.profile.SchedulerName
}
