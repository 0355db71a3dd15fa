// Package defaultbinder is the DefaultBinder plugin: it binds a pod by
// creating its pods/binding subresource, which sets spec.nodeName.
package defaultbinder

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Name is the plugin's name.
const Name = "DefaultBinder"

// DefaultBinder binds through the API.
type DefaultBinder struct {
	client kubernetes.Interface
}

var _ framework.BindPlugin = (*DefaultBinder)(nil)

// New builds the plugin.
func New(_ context.Context, _ any, h framework.Handle) (framework.Plugin, error) {
	if h.ClientSet() == nil {
		return nil, fmt.Errorf("%s needs a clientset", Name)
	}
	return &DefaultBinder{client: h.ClientSet()}, nil
}

// Name implements framework.Plugin.
func (*DefaultBinder) Name() string { return Name }

// Bind implements framework.BindPlugin.
func (b *DefaultBinder) Bind(ctx context.Context, _ *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if err := b.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return framework.AsStatus(fmt.Errorf("bind pod %s/%s to node %s: %w", pod.Namespace, pod.Name, nodeName, err))
	}
	return nil
}
