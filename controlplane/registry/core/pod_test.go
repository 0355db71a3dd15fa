package core

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func int64p(v int64) *int64 { return &v }

// newPod returns a minimal valid pod as a client would send it.
func newPod(mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27"}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// createdPod runs a pod through defaulting and create preparation.
func createdPod(mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := newPod(mutate...)
	s := PodStrategy{}
	s.Default(p)
	s.PrepareForCreate(context.Background(), p)
	return p
}

func TestPodDefaults(t *testing.T) {
	p := createdPod(func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{
			{Name: "a", Image: "nginx", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				Resources:     corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
				Env:           []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			{Name: "b", Image: "nginx:latest"},
			{Name: "c", Image: "nginx:1.27"},
			{Name: "d", Image: "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			{Name: "e", Image: "nginx:1.27", ImagePullPolicy: corev1.PullNever},
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "v"}, {Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}}}
	})
	spec := p.Spec
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"restartPolicy", spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"dnsPolicy", spec.DNSPolicy, corev1.DNSClusterFirst},
		{"schedulerName", spec.SchedulerName, "default-scheduler"},
		{"terminationGracePeriodSeconds", *spec.TerminationGracePeriodSeconds, int64(30)},
		{"securityContext", *spec.SecurityContext, corev1.PodSecurityContext{}},
		{"enableServiceLinks", *spec.EnableServiceLinks, true},
		{"priority", *spec.Priority, int32(0)},
		{"preemptionPolicy", *spec.PreemptionPolicy, corev1.PreemptLowerPriority},
		{"no tag pull policy", spec.Containers[0].ImagePullPolicy, corev1.PullAlways},
		{"latest pull policy", spec.Containers[1].ImagePullPolicy, corev1.PullAlways},
		{"tag pull policy", spec.Containers[2].ImagePullPolicy, corev1.PullIfNotPresent},
		{"digest pull policy", spec.Containers[3].ImagePullPolicy, corev1.PullIfNotPresent},
		{"explicit pull policy", spec.Containers[4].ImagePullPolicy, corev1.PullNever},
		{"terminationMessagePath", spec.Containers[0].TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", spec.Containers[0].TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"port protocol", spec.Containers[0].Ports[0].Protocol, corev1.ProtocolTCP},
		{"requests from limits", spec.Containers[0].Resources.Requests.Cpu().String(), "1"},
		{"probe timeout", spec.Containers[0].LivenessProbe.TimeoutSeconds, int32(1)},
		{"probe period", spec.Containers[0].LivenessProbe.PeriodSeconds, int32(10)},
		{"probe success", spec.Containers[0].LivenessProbe.SuccessThreshold, int32(1)},
		{"probe failure", spec.Containers[0].LivenessProbe.FailureThreshold, int32(3)},
		{"httpGet scheme", spec.Containers[0].LivenessProbe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"httpGet path", spec.Containers[0].LivenessProbe.HTTPGet.Path, "/"},
		{"fieldRef apiVersion", spec.Containers[0].Env[0].ValueFrom.FieldRef.APIVersion, "v1"},
		{"volume source", spec.Volumes[0].EmptyDir != nil, true},
		{"secret defaultMode", *spec.Volumes[1].Secret.DefaultMode, int32(0644)},
		{"phase", p.Status.Phase, corev1.PodPending},
		{"qos", p.Status.QOSClass, corev1.PodQOSBurstable},
		{"generation", p.Generation, int64(1)},
		{"tolerations", len(spec.Tolerations), 2},
		{"not-ready toleration", spec.Tolerations[0], corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: int64p(300)}},
		{"unreachable toleration", spec.Tolerations[1].Key, corev1.TaintNodeUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !apiequality.Semantic.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if errs := (PodStrategy{}).Validate(context.Background(), p); len(errs) != 0 {
		t.Errorf("got errors %v for the defaulted pod, want none", errs)
	}
}

