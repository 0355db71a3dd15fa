package apps

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func errSet(errs field.ErrorList) string {
	s := make([]string, 0, len(errs))
	for _, e := range errs {
		s = append(s, fmt.Sprintf("%s %s", e.Type, e.Field))
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

func want(pairs ...string) string {
	s := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		s = append(s, pairs[i]+" "+pairs[i+1])
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

const (
	required     = "Required value"
	invalid      = "Invalid value"
	notSupported = "Unsupported value"
	forbidden    = "Forbidden"
)

func template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
}

func newDeployment(mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(),
		},
	}
	if mutate != nil {
		mutate(d)
	}
	s := DeploymentStrategy{}
	s.Default(d)
	s.PrepareForCreate(context.Background(), d)
	return d
}

func TestDeploymentDefaults(t *testing.T) {
	d := newDeployment(nil)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"replicas", *d.Spec.Replicas, int32(1)},
		{"strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"maxSurge", *d.Spec.Strategy.RollingUpdate.MaxSurge, intstr.FromString("25%")},
		{"maxUnavailable", *d.Spec.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("25%")},
		{"revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, int32(10)},
		{"progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, int32(600)},
		{"template restartPolicy", d.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"template dnsPolicy", d.Spec.Template.Spec.DNSPolicy, corev1.DNSClusterFirst},
		{"template pull policy", d.Spec.Template.Spec.Containers[0].ImagePullPolicy, corev1.PullAlways},
		{"template has no enableServiceLinks", d.Spec.Template.Spec.EnableServiceLinks, (*bool)(nil)},
		{"generation", d.Generation, int64(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	recreate := newDeployment(func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType })
	if recreate.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("got rollingUpdate %v for Recreate, want none", recreate.Spec.Strategy.RollingUpdate)
	}
}

func TestDeploymentValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		want   string
	}{
		{"valid", func(*appsv1.Deployment) {}, ""},
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32); *d.Spec.Replicas = -1 }, want(invalid, "spec.replicas")},
		{"no selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, want(required, "spec.selector", invalid, "spec.template.metadata.labels")},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, want(invalid, "spec.selector")},
		{"selector does not match", func(d *appsv1.Deployment) { d.Spec.Selector.MatchLabels = map[string]string{"app": "api"} },
			want(invalid, "spec.template.metadata.labels")},
		{"bad selector operator", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}
		}, want(invalid, "spec.selector.matchExpressions[0].operator", invalid, "spec.selector")},
		{"restart policy", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			want(notSupported, "spec.template.spec.restartPolicy")},
		{"container", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" },
			want(required, "spec.template.spec.containers[0].image")},
		{"template label", func(d *appsv1.Deployment) { d.Spec.Template.Labels["bad key!"] = "x" },
			want(invalid, "spec.template.labels")},
		{"both zero", func(d *appsv1.Deployment) {
			zero := intstr.FromInt32(0)
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &zero}
		}, want(invalid, "spec.strategy.rollingUpdate.maxUnavailable")},
		{"percent over 100", func(d *appsv1.Deployment) {
			v := intstr.FromString("150%")
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: &v}
		}, want(invalid, "spec.strategy.rollingUpdate.maxUnavailable")},
		{"bad percent", func(d *appsv1.Deployment) {
			v := intstr.FromString("ten")
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &v}
		}, want(invalid, "spec.strategy.rollingUpdate.maxSurge")},
		{"negative surge", func(d *appsv1.Deployment) {
			v := intstr.FromInt32(-1)
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &v}
		}, want(invalid, "spec.strategy.rollingUpdate.maxSurge")},
		{"recreate with rolling update", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}, want(forbidden, "spec.strategy.rollingUpdate")},
		{"strategy type", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }, want(notSupported, "spec.strategy")},
		{"revision history", func(d *appsv1.Deployment) {
			d.Spec.RevisionHistoryLimit = new(int32)
			*d.Spec.RevisionHistoryLimit = -1
		},
			want(invalid, "spec.revisionHistoryLimit")},
		{"progress deadline", func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 600
		}, want(invalid, "spec.progressDeadlineSeconds")},
		{"name", func(d *appsv1.Deployment) { d.Name = "Web" }, want(invalid, "metadata.name")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment(tt.mutate)
			if got := errSet(DeploymentStrategy{}.Validate(context.Background(), d)); got != tt.want {
				t.Errorf("got errors [%s], want [%s]", got, tt.want)
			}
		})
	}
}

