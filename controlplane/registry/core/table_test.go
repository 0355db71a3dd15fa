package core

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(time.Now().Add(-d)) }

func TestPodTableStatus(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	started := true
	tests := []struct {
		name     string
		pod      func(*corev1.Pod)
		ready    string
		status   string
		restarts string
	}{
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, "0/1", "Pending", "0"},
		{"running", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}, "1/1", "Running", "0"},
		{"crash loop", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(15 * time.Minute)}}}}
		}, "0/1", "CrashLoopBackOff", "4 (15m ago)"},
		{"completed", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}
		}, "0/1", "Completed", "0"},
		{"exit code", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}}}
		}, "0/1", "ExitCode:2", "0"},
		{"init running", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i1"}, {Name: "i2"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "i2", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}
		}, "0/1", "Init:1/2", "0"},
		{"init failed", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i1"}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3}}}}
		}, "0/1", "Init:ExitCode:3", "0"},
		{"init image pull", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i1"}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "i1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}
		}, "0/1", "Init:ErrImagePull", "0"},
		{"sidecar counts", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always}}
			p.Status.Phase = corev1.PodRunning
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "side", Started: &started, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}, "2/2", "Running", "0"},
		{"terminating", func(p *corev1.Pod) {
			now := metav1.Now()
			p.DeletionTimestamp = &now
			p.Status.Phase = corev1.PodRunning
		}, "0/1", "Terminating", "0"},
		{"node lost", func(p *corev1.Pod) {
			now := metav1.Now()
			p.DeletionTimestamp = &now
			p.Status.Phase = corev1.PodRunning
			p.Status.Reason = "NodeLost"
		}, "0/1", "Unknown", "0"},
		{"gated", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Reason: corev1.PodReasonSchedulingGated}}
		}, "0/1", "SchedulingGated", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: ago(20 * time.Minute)},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
			tt.pod(p)
			tbl, err := PodStrategy{}.ConvertToTable(context.Background(), p, nil)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			cells := tbl.Rows[0].Cells
			got := []any{cells[0], cells[1], cells[2], cells[3], cells[4]}
			want := []any{"web", tt.ready, tt.status, tt.restarts, "20m"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestPodTableWideAndList(t *testing.T) {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: "7"},
		Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c"}}, ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "x/ready"}}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}, Conditions: []corev1.PodCondition{{Type: "x/ready", Status: corev1.ConditionTrue}}}}
	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"}, Items: []corev1.Pod{p, p}}
	tbl, err := PodStrategy{}.ConvertToTable(context.Background(), list, &metav1.TableOptions{})
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	if len(tbl.Rows) != 2 || tbl.ResourceVersion != "42" || tbl.Continue != "next" {
		t.Fatalf("got %d rows rv %q continue %q, want 2 rows, 42, next", len(tbl.Rows), tbl.ResourceVersion, tbl.Continue)
	}
	names := make([]string, 0, len(tbl.ColumnDefinitions))
	for _, c := range tbl.ColumnDefinitions {
		names = append(names, c.Name)
	}
	wantNames := []string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"}
	if !reflect.DeepEqual(names, wantNames) || tbl.ColumnDefinitions[5].Priority != 1 || tbl.ColumnDefinitions[4].Priority != 0 {
		t.Errorf("got columns %v, want %v with the last four at priority 1", names, wantNames)
	}
	row := tbl.Rows[0]
	if got := row.Cells[5:]; !reflect.DeepEqual(got, []any{"10.244.1.5", "node-1", "<none>", "1/1"}) {
		t.Errorf("got wide cells %v, want IP, node, <none>, 1/1", got)
	}
	if row.Cells[4] != "<unknown>" {
		t.Errorf("got age %v for no creation time, want <unknown>", row.Cells[4])
	}
	if len(row.Conditions) != 1 || row.Conditions[0].Type != metav1.RowCompleted {
		t.Errorf("got row conditions %v, want Completed", row.Conditions)
	}
	if obj, ok := row.Object.Object.(*corev1.Pod); !ok || obj.Name != "web" {
		t.Errorf("got row object %T, want the pod", row.Object.Object)
	}
	single, err := PodStrategy{}.ConvertToTable(context.Background(), &p, &metav1.TableOptions{NoHeaders: true})
	if err != nil || len(single.Rows) != 1 || single.ColumnDefinitions != nil || single.ResourceVersion != "7" {
		t.Errorf("got %+v, %v, want one row, no headers and the object's resourceVersion", single, err)
	}
	if _, err := (PodStrategy{}).ConvertToTable(context.Background(), &corev1.Service{}, nil); err == nil {
		t.Errorf("got no error for a service in the pod table, want one")
	}
}