func TestPodStatusIPDefaults(t *testing.T) {
	tests := []struct {
		name   string
		status corev1.PodStatus
		podIP  string
		podIPs []corev1.PodIP
		hostIP string
	}{
		{"podIP only", corev1.PodStatus{PodIP: "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "192.168.0.1"}}}, "10.0.0.1", []corev1.PodIP{{IP: "10.0.0.1"}}, "192.168.0.1"},
		{"podIPs only", corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.2"}}, HostIP: "192.168.0.2"}, "10.0.0.2", []corev1.PodIP{{IP: "10.0.0.2"}}, "192.168.0.2"},
		{"podIP wins", corev1.PodStatus{PodIP: "10.0.0.3", PodIPs: []corev1.PodIP{{IP: "10.0.0.4"}}}, "10.0.0.3", []corev1.PodIP{{IP: "10.0.0.3"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPod()
			p.Status = tt.status
			PodStrategy{}.Default(p)
			if p.Status.PodIP != tt.podIP || !apiequality.Semantic.DeepEqual(p.Status.PodIPs, tt.podIPs) || p.Status.HostIP != tt.hostIP {
				t.Errorf("got podIP %q podIPs %v hostIP %q, want %q %v %q", p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP, tt.podIP, tt.podIPs, tt.hostIP)
			}
		})
	}
}

func TestPodDefaultTolerationsKept(t *testing.T) {
	p := createdPod(func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	})
	if len(p.Spec.Tolerations) != 1 {
		t.Errorf("got tolerations %v, want only the tolerate-everything one", p.Spec.Tolerations)
	}
}

// TestPodDefaultTolerationSeconds: the not-ready and unreachable
// tolerations take their seconds from the strategy (kube-apiserver's
// --default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds), 300 when unset, and only the
// missing ones are added.
func TestPodDefaultTolerationSeconds(t *testing.T) {
	tests := []struct {
		name                          string
		strategy                      PodStrategy
		tolerations                   []corev1.Toleration
		wantNotReady, wantUnreachable *int64 // nil: no toleration added for the taint
	}{
		{"unset is 300", PodStrategy{}, nil, int64p(300), int64p(300)},
		{"configured", PodStrategy{NotReadyTolerationSeconds: int64p(5), UnreachableTolerationSeconds: int64p(10)}, nil, int64p(5), int64p(10)},
		{"zero is zero", PodStrategy{NotReadyTolerationSeconds: int64p(0), UnreachableTolerationSeconds: int64p(0)}, nil, int64p(0), int64p(0)},
		{"only unreachable configured", PodStrategy{UnreachableTolerationSeconds: int64p(20)}, nil, int64p(300), int64p(20)},
		{"pod tolerates not-ready already", PodStrategy{NotReadyTolerationSeconds: int64p(5), UnreachableTolerationSeconds: int64p(10)},
			[]corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: int64p(1000)}},
			int64p(1000), int64p(10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(func(p *corev1.Pod) { p.Spec.Tolerations = tc.tolerations })
			tc.strategy.Default(p)
			tc.strategy.PrepareForCreate(context.Background(), p)
			got := map[string]*int64{}
			for _, tl := range p.Spec.Tolerations {
				got[tl.Key] = tl.TolerationSeconds
			}
			for key, want := range map[string]*int64{corev1.TaintNodeNotReady: tc.wantNotReady, corev1.TaintNodeUnreachable: tc.wantUnreachable} {
				g, ok := got[key]
				if !ok || g == nil || *g != *want {
					t.Errorf("%s: got %v (present %t), want %d seconds", key, ptrString(g), ok, *want)
				}
			}
			if len(p.Spec.Tolerations) != 2 {
				t.Errorf("got tolerations %v, want two", p.Spec.Tolerations)
			}
		})
	}
}

func ptrString(v *int64) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprint(*v)
}

