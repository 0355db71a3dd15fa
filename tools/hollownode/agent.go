package hollownode

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (c *Cluster) enqueuePod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return
	}
	h, ok := c.byName[p.Spec.NodeName]
	if !ok || h.isStopped() {
		return
	}
	c.queue.Add(podKey(p))
}

func (c *Cluster) podGone(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if h, ok := c.byName[p.Spec.NodeName]; ok {
		h.release(p.UID)
	}
	c.seenMu.Lock()
	delete(c.seen, p.UID)
	c.seenMu.Unlock()
}

func (c *Cluster) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	after, err := c.syncPod(ctx, key)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.log.Debug("pod sync failed, requeued", "pod", key, "err", err)
			c.queue.AddRateLimited(key)
		}
	case after > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, after)
	default:
		c.queue.Forget(key)
	}
	return true
}

// syncPod moves one bound pod along its life: Pending -> Running/Ready,
// and deleting -> gone. It returns how long to wait before looking again.
func (c *Cluster) syncPod(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, err
	}
	pod, err := c.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	h, ok := c.byName[pod.Spec.NodeName]
	if !ok || h.isStopped() {
		return 0, nil
	}
	now := time.Now()
	if pod.DeletionTimestamp != nil {
		if wait := pod.DeletionTimestamp.Add(-time.Duration(ptrOr(pod.DeletionGracePeriodSeconds)) * time.Second).Add(c.cfg.StopDelay).Sub(now); wait > 0 {
			return wait, nil
		}
		zero := int64(0)
		uid := pod.UID
		err := c.cfg.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, err
		}
		return 0, nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, nil
	}
	if pod.Status.Phase == corev1.PodRunning && isReady(pod) {
		return 0, nil
	}
	c.seenMu.Lock()
	first, ok := c.seen[pod.UID]
	if !ok {
		first = now
		c.seen[pod.UID] = now
	}
	c.seenMu.Unlock()
	if wait := first.Add(c.cfg.StartupDelay).Sub(now); wait > 0 {
		return wait, nil
	}
	ip, err := h.allocate(pod.UID, pod.Status.PodIP)
	if err != nil {
		return 0, err
	}
	p := pod.DeepCopy()
	t := metav1.NewTime(now)
	p.Status.Phase = corev1.PodRunning
	p.Status.HostIP = h.nodeIP.String()
	p.Status.HostIPs = []corev1.HostIP{{IP: h.nodeIP.String()}}
	p.Status.PodIP = ip.String()
	p.Status.PodIPs = []corev1.PodIP{{IP: ip.String()}}
	if p.Status.StartTime == nil {
		p.Status.StartTime = &t
	}
	p.Status.QOSClass = corev1.PodQOSBestEffort
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setPodCondition(&p.Status, corev1.PodCondition{Type: ct, Status: corev1.ConditionTrue, LastTransitionTime: t})
	}
	p.Status.ContainerStatuses = nil
	started := true
	for _, ctr := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, ImageID: "hollow://" + ctr.Image,
			ContainerID: "hollow://" + string(p.UID) + "/" + ctr.Name,
			Ready:       true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}},
		})
	}
	_, err = c.cfg.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	return 0, err
}

func ptrOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setPodCondition sets c, keeping the transition time of a condition whose
// status does not change.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				return
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
