package deployment

import (
	"context"
	"fmt"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// syncRolloutStatus updates status with the Progressing condition of a
// rollout: NewReplicaSetAvailable when complete, ReplicaSetUpdated while it
// progresses, ProgressDeadlineExceeded when it has not progressed within
// progressDeadlineSeconds; and ReplicaFailure from the ReplicaSets.
func (c *Controller) syncRolloutStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	st := c.calculateStatus(all, newRS, d)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	now := c.now()
	cur := condition(d.Status, appsv1.DeploymentProgressing)
	complete := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable
	if hasProgressDeadline(d) && !complete {
		switch {
		case deploymentComplete(d, &st):
			msg := fmt.Sprintf("Deployment %q has successfully progressed.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)
			}
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, msg, now))
		case deploymentProgressing(d, &st):
			msg := fmt.Sprintf("Deployment %q is progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
			}
			cond := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonReplicaSetUpdated, msg, now)
			// Progress refreshes lastUpdateTime (the deadline counts from
			// it) but keeps the transition time of a True condition.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					cond.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, cond)
		case deploymentTimedOut(d, &st, now):
			msg := fmt.Sprintf("Deployment %q has timed out progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)
			}
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, msg, now))
		}
	}
	if failures := replicaFailures(all, newRS); len(failures) > 0 {
		setCondition(&st, failures[0])
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	if reflect.DeepEqual(d.Status, st) {
		c.requeueStuck(d, st, now)
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

// replicaFailures returns the ReplicaFailure conditions of the new
// ReplicaSet, or else of any ReplicaSet, as Deployment conditions.
func replicaFailures(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []appsv1.DeploymentCondition {
	conv := func(rs *appsv1.ReplicaSet) []appsv1.DeploymentCondition {
		var out []appsv1.DeploymentCondition
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				out = append(out, appsv1.DeploymentCondition{
					Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastTransitionTime: c.LastTransitionTime, LastUpdateTime: c.LastTransitionTime,
				})
			}
		}
		return out
	}
	if newRS != nil {
		if out := conv(newRS); len(out) > 0 {
			return out
		}
	}
	var out []appsv1.DeploymentCondition
	for _, rs := range all {
		if rs != nil {
			out = append(out, conv(rs)...)
		}
	}
	return out
}

// requeueStuck schedules a sync for when d's progress deadline passes, so
// that ProgressDeadlineExceeded is set without another event.
func (c *Controller) requeueStuck(d *appsv1.Deployment, st appsv1.DeploymentStatus, now time.Time) {
	cur := condition(d.Status, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil {
		return
	}
	if deploymentComplete(d, &st) || cur.Reason == ReasonTimedOut {
		return
	}
	after := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(now)
	if after < time.Second {
		c.queue.AddRateLimited(keyOf(d))
		return
	}
	c.queue.AddAfter(keyOf(d), after+time.Second)
}
