package deployment

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// updateStatus writes d's status and carries the new resourceVersion back
// into d, so that later writes in the same sync do not conflict with it.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	updated, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	d.ResourceVersion = updated.ResourceVersion
	return nil
}

// syncStatusOnly only updates the status of a Deployment being deleted.
func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	return c.syncStatus(ctx, append(olds, newRS), newRS, d)
}

// sync handles scaling events and paused Deployments: it scales without
// rolling out.
func (c *Controller) sync(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, olds); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, olds, d); err != nil {
			return err
		}
	}
	return c.syncStatus(ctx, append(olds, newRS), newRS, d)
}

// checkPausedConditions sets Progressing Unknown DeploymentPaused or
// DeploymentResumed when d is paused or resumed, so that a pause does not
// count against the progress deadline.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cond := condition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return nil
	}
	pausedCond := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.updateStatus(ctx, d)
}

// replicaSetsAndSyncRevision returns the new ReplicaSet (created when
// create is set and it does not exist) and all old ones, and brings the
// revision annotations of the new ReplicaSet and of d up to date.
func (c *Controller) replicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	olds := findOldReplicaSets(d, rss)
	newRS, err := c.newReplicaSet(ctx, d, rss, olds, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, olds, nil
}

func (c *Controller) newReplicaSet(ctx context.Context, d *appsv1.Deployment, rss, olds []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	existing := findNewReplicaSet(d, rss)
	newRevision := strconv.FormatInt(maxRevision(olds)+1, 10)

	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := setNewReplicaSetAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
			if err != nil {
				return nil, err
			}
			// Later steps of this sync use rss: keep them current.
			for i := range rss {
				if rss[i].UID == updated.UID {
					rss[i] = updated
				}
			}
			return updated, nil
		}
		needsUpdate := setDeploymentRevision(d, rs.Annotations[RevisionAnnotation])
		if hasProgressDeadline(d) && condition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", rs.Name), c.now()))
			needsUpdate = true
		}
		if needsUpdate {
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	// The new ReplicaSet: the template with the pod-template-hash label,
	// the selector narrowed by it.
	tmpl := *d.Spec.Template.DeepCopy()
	hash := ComputeHash(&tmpl, d.Status.CollisionCount)
	tmpl.Labels = withLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            replicaSetName(d.Name, hash),
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, controllerKind)},
			Labels:          tmpl.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &zero,
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        sel,
			Template:        tmpl,
		},
	}
	n, err := NewRSNewReplicas(d, append(append([]*appsv1.ReplicaSet(nil), olds...), rs), rs)
	if err != nil {
		return nil, err
	}
	rs.Spec.Replicas = &n
	setNewReplicaSetAnnotations(d, rs, newRevision, false)

	alreadyExists := false
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		found, getErr := c.rsLister.ReplicaSets(rs.Namespace).Get(rs.Name)
		if getErr != nil {
			return nil, getErr
		}
		// Ours, with the same template: the cache was behind.
		if ref := metav1.GetControllerOfNoCopy(found); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &found.Spec.Template) {
			created, err = found, nil
			break
		}
		// A hash collision: bump collisionCount so the next hash differs.
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		*d.Status.CollisionCount++
		if uerr := c.updateStatus(ctx, d); uerr == nil {
			c.log.Info("pod template hash collision", "deployment", keyOf(d), "collisionCount", *d.Status.CollisionCount)
		}
		return nil, err
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, c.now()))
			_ = c.updateStatus(ctx, d)
		}
		c.recorder.Eventf(d, corev1.EventTypeWarning, ReasonFailedRSCreate, "%s", msg)
		return nil, err
	}
	if !alreadyExists && n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, ReasonScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	needsUpdate := setDeploymentRevision(d, newRevision)
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSet,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		needsUpdate = true
	}
	if needsUpdate {
		err = c.updateStatus(ctx, d)
	}
	return created, err
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// scale brings the ReplicaSets to d's replicas: the only active one is set
// to it; during a rollout the difference is spread proportionally.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) error {
	if one := findActiveOrLatest(newRS, olds); one != nil {
		if replicas(one.Spec.Replicas) == replicas(d.Spec.Replicas) {
			return nil
		}
		_, _, err := c.scaleReplicaSet(ctx, one, replicas(d.Spec.Replicas), d, false)
		return err
	}
	if isSaturated(d, newRS) {
		for _, old := range activeReplicaSets(olds) {
			if _, _, err := c.scaleReplicaSet(ctx, old, 0, d, false); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	all := activeReplicaSets(append(append([]*appsv1.ReplicaSet(nil), olds...), newRS))
	allowed := int32(0)
	if replicas(d.Spec.Replicas) > 0 {
		allowed = replicas(d.Spec.Replicas) + MaxSurge(d)
	}
	toAdd := allowed - totalReplicas(all)
	switch {
	case toAdd > 0:
		sort.Sort(bySizeNewer(all))
	case toAdd < 0:
		sort.Sort(bySizeOlder(all))
	}
	added := int32(0)
	sizes := make(map[string]int32, len(all))
	for _, rs := range all {
		if toAdd != 0 {
			p := replicaSetProportion(rs, d, toAdd, added)
			sizes[rs.Name] = replicas(rs.Spec.Replicas) + p
			added += p
		} else {
			sizes[rs.Name] = replicas(rs.Spec.Replicas)
		}
	}
	for i, rs := range all {
		// The leftover goes to the largest ReplicaSet.
		if i == 0 && toAdd != 0 {
			sizes[rs.Name] = max(sizes[rs.Name]+toAdd-added, 0)
		}
		if _, _, err := c.scaleReplicaSet(ctx, rs, sizes[rs.Name], d, true); err != nil {
			return err
		}
	}
	return nil
}

// scaleReplicaSet sets rs's replicas (and the desired/max replicas
// annotations) and records a ScalingReplicaSet event.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment, force bool) (bool, *appsv1.ReplicaSet, error) {
	if !force && replicas(rs.Spec.Replicas) == size {
		return false, rs, nil
	}
	sizeChanged := replicas(rs.Spec.Replicas) != size
	desired, maxReplicas := replicas(d.Spec.Replicas), replicas(d.Spec.Replicas)+MaxSurge(d)
	if !sizeChanged && !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false, rs, nil
	}
	from := replicas(rs.Spec.Replicas)
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, desired, maxReplicas)
	updated, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, err
	}
	if sizeChanged {
		dir := "up"
		if size < from {
			dir = "down"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, ReasonScalingReplicaSet, "Scaled %s replica set %s from %d to %d", dir, updated.Name, from, size)
	}
	return sizeChanged, updated, nil
}

