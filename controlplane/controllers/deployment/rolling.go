package deployment

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling makes one step of a rolling update: scale the new
// ReplicaSet up within maxSurge, or else scale old ones down within
// maxUnavailable, then update status.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)

	scaledUp, err := c.reconcileNewReplicaSet(ctx, all, newRS, d)
	if err != nil {
		return err
	}
	if scaledUp {
		return c.syncRolloutStatus(ctx, all, newRS, d)
	}
	scaledDown, err := c.reconcileOldReplicaSets(ctx, all, activeReplicaSets(olds), newRS, d)
	if err != nil {
		return err
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, all, newRS, d)
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, olds, d); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, all, newRS, d)
}

func (c *Controller) reconcileNewReplicaSet(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	want := replicas(d.Spec.Replicas)
	if replicas(newRS.Spec.Replicas) == want {
		return false, nil
	}
	if replicas(newRS.Spec.Replicas) > want {
		scaled, _, err := c.scaleReplicaSet(ctx, newRS, want, d, false)
		return scaled, err
	}
	n, err := NewRSNewReplicas(d, all, newRS)
	if err != nil {
		return false, err
	}
	scaled, _, err := c.scaleReplicaSet(ctx, newRS, n, d, false)
	return scaled, err
}

// MaxScaledDown returns how many old replicas may go now: all pods
// counted by spec, minus the minimum that must stay available, minus the
// new ReplicaSet's pods that are not available yet.
func MaxScaledDown(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	minAvailable := replicas(d.Spec.Replicas) - MaxUnavailable(d)
	newUnavailable := replicas(newRS.Spec.Replicas) - newRS.Status.AvailableReplicas
	return totalReplicas(all) - minAvailable - newUnavailable
}

func (c *Controller) reconcileOldReplicaSets(ctx context.Context, all, olds []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if totalReplicas(olds) == 0 {
		return false, nil
	}
	maxDown := MaxScaledDown(d, all, newRS)
	if maxDown <= 0 {
		return false, nil
	}
	// Unhealthy old replicas first: removing them costs no availability.
	olds, cleaned, err := c.cleanupUnhealthyReplicas(ctx, olds, d, maxDown)
	if err != nil {
		return false, nil
	}
	all = append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)
	scaled, err := c.scaleDownOldReplicaSets(ctx, all, olds, d)
	if err != nil {
		return false, nil
	}
	return cleaned+scaled > 0, nil
}

func (c *Controller) cleanupUnhealthyReplicas(ctx context.Context, olds []*appsv1.ReplicaSet, d *appsv1.Deployment, maxCleanup int32) ([]*appsv1.ReplicaSet, int32, error) {
	sort.Sort(byCreation(olds))
	total := int32(0)
	for i, rs := range olds {
		if total >= maxCleanup {
			break
		}
		n := replicas(rs.Spec.Replicas)
		if n == 0 || n == rs.Status.AvailableReplicas {
			continue
		}
		down := min(maxCleanup-total, n-rs.Status.AvailableReplicas)
		if down < 0 {
			return nil, 0, fmt.Errorf("cleaning up unhealthy replicas of %s/%s: invalid scale down %d -> %d", rs.Namespace, rs.Name, n, n-down)
		}
		_, updated, err := c.scaleReplicaSet(ctx, rs, n-down, d, false)
		if err != nil {
			return nil, total, err
		}
		total += down
		olds[i] = updated
	}
	return olds, total, nil
}

func (c *Controller) scaleDownOldReplicaSets(ctx context.Context, all, olds []*appsv1.ReplicaSet, d *appsv1.Deployment) (int32, error) {
	minAvailable := replicas(d.Spec.Replicas) - MaxUnavailable(d)
	available := availableReplicas(all)
	if available <= minAvailable {
		return 0, nil
	}
	sort.Sort(byCreation(olds))
	total, target := int32(0), available-minAvailable
	for _, rs := range olds {
		if total >= target {
			break
		}
		n := replicas(rs.Spec.Replicas)
		if n == 0 {
			continue
		}
		down := min(n, target-total)
		if _, _, err := c.scaleReplicaSet(ctx, rs, n-down, d, false); err != nil {
			return total, err
		}
		total += down
	}
	return total, nil
}