func TestServiceTable(t *testing.T) {
	vip := corev1.LoadBalancerIPModeVIP
	tests := []struct {
		name string
		svc  corev1.Service
		want []any
	}{
		{"cluster ip", corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Port: 80, Protocol: "TCP"}, {Port: 53, Protocol: "UDP"}}, Selector: map[string]string{"app": "a"}}},
			[]any{"a", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "<unknown>", "app=a"}},
		{"node port", corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIPs: []string{"10.96.0.11"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: "TCP"}}}},
			[]any{"b", "NodePort", "10.96.0.11", "<none>", "80:30080/TCP", "<unknown>", "<none>"}},
		{"pending lb", corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
			[]any{"c", "LoadBalancer", "<none>", "<pending>", "<none>", "<unknown>", "<none>"}},
		{"lb", corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: []string{"198.51.100.1"}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.9", IPMode: &vip}, {Hostname: "lb.example.com"}}}}},
			[]any{"d", "LoadBalancer", "<none>", "203.0.113.9,lb.example.com,198.51.100.1", "<none>", "<unknown>", "<none>"}},
		{"external name", corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "e"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
			[]any{"e", "ExternalName", "<none>", "example.com", "<none>", "<unknown>", "<none>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := ServiceStrategy{}.ConvertToTable(context.Background(), &tt.svc, nil)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if !reflect.DeepEqual(tbl.Rows[0].Cells, tt.want) {
				t.Errorf("got %v, want %v", tbl.Rows[0].Cells, tt.want)
			}
		})
	}
}

func TestNodeTable(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: ago(49 * time.Hour),
			Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
		Spec: corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.50.11"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", KernelVersion: "6.18.0", Architecture: "amd64"},
		},
	}
	tbl, err := NodeStrategy{}.ConvertToTable(context.Background(), n, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	want := []any{"node-1", "Ready,SchedulingDisabled", "control-plane,worker", "2d1h", "v1.37.2", "192.168.50.11", "<none>", "<unknown>", "6.18.0 (amd64)", "<unknown>"}
	if !reflect.DeepEqual(tbl.Rows[0].Cells, want) {
		t.Errorf("got %v, want %v", tbl.Rows[0].Cells, want)
	}
	n.Status.Conditions = nil
	n.Spec.Unschedulable = false
	tbl, _ = NodeStrategy{}.ConvertToTable(context.Background(), n, nil)
	if tbl.Rows[0].Cells[1] != "Unknown" {
		t.Errorf("got status %v without conditions, want Unknown", tbl.Rows[0].Cells[1])
	}
}

func TestSmallTables(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		tbl  func() (*metav1.Table, error)
		want []any
	}{
		{"namespace", func() (*metav1.Table, error) {
			return NamespaceStrategy{}.ConvertToTable(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: ago(40 * time.Minute)}, Status: corev1.NamespaceStatus{Phase: "Active"}}, nil)
		}, []any{"a", "Active", "40m"}},
		{"configmap", func() (*metav1.Table, error) {
			return ConfigMapStrategy{}.ConvertToTable(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"a": ""}, BinaryData: map[string][]byte{"b": nil}}, nil)
		}, []any{"c", int64(2), "<unknown>"}},
		{"secret", func() (*metav1.Table, error) {
			return SecretStrategy{}.ConvertToTable(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": nil}}, nil)
		}, []any{"s", "Opaque", int64(1), "<unknown>"}},
		{"serviceaccount", func() (*metav1.Table, error) {
			return ServiceAccountStrategy{}.ConvertToTable(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, nil)
		}, []any{"default", "<unknown>"}},
		{"endpoints", func() (*metav1.Table, error) {
			return EndpointsStrategy{}.ConvertToTable(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "e"}, Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}},
				Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
			}}}, nil)
		}, []any{"e", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "<unknown>"}},
		{"endpoints none", func() (*metav1.Table, error) {
			return EndpointsStrategy{}.ConvertToTable(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "e"}}, nil)
		}, []any{"e", "<none>", "<unknown>"}},
		{"event", func() (*metav1.Table, error) {
			return EventStrategy{}.ConvertToTable(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1"}, Type: "Normal", Reason: "Pulled", Message: " done \n",
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{c}"}, Source: corev1.EventSource{Component: "kubelet", Host: "node-1"},
				FirstTimestamp: ago(30 * time.Minute), LastTimestamp: ago(12 * time.Minute), Count: 3}, nil)
		}, []any{"12m", "Normal", "Pulled", "pod/web", "spec.containers{c}", "kubelet, node-1", "done", "30m", int64(3), "web.1"}},
		{"event series", func() (*metav1.Table, error) {
			return EventStrategy{}.ConvertToTable(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "n.1"}, ReportingController: "skiff", InvolvedObject: corev1.ObjectReference{Kind: "Node"},
				EventTime: metav1.NewMicroTime(time.Now().Add(-time.Hour)), Series: &corev1.EventSeries{Count: 5, LastObservedTime: metav1.NewMicroTime(time.Now().Add(-20 * time.Minute))}}, nil)
		}, []any{"20m", "", "", "node", "", "skiff", "", "60m", int64(5), "n.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := tt.tbl()
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if len(tbl.ColumnDefinitions) != len(tt.want) || !reflect.DeepEqual(tbl.Rows[0].Cells, tt.want) {
				t.Errorf("got %d columns, cells %v, want %v", len(tbl.ColumnDefinitions), tbl.Rows[0].Cells, tt.want)
			}
		})
	}
}