func TestPodQOS(t *testing.T) {
	rl := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	tests := []struct {
		name string
		res  []corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"none", []corev1.ResourceRequirements{{}}, corev1.PodQOSBestEffort},
		{"limits equal requests", []corev1.ResourceRequirements{{Limits: rl("1", "1Gi"), Requests: rl("1", "1Gi")}}, corev1.PodQOSGuaranteed},
		{"limits only (requests defaulted)", []corev1.ResourceRequirements{{Limits: rl("1", "1Gi")}}, corev1.PodQOSGuaranteed},
		{"cpu only", []corev1.ResourceRequirements{{Limits: rl("1", "")}}, corev1.PodQOSBurstable},
		{"requests below limits", []corev1.ResourceRequirements{{Limits: rl("1", "1Gi"), Requests: rl("500m", "1Gi")}}, corev1.PodQOSBurstable},
		{"mixed containers", []corev1.ResourceRequirements{{Limits: rl("1", "1Gi")}, {}}, corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := createdPod(func(p *corev1.Pod) {
				p.Spec.Containers = nil
				for i, r := range tt.res {
					p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Image: "x", Resources: r})
				}
			})
			if p.Status.QOSClass != tt.want {
				t.Errorf("got %s, want %s", p.Status.QOSClass, tt.want)
			}
		})
	}
}

func TestPodValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []wantErr
	}{
		{"valid", func(*corev1.Pod) {}, nil},
		{"bad name", func(p *corev1.Pod) { p.Name = "Web_1" }, []wantErr{inv("metadata.name")}},
		{"no namespace", func(p *corev1.Pod) { p.Namespace = "" }, []wantErr{req("metadata.namespace")}},
		{"bad label", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b c"} }, []wantErr{inv("metadata.labels")}},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []wantErr{req("spec.containers")}},
		{"container name and image required", func(p *corev1.Pod) { p.Spec.Containers[0] = corev1.Container{} },
			[]wantErr{req("spec.containers[0].name"), req("spec.containers[0].image")}},
		{"bad container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "C" }, []wantErr{inv("spec.containers[0].name")}},
		{"duplicate container", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", Image: "x"})
		}, []wantErr{dup("spec.containers[1].name")}},
		{"init container duplicates container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "c", Image: "x"}}
		}, []wantErr{dup("spec.initContainers[0].name")}},
		{"image whitespace", func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" }, []wantErr{inv("spec.containers[0].image")}},
		{"port out of range", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}, {ContainerPort: 80, HostPort: -1}}
		}, []wantErr{inv("spec.containers[0].ports[0].containerPort"), inv("spec.containers[0].ports[1].hostPort")}},
		{"port required", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = []corev1.ContainerPort{{}} },
			[]wantErr{req("spec.containers[0].ports[0].containerPort")}},
		{"port names", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80}, {Name: "http", ContainerPort: 81}, {Name: "Bad_Name", ContainerPort: 82}}
		}, []wantErr{dup("spec.containers[0].ports[1].name"), inv("spec.containers[0].ports[2].name")}},
		{"protocol", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "ICMP"}}
		}, []wantErr{notSup("spec.containers[0].ports[0].protocol")}},
		{"host port conflict", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8080}}})
		}, []wantErr{dup("spec.containers[1].ports[0].hostPort")}},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []wantErr{notSup("spec.restartPolicy")}},
		{"dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, []wantErr{notSup("spec.dnsPolicy")}},
		{"dns none without config", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, []wantErr{req("spec.dnsConfig")}},
		{"pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, []wantErr{notSup("spec.containers[0].imagePullPolicy")}},
		{"requests above limits", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			}
		}, []wantErr{inv("spec.containers[0].resources.requests")}},
		{"negative quantity", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1")}
		}, []wantErr{inv("spec.containers[0].resources.limits[memory]"), inv("spec.containers[0].resources.requests[memory]")}},
		{"unknown resource", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"pods": resource.MustParse("1")}
		}, []wantErr{inv("spec.containers[0].resources.requests[pods]")}},
		{"extended resource must be integer", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"example.com/gpu": resource.MustParse("500m")}
		}, []wantErr{inv("spec.containers[0].resources.limits[example.com/gpu]"), inv("spec.containers[0].resources.requests[example.com/gpu]")}},
		{"probe without handler", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{}
		}, []wantErr{req("spec.containers[0].readinessProbe")}},
		{"probe two handlers and bad numbers", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
				PeriodSeconds:    -1,
				SuccessThreshold: 2,
			}
		}, []wantErr{forbidden("spec.containers[0].livenessProbe.tcpSocket"), inv("spec.containers[0].livenessProbe.periodSeconds"), inv("spec.containers[0].livenessProbe.successThreshold")}},
		{"probe port", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(0)}}}
		}, []wantErr{inv("spec.containers[0].readinessProbe.httpGet.port")}},
		{"env names", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: ""}, {Name: "A=B"}, {Name: "ok", Value: "v", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}}
		}, []wantErr{req("spec.containers[0].env[0].name"), inv("spec.containers[0].env[1].name"), inv("spec.containers[0].env[2].valueFrom")}},
		{"env fieldRef path", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.containers"}}}}
		}, []wantErr{notSup("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath")}},
		{"volumes", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "b"}, // defaulted to emptyDir
				{Name: "c", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}, HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
				{Name: "Bad", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}},
			}
		}, []wantErr{dup("spec.volumes[1].name"), forbidden("spec.volumes[3].hostPath"), inv("spec.volumes[4].name"), req("spec.volumes[4].secret.secretName")}},
		{"volume mounts", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/a"}, {Name: "b", MountPath: "/a"}, {Name: "a"}}
		}, []wantErr{notFound("spec.containers[0].volumeMounts[1].name"), inv("spec.containers[0].volumeMounts[1].mountPath"), req("spec.containers[0].volumeMounts[2].mountPath")}},
		{"tolerations", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpEqual}, {Key: "k", Operator: "Maybe"}, {Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: int64p(1)}}
		}, []wantErr{inv("spec.tolerations[0].operator"), notSup("spec.tolerations[1].operator"), inv("spec.tolerations[2].effect")}},
		{"node name", func(p *corev1.Pod) { p.Spec.NodeName = "Node_1" }, []wantErr{inv("spec.nodeName")}},
		{"service account name", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "SA"; p.Spec.DeprecatedServiceAccount = "SA" }, []wantErr{inv("spec.serviceAccountName")}},
		{"active deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = int64p(0) }, []wantErr{inv("spec.activeDeadlineSeconds")}},
		{"negative grace period is defaulted", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = int64p(-5) }, nil},
		{"hostname", func(p *corev1.Pod) { p.Spec.Hostname = "a.b" }, []wantErr{inv("spec.hostname")}},
		{"unknown priority class", func(p *corev1.Pod) { p.Spec.PriorityClassName = "gold" }, []wantErr{notFound("spec.priorityClassName")}},
		{"priority mismatch", func(p *corev1.Pod) { p.Spec.Priority = new(int32); *p.Spec.Priority = 7 }, []wantErr{forbidden("spec.priority")}},
		{"ephemeral containers on create", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
		}, []wantErr{forbidden("spec.ephemeralContainers")}},
		{"init container probes", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}, []wantErr{forbidden("spec.initContainers[0].readinessProbe")}},
		{"sidecar probes allowed", func(p *corev1.Pod) {
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", RestartPolicy: &always, ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}, nil},
		{"system priority class", func(p *corev1.Pod) { p.Spec.PriorityClassName = SystemNodeCritical }, nil},
		{"security contexts", func(p *corev1.Pod) {
			uid, no, yes := int64(-1), false, true
			unmasked := corev1.UnmaskedProcMount
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes, AllowPrivilegeEscalation: &no, ProcMount: &unmasked,
				SeccompProfile: &corev1.SeccompProfile{Type: "Strict"}}
		}, []wantErr{inv("spec.securityContext.runAsUser"), req("spec.securityContext.seccompProfile.localhostProfile"),
			inv("spec.containers[0].securityContext"), inv("spec.containers[0].securityContext.procMount"),
			notSup("spec.containers[0].securityContext.seccompProfile.type")}},
		{"node affinity", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: "Near"}, {Key: "zone", Operator: corev1.NodeSelectorOpIn}},
					MatchFields:      []corev1.NodeSelectorRequirement{{Key: "spec.nodeName", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}},
				}}},
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 101}},
			}}
		}, []wantErr{
			inv("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator"),
			req("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values"),
			inv("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key"),
			inv("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"),
		}},
		{"pod anti-affinity", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
			}}
		}, []wantErr{req("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"),
			inv("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"),
			inv("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey")}},
		{"topology spread", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
				{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule},
				{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule},
				{MaxSkew: 1, WhenUnsatisfiable: "Maybe"},
			}
		}, []wantErr{inv("spec.topologySpreadConstraints[0].maxSkew"), dup("spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}"),
			req("spec.topologySpreadConstraints[2].topologyKey"), notSup("spec.topologySpreadConstraints[2].whenUnsatisfiable")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := createdPod(tt.mutate)
			checkErrors(t, PodStrategy{}.Validate(context.Background(), p), tt.want...)
		})
	}
}

