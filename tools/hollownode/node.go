package hollownode

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubeletVersion is what hollow nodes report.
const KubeletVersion = "v1.37.2-skiff-hollow"

// register creates (or adopts) every Node with its status and its Lease.
func (c *Cluster) register(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: LeaseNamespace}}
	if _, err := c.cfg.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("hollownode: create namespace %s: %w", LeaseNamespace, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, h := range c.nodes {
		g.Go(func() error { return c.registerNode(gctx, i, h) })
	}
	return g.Wait()
}

func (c *Cluster) nodeObject(i int, h *hollow) *corev1.Node {
	now := metav1.Now()
	res := corev1.ResourceList{
		corev1.ResourceCPU:              c.cfg.CPU,
		corev1.ResourceMemory:           c.cfg.Memory,
		corev1.ResourcePods:             *resource.NewQuantity(c.cfg.Pods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: h.name,
			Labels: map[string]string{
				corev1.LabelHostname:           h.name,
				corev1.LabelTopologyZone:       c.cfg.Zones[i%len(c.cfg.Zones)],
				corev1.LabelOSStable:           "linux",
				corev1.LabelArchStable:         "amd64",
				corev1.LabelInstanceTypeStable: "hollow",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: h.podCIDR.String(), PodCIDRs: []string{h.podCIDR.String()}},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: h.nodeIP.String()},
				{Type: corev1.NodeHostName, Address: h.name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: strconv.Itoa(i), SystemUUID: string(rune('a'+i%26)) + strconv.Itoa(i),
				KernelVersion: "6.18.0-hollow", OSImage: "Hollow Linux", ContainerRuntimeVersion: "hollow://1.0",
				KubeletVersion: KubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
			},
		},
	}
}

func (c *Cluster) registerNode(ctx context.Context, i int, h *hollow) error {
	want := c.nodeObject(i, h)
	nodes := c.cfg.Client.CoreV1().Nodes()
	node, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, h.name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("hollownode: register node %s: %w", h.name, err)
	}
	// A node that exists keeps its podCIDR (the API server does not let it
	// change): pod IPs come from it.
	if p, err := netip.ParsePrefix(node.Spec.PodCIDR); err == nil && p.Addr().Is4() && p.Masked() != h.podCIDR {
		h.mu.Lock()
		h.podCIDR = p.Masked()
		h.mu.Unlock()
	}
	// Status is a subresource: write it separately, as a kubelet does.
	node.Status = want.Status
	node, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("hollownode: node %s status: %w", h.name, err)
	}
	secs := int32(c.cfg.LeaseDuration / time.Second)
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: h.name, Namespace: LeaseNamespace,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: h.name, UID: node.UID}},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &h.name, LeaseDurationSeconds: &secs, RenewTime: &now},
	}
	leases := c.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *coordinationv1.Lease
		cur, err = leases.Get(ctx, h.name, metav1.GetOptions{})
		if err == nil {
			cur.Spec = lease.Spec
			cur.OwnerReferences = lease.OwnerReferences
			created, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("hollownode: lease of %s: %w", h.name, err)
	}
	h.mu.Lock()
	h.lease = created
	h.mu.Unlock()
	return nil
}

// renewLoop renews the leases of nodes worker, worker+LeaseWorkers, ...
// every RenewInterval.
func (c *Cluster) renewLoop(ctx context.Context, worker int) {
	t := time.NewTicker(c.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i := worker; i < len(c.nodes); i += c.cfg.LeaseWorkers {
			if ctx.Err() != nil {
				return
			}
			h := c.nodes[i]
			if h.isStopped() {
				continue
			}
			if err := c.renew(ctx, h); err != nil && ctx.Err() == nil {
				c.log.Debug("renew lease", "node", h.name, "err", err)
			}
		}
	}
}

func (c *Cluster) renew(ctx context.Context, h *hollow) error {
	h.mu.Lock()
	lease := h.lease.DeepCopy()
	h.mu.Unlock()
	leases := c.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease.Spec.RenewTime = &now
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// Someone else wrote it (or deleted it): start again from the
		// server's copy.
		cur, gerr := leases.Get(ctx, h.name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		cur.Spec.RenewTime = &now
		cur.Spec.HolderIdentity = &h.name
		updated, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.lease = updated
	h.mu.Unlock()
	return nil
}