// cleanup deletes the oldest fully scaled-down ReplicaSets beyond
// revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, olds []*appsv1.ReplicaSet, d *appsv1.Deployment) error {
	if !hasRevisionHistoryLimit(d) {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range olds {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := int32(len(cleanable)) - *d.Spec.RevisionHistoryLimit
	if diff <= 0 {
		return nil
	}
	sort.Sort(byRevision(cleanable))
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicas(rs.Spec.Replicas) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// syncStatus writes the status computed from the ReplicaSets when it
// changed.
func (c *Controller) syncStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	st := c.calculateStatus(all, newRS, d)
	if reflect.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

func (c *Controller) calculateStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) appsv1.DeploymentStatus {
	available := availableReplicas(all)
	unavailable := max(totalReplicas(all)-available, 0)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            actualReplicas(all),
		UpdatedReplicas:     actualReplicas([]*appsv1.ReplicaSet{newRS}),
		ReadyReplicas:       readyReplicas(all),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	st.Conditions = append(st.Conditions, d.Status.Conditions...)
	if available >= replicas(d.Spec.Replicas)-MaxUnavailable(d) {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumReplicasAvailable, "Deployment has minimum availability.", c.now()))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability.", c.now()))
	}
	return st
}

// isScalingEvent reports whether d's replicas differ from the desired
// replicas its active ReplicaSets were last scaled for.
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (bool, error) {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeReplicaSets(append(olds, newRS)) {
		desired, ok := int32Annotation(rs, DesiredReplicasAnnotation)
		if ok && desired != replicas(d.Spec.Replicas) {
			return true, nil
		}
	}
	return false, nil
}