func TestPodValidateUpdate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []wantErr
	}{
		{"unchanged", func(*corev1.Pod) {}, nil},
		{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, nil},
		{"labels", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, nil},
		{"add toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
		}, nil},
		{"remove toleration", func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[1:] }, []wantErr{forbidden("spec.tolerations")}},
		{"default tolerations come back", func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[:1] }, nil},
		{"lower active deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = int64p(10) }, nil},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, []wantErr{forbidden("spec")}},
		{"add container", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Image: "x", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullAlways})
		}, []wantErr{forbidden("spec.containers")}},
		{"ports", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 1, Protocol: "TCP"}}
		}, []wantErr{forbidden("spec")}},
		{"name", func(p *corev1.Pod) { p.Name = "other" }, []wantErr{inv("metadata.name")}},
		{"no resourceVersion", func(p *corev1.Pod) { p.ResourceVersion = "" }, []wantErr{inv("metadata.resourceVersion")}},
	}
	gatedTests := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []wantErr
	}{
		{"remove gate", func(p *corev1.Pod) { p.Spec.SchedulingGates = nil }, nil},
		{"add gate", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = append(p.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: "other"})
		},
			[]wantErr{forbidden("spec.schedulingGates[1]")}},
		{"add node selector", func(p *corev1.Pod) { p.Spec.NodeSelector["zone"] = "a" }, nil},
		{"change node selector", func(p *corev1.Pod) { p.Spec.NodeSelector["disk"] = "hdd" }, []wantErr{inv("spec.nodeSelector")}},
		{"set node affinity", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}}}}}
		}, nil},
	}
	for _, tt := range gatedTests {
		t.Run("gated "+tt.name, func(t *testing.T) {
			old := createdPod(func(p *corev1.Pod) {
				p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/quota"}}
				p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			})
			p := old.DeepCopy()
			tt.mutate(p)
			s := PodStrategy{}
			s.Default(p)
			s.PrepareForUpdate(context.Background(), p, old)
			checkErrors(t, s.ValidateUpdate(context.Background(), p, old), tt.want...)
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := createdPod(func(p *corev1.Pod) {
				p.Spec.ActiveDeadlineSeconds = int64p(100)
				p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
			})
			p := old.DeepCopy()
			tt.mutate(p)
			s := PodStrategy{}
			s.Default(p)
			s.PrepareForUpdate(context.Background(), p, old)
			checkErrors(t, s.ValidateUpdate(context.Background(), p, old), tt.want...)
		})
	}
}

