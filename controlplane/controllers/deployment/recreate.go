package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutRecreate scales every old ReplicaSet to zero, waits until no old
// pod runs, then creates or scales up the new ReplicaSet.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) error {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)
	scaledDown := false
	for _, rs := range activeReplicaSets(olds) {
		scaled, _, err := c.scaleReplicaSet(ctx, rs, 0, d, false)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, all, newRS, d)
	}
	if oldPodsRunning(newRS, olds, podMap) {
		return c.syncRolloutStatus(ctx, all, newRS, d)
	}
	if newRS == nil {
		newRS, olds, err = c.replicaSetsAndSyncRevision(ctx, d, rss, true)
		if err != nil {
			return err
		}
		all = append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)
	}
	if _, _, err := c.scaleReplicaSet(ctx, newRS, replicas(d.Spec.Replicas), d, false); err != nil {
		return err
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, olds, d); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, all, newRS, d)
}

// oldPodsRunning reports whether any pod of an old ReplicaSet has not
// finished.
func oldPodsRunning(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) bool {
	if actualReplicas(olds) > 0 {
		return true
	}
	for uid, ps := range podMap {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, p := range ps {
			if p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
				return true
			}
		}
	}
	return false
}