func TestDeploymentUpdate(t *testing.T) {
	ctx := context.Background()
	s := DeploymentStrategy{}
	old := newDeployment(nil)
	old.Status.Replicas = 1

	same := old.DeepCopy()
	same.Status = appsv1.DeploymentStatus{}
	s.PrepareForUpdate(ctx, same, old)
	if same.Generation != 1 || same.Status.Replicas != 1 {
		t.Errorf("got generation %d status %v, want 1 and the old status", same.Generation, same.Status)
	}
	scaled := old.DeepCopy()
	*scaled.Spec.Replicas = 5
	s.PrepareForUpdate(ctx, scaled, old)
	if scaled.Generation != 2 {
		t.Errorf("got generation %d after a spec change, want 2", scaled.Generation)
	}
	annotated := old.DeepCopy()
	annotated.Annotations = map[string]string{"a": "b"}
	s.PrepareForUpdate(ctx, annotated, old)
	if annotated.Generation != 2 {
		t.Errorf("got generation %d after an annotation change, want 2", annotated.Generation)
	}
	sel := old.DeepCopy()
	sel.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "fe"}}
	sel.Spec.Template.Labels["tier"] = "fe"
	s.PrepareForUpdate(ctx, sel, old)
	if got := errSet(s.ValidateUpdate(ctx, sel, old)); got != want(invalid, "spec.selector") {
		t.Errorf("got errors [%s], want the selector immutable", got)
	}

	st := old.DeepCopy()
	*st.Spec.Replicas = 9
	st.Status = appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 3}
	s.PrepareForStatusUpdate(ctx, st, old)
	if *st.Spec.Replicas != 1 {
		t.Errorf("got replicas %d after a status update, want the old spec", *st.Spec.Replicas)
	}
	if got := errSet(s.ValidateStatusUpdate(ctx, st, old)); got != want(invalid, "status.readyReplicas") {
		t.Errorf("got errors [%s], want readyReplicas invalid", got)
	}
}

func TestScale(t *testing.T) {
	ctx := context.Background()
	s := DeploymentStrategy{}
	d := newDeployment(nil)
	d.Status.Replicas = 1
	scale, err := s.Scale(d)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	if scale.Spec.Replicas != 1 || scale.Status.Replicas != 1 || scale.Status.Selector != "app=web" || scale.Name != "web" || scale.ResourceVersion != "1" {
		t.Errorf("got scale %+v, want replicas 1, selector app=web, the deployment's name and version", scale)
	}
	scale.Spec.Replicas = 4
	if errs := s.ValidateScale(scale); len(errs) != 0 {
		t.Errorf("got errors %v, want none", errs)
	}
	updated := d.DeepCopy()
	s.ApplyScale(updated, scale)
	s.PrepareForUpdate(ctx, updated, d)
	if *updated.Spec.Replicas != 4 || updated.Generation != 2 {
		t.Errorf("got replicas %d generation %d, want 4 and 2", *updated.Spec.Replicas, updated.Generation)
	}
	bad := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}
	if got := errSet(ReplicaSetStrategy{}.ValidateScale(bad)); got != want(invalid, "spec.replicas") {
		t.Errorf("got errors [%s], want spec.replicas invalid", got)
	}
}

func TestReplicaSet(t *testing.T) {
	ctx := context.Background()
	s := ReplicaSetStrategy{}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", ResourceVersion: "1"},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template()},
		Status:     appsv1.ReplicaSetStatus{Replicas: 3},
	}
	s.Default(rs)
	s.PrepareForCreate(ctx, rs)
	if *rs.Spec.Replicas != 1 || rs.Status.Replicas != 0 || rs.Generation != 1 {
		t.Errorf("got replicas %d status %v generation %d, want 1, cleared status, 1", *rs.Spec.Replicas, rs.Status, rs.Generation)
	}
	if errs := s.Validate(ctx, rs); len(errs) != 0 {
		t.Errorf("got errors %v, want none", errs)
	}
	bad := rs.DeepCopy()
	bad.Spec.Template.Spec.ActiveDeadlineSeconds = new(int64)
	*bad.Spec.Template.Spec.ActiveDeadlineSeconds = 5
	bad.Spec.MinReadySeconds = -1
	if got := errSet(s.Validate(ctx, bad)); got != want(forbidden, "spec.template.spec.activeDeadlineSeconds", invalid, "spec.minReadySeconds") {
		t.Errorf("got errors [%s], want activeDeadlineSeconds forbidden and minReadySeconds invalid", got)
	}
	st := rs.DeepCopy()
	st.Status = appsv1.ReplicaSetStatus{Replicas: 1, AvailableReplicas: 1}
	s.PrepareForStatusUpdate(ctx, st, rs)
	if got := errSet(s.ValidateStatusUpdate(ctx, st, rs)); got != want(invalid, "status.availableReplicas") {
		t.Errorf("got errors [%s], want availableReplicas above readyReplicas invalid", got)
	}
	if got := s.SelectableFields(st).Get("status.replicas"); got != "1" {
		t.Errorf("got status.replicas=%q, want 1", got)
	}
}

func TestTables(t *testing.T) {
	ctx := context.Background()
	d := newDeployment(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "envoy:1"})
	})
	d.Status = appsv1.DeploymentStatus{ReadyReplicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
	tbl, err := DeploymentStrategy{}.ConvertToTable(ctx, &appsv1.DeploymentList{Items: []appsv1.Deployment{*d}}, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	wantCells := []any{"web", "1/1", int64(1), int64(1), "<unknown>", "web,side", "nginx,envoy:1", "app=web"}
	if !reflect.DeepEqual(tbl.Rows[0].Cells, wantCells) {
		t.Errorf("got %v, want %v", tbl.Rows[0].Cells, wantCells)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template()},
		Status: appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 1}}
	ReplicaSetStrategy{}.Default(rs)
	tbl, err = ReplicaSetStrategy{}.ConvertToTable(ctx, rs, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	wantCells = []any{"web-1", int64(1), int64(2), int64(1), "<unknown>", "web", "nginx", "app=web"}
	if !reflect.DeepEqual(tbl.Rows[0].Cells, wantCells) {
		t.Errorf("got %v, want %v", tbl.Rows[0].Cells, wantCells)
	}
}