func TestPodPrepareForUpdate(t *testing.T) {
	old := createdPod()
	old.Status.Phase = corev1.PodRunning
	s := PodStrategy{}

	same := old.DeepCopy()
	same.Status = corev1.PodStatus{}
	s.PrepareForUpdate(context.Background(), same, old)
	if same.Status.Phase != corev1.PodRunning || same.Generation != 1 {
		t.Errorf("got phase %q generation %d, want status kept and generation 1", same.Status.Phase, same.Generation)
	}
	changed := old.DeepCopy()
	changed.Spec.Containers[0].Image = "nginx:2"
	s.PrepareForUpdate(context.Background(), changed, old)
	if changed.Generation != 2 {
		t.Errorf("got generation %d after a spec change, want 2", changed.Generation)
	}

	st := old.DeepCopy()
	st.Spec.NodeName = "elsewhere"
	st.OwnerReferences = []metav1.OwnerReference{{Name: "x"}}
	st.Status.Phase = corev1.PodSucceeded
	st.Status.QOSClass = ""
	s.PrepareForStatusUpdate(context.Background(), st, old)
	if st.Spec.NodeName != old.Spec.NodeName || st.OwnerReferences != nil || st.Status.Phase != corev1.PodSucceeded || st.Status.QOSClass != old.Status.QOSClass {
		t.Errorf("got nodeName %q owners %v phase %q qos %q, want spec and owners kept, new phase, old QoS", st.Spec.NodeName, st.OwnerReferences, st.Status.Phase, st.Status.QOSClass)
	}
}

func TestPodStatusValidate(t *testing.T) {
	never := func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }
	terminated := func(code int32) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}}
	}
	running := []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	tests := []struct {
		name      string
		old       func(*corev1.Pod)
		oldStatus corev1.PodStatus
		status    corev1.PodStatus
		want      []wantErr
	}{
		{"running", nil, corev1.PodStatus{}, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5", PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}, HostIP: "192.168.0.1", HostIPs: []corev1.HostIP{{IP: "192.168.0.1"}}}, nil},
		{"bad pod IP", nil, corev1.PodStatus{}, corev1.PodStatus{PodIP: "10.244.1", PodIPs: []corev1.PodIP{{IP: "10.244.1"}}}, []wantErr{inv("status.podIPs[0]")}},
		{"two IPv4 pod IPs", nil, corev1.PodStatus{}, corev1.PodStatus{PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}}}, []wantErr{inv("status.podIPs")}},
		{"podIPs without podIP", nil, corev1.PodStatus{}, corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}, PodIP: ""}, nil},
		{"hostIP mismatch", nil, corev1.PodStatus{}, corev1.PodStatus{HostIP: "192.168.0.2", HostIPs: []corev1.HostIP{{IP: "192.168.0.1"}}}, []wantErr{inv("status.hostIPs[0].ip")}},
		{"bad nominated node", nil, corev1.PodStatus{}, corev1.PodStatus{NominatedNodeName: "A B"}, []wantErr{inv("status.nominatedNodeName")}},
		{"nominated when bound", func(p *corev1.Pod) { p.Spec.NodeName = "n" }, corev1.PodStatus{}, corev1.PodStatus{NominatedNodeName: "m"}, []wantErr{forbidden("status.nominatedNodeName")}},
		{"qos changed", nil, corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort}, corev1.PodStatus{QOSClass: corev1.PodQOSGuaranteed}, []wantErr{inv("status.qosClass")}},
		{"condition type", nil, corev1.PodStatus{}, corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: "bad type!"}, {Type: corev1.PodReady}}}, []wantErr{inv("status.conditions[0].Type")}},
		{"restart after success with Never", never, corev1.PodStatus{ContainerStatuses: terminated(0)}, corev1.PodStatus{ContainerStatuses: running}, []wantErr{forbidden("status.containerStatuses[0].state")}},
		{"restart with Always", nil, corev1.PodStatus{ContainerStatuses: terminated(0)}, corev1.PodStatus{ContainerStatuses: running}, nil},
		{"restart after failure with OnFailure", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyOnFailure },
			corev1.PodStatus{ContainerStatuses: terminated(1)}, corev1.PodStatus{ContainerStatuses: running}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mutate []func(*corev1.Pod)
			if tt.old != nil {
				mutate = append(mutate, tt.old)
			}
			old := newPod(mutate...)
			PodStrategy{}.Default(old)
			old.Status = tt.oldStatus
			p := old.DeepCopy()
			p.Status = tt.status
			s := PodStrategy{}
			s.Default(p)
			s.PrepareForStatusUpdate(context.Background(), p, old)
			checkErrors(t, s.ValidateStatusUpdate(context.Background(), p, old), tt.want...)
		})
	}
}

