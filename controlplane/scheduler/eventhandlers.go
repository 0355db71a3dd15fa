package scheduler

import (
	"fmt"
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

func assigned(pod *v1.Pod) bool { return pod.Spec.NodeName != "" }

// terminal pods hold no resources; the scheduler treats them as deleted,
// as upstream's informer, which filters them out, does.
func terminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

func (inst *instance) addEventHandlers() error {
	podInformer := inst.factory.Core().V1().Pods()
	inst.podLister = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    inst.onPodAdd,
		UpdateFunc: inst.onPodUpdate,
		DeleteFunc: inst.onPodDelete,
	}); err != nil {
		return fmt.Errorf("add pod event handler: %w", err)
	}
	if _, err := inst.factory.Core().V1().Nodes().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    inst.onNodeAdd,
		UpdateFunc: inst.onNodeUpdate,
		DeleteFunc: inst.onNodeDelete,
	}); err != nil {
		return fmt.Errorf("add node event handler: %w", err)
	}
	return nil
}

func (inst *instance) onPodAdd(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok || terminal(pod) {
		return
	}
	if assigned(pod) {
		inst.addAssignedPod(pod)
		return
	}
	if inst.responsible(pod) {
		inst.queue.Add(pod)
	}
}

func (inst *instance) addAssignedPod(pod *v1.Pod) {
	if err := inst.cache.AddPod(pod); err != nil {
		inst.log.Error("add pod to scheduler cache", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	inst.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodAdd, nil, pod, nil)
}

func (inst *instance) onPodUpdate(oldObj, newObj any) {
	oldPod, ok1 := oldObj.(*v1.Pod)
	newPod, ok2 := newObj.(*v1.Pod)
	if !ok1 || !ok2 {
		return
	}
	switch {
	case assigned(newPod) && terminal(newPod):
		if assigned(oldPod) && !terminal(oldPod) {
			inst.removeAssignedPod(oldPod)
		}
	case assigned(newPod) && assigned(oldPod) && !terminal(oldPod):
		if err := inst.cache.UpdatePod(oldPod, newPod); err != nil {
			inst.log.Error("update pod in scheduler cache", "pod", newPod.Namespace+"/"+newPod.Name, "err", err)
		}
		if !reflect.DeepEqual(oldPod.Labels, newPod.Labels) {
			inst.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{
				Resource: framework.AssignedPod, ActionType: framework.UpdatePodLabel, Label: "AssignedPodUpdate",
			}, oldPod, newPod, nil)
		}
	case assigned(newPod):
		// The pod was just bound: it leaves the queue and joins the cache,
		// confirming the assumption if this scheduler bound it.
		if inst.responsible(oldPod) {
			inst.queue.Delete(oldPod)
		}
		inst.addAssignedPod(newPod)
	case terminal(newPod):
		inst.queue.Delete(newPod)
	case inst.responsible(newPod):
		if inst.cache.IsAssumedPod(newPod) {
			// Being bound; the bound version will follow.
			return
		}
		inst.queue.Update(oldPod, newPod)
	}
}

func (inst *instance) onPodDelete(obj any) {
	var pod *v1.Pod
	switch t := obj.(type) {
	case *v1.Pod:
		pod = t
	case toolscache.DeletedFinalStateUnknown:
		p, ok := t.Obj.(*v1.Pod)
		if !ok {
			return
		}
		pod = p
	default:
		return
	}
	if assigned(pod) {
		if !terminal(pod) {
			inst.removeAssignedPod(pod)
		}
		return
	}
	inst.queue.Delete(pod)
	if inst.cache.IsAssumedPod(pod) {
		// Deleted while being bound, before the watch delivered the bound
		// version: release what the assumption holds.
		inst.removeAssignedPod(pod)
	}
}

func (inst *instance) removeAssignedPod(pod *v1.Pod) {
	if err := inst.cache.RemovePod(pod); err != nil {
		inst.log.Debug("remove pod from scheduler cache", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	inst.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodDelete, pod, nil, nil)
}

func (inst *instance) onNodeAdd(obj any) {
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	inst.cache.AddNode(node)
	inst.queue.MoveAllToActiveOrBackoffQueue(framework.EventNodeAdd, nil, node, nil)
}

func (inst *instance) onNodeUpdate(oldObj, newObj any) {
	oldNode, ok1 := oldObj.(*v1.Node)
	newNode, ok2 := newObj.(*v1.Node)
	if !ok1 || !ok2 {
		return
	}
	inst.cache.UpdateNode(oldNode, newNode)
	if action := nodeChange(oldNode, newNode); action != 0 {
		inst.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{
			Resource: framework.Node, ActionType: action, Label: "NodeUpdate",
		}, oldNode, newNode, nil)
	}
}

func (inst *instance) onNodeDelete(obj any) {
	var node *v1.Node
	switch t := obj.(type) {
	case *v1.Node:
		node = t
	case toolscache.DeletedFinalStateUnknown:
		n, ok := t.Obj.(*v1.Node)
		if !ok {
			return
		}
		node = n
	default:
		return
	}
	if err := inst.cache.RemoveNode(node); err != nil {
		inst.log.Debug("remove node from scheduler cache", "node", node.Name, "err", err)
	}
	inst.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{
		Resource: framework.Node, ActionType: framework.Delete, Label: "NodeDelete",
	}, node, nil, nil)
}

// nodeChange returns what changed in a node that scheduling looks at; 0
// for heartbeats and other changes that cannot help a pending pod.
func nodeChange(oldNode, newNode *v1.Node) framework.ActionType {
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(oldNode.Status.Allocatable, newNode.Status.Allocatable) {
		a |= framework.UpdateNodeAllocatable
	}
	if !reflect.DeepEqual(oldNode.Labels, newNode.Labels) {
		a |= framework.UpdateNodeLabel
	}
	if !reflect.DeepEqual(oldNode.Spec.Taints, newNode.Spec.Taints) || oldNode.Spec.Unschedulable != newNode.Spec.Unschedulable {
		a |= framework.UpdateNodeTaint
	}
	if !nodeConditionsEqual(oldNode.Status.Conditions, newNode.Status.Conditions) {
		a |= framework.UpdateNodeCondition
	}
	if !reflect.DeepEqual(oldNode.Annotations, newNode.Annotations) {
		a |= framework.UpdateNodeAnnotation
	}
	return a
}

// nodeConditionsEqual compares condition types and statuses, ignoring the
// heartbeat and transition times that change on every kubelet update.
func nodeConditionsEqual(a, b []v1.NodeCondition) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[v1.NodeConditionType]v1.ConditionStatus, len(a))
	for _, c := range a {
		m[c.Type] = c.Status
	}
	for _, c := range b {
		if s, ok := m[c.Type]; !ok || s != c.Status {
			return false
		}
	}
	return true
}