func TestPodGracePeriod(t *testing.T) {
	tests := []struct {
		name      string
		grace     *int64
		nodeName  string
		phase     corev1.PodPhase
		requested *int64
		want      int64
		graceful  bool
	}{
		{"default from spec", int64p(30), "n", corev1.PodRunning, nil, 30, true},
		{"requested", int64p(30), "n", corev1.PodRunning, int64p(5), 5, true},
		{"requested zero", int64p(30), "n", corev1.PodRunning, int64p(0), 0, false},
		{"negative becomes 1", int64p(30), "n", corev1.PodRunning, int64p(-1), 1, true},
		{"unscheduled", int64p(30), "", corev1.PodPending, int64p(10), 0, false},
		{"succeeded", int64p(30), "n", corev1.PodSucceeded, nil, 0, false},
		{"failed", int64p(30), "n", corev1.PodFailed, int64p(10), 0, false},
		{"no spec grace", nil, "n", corev1.PodRunning, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPod(func(p *corev1.Pod) {
				p.Spec.TerminationGracePeriodSeconds = tt.grace
				p.Spec.NodeName = tt.nodeName
				p.Status.Phase = tt.phase
			})
			got, graceful := PodStrategy{}.GracePeriod(p, tt.requested)
			if got != tt.want || graceful != tt.graceful {
				t.Errorf("got %d, %v, want %d, %v", got, graceful, tt.want, tt.graceful)
			}
		})
	}
}

func TestPodBinding(t *testing.T) {
	ctx := context.Background()
	s := PodStrategy{}
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"k": "v"}}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
	if errs := s.ValidateBinding(ctx, b); len(errs) != 0 {
		t.Errorf("got errors %v for a valid binding, want none", errs)
	}
	checkErrors(t, s.ValidateBinding(ctx, &corev1.Binding{Target: corev1.ObjectReference{Kind: "Pod"}}), notSup("target.kind"), req("target.name"))

	p := createdPod()
	if err := s.ApplyBinding(ctx, p, b); err != nil {
		t.Fatalf("got error %v binding an unscheduled pod, want none", err)
	}
	if p.Spec.NodeName != "node-1" || p.Annotations["k"] != "v" || len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Type != corev1.PodScheduled || p.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("got nodeName %q annotations %v conditions %v, want bound with PodScheduled=True", p.Spec.NodeName, p.Annotations, p.Status.Conditions)
	}
	if err := s.ApplyBinding(ctx, p, b); !apierrors.IsConflict(err) {
		t.Errorf("got %v binding a bound pod, want a conflict", err)
	}
	deleting := createdPod()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if err := s.ApplyBinding(ctx, deleting, b); !apierrors.IsConflict(err) {
		t.Errorf("got %v binding a deleted pod, want a conflict", err)
	}
}

func TestPodSelectableFields(t *testing.T) {
	p := createdPod(func(p *corev1.Pod) {
		p.Spec.NodeName = "node-1"
		p.Spec.HostNetwork = true
	})
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.5"}}
	p.Status.Phase = corev1.PodRunning
	got := PodStrategy{}.SelectableFields(p)
	want := map[string]string{
		"metadata.name": "web", "metadata.namespace": "default", "spec.nodeName": "node-1", "spec.restartPolicy": "Always",
		"spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "", "spec.hostNetwork": "true",
		"status.phase": "Running", "status.podIP": "10.0.0.5", "status.nominatedNodeName": "",
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if got[k] != v || !got.Has(k) {
			t.Errorf("got %s=%q, want %q", k, got[k], v)
		}
	}
}
