package dataplane

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns metric name -> provider label -> value (the sample
// count for histograms, summed over their series).
func gathered(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var provider string
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" {
					provider = l.GetValue()
				}
			}
			if out[mf.GetName()] == nil {
				out[mf.GetName()] = make(map[string]float64)
			}
			switch {
			case m.Counter != nil:
				out[mf.GetName()][provider] += m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[mf.GetName()][provider] += m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()][provider] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestSyncMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ipt, err := NewSyncMetrics(reg, "iptables")
	if err != nil {
		t.Fatalf("NewSyncMetrics(iptables): %v", err)
	}
	ebpf, err := NewSyncMetrics(reg, "ebpf")
	if err != nil {
		t.Fatalf("NewSyncMetrics(ebpf) in the same registry: %v", err)
	}
	if _, err := NewSyncMetrics(reg, "ebpf"); err == nil {
		t.Fatalf("registering ebpf twice: got no error, want one")
	}
	u := Update{
		Services:      map[ServicePortName]*ServicePort{{Port: "a"}: {}, {Port: "b"}: {}},
		Endpoints:     map[ServicePortName][]Endpoint{{Port: "a"}: {{}, {}, {}}},
		Changed:       map[ServicePortName]struct{}{{Port: "a"}: {}},
		EndpointCount: 3,
	}
	ipt.ObserveSync(SyncFull, time.Now(), u, nil)
	ipt.ObserveSync(SyncPartial, time.Now(), u, nil)
	ipt.ObserveSync(SyncPartial, time.Now(), u, errors.New("restore failed"))
	ebpf.ObserveSync(SyncFull, time.Now(), u, nil)
	var none *SyncMetrics
	none.ObserveSync(SyncFull, time.Now(), u, nil) // must not panic

	g := gathered(t, reg)
	tests := []struct {
		metric, provider string
		want             float64
	}{
		{"skiff_dataplane_sync_changes_total", "iptables", 2},
		{"skiff_dataplane_sync_errors_total", "iptables", 1},
		{"skiff_dataplane_service_ports", "iptables", 2},
		{"skiff_dataplane_endpoints", "iptables", 3},
		{"skiff_dataplane_sync_duration_seconds", "iptables", 3},
		{"skiff_dataplane_sync_changes_total", "ebpf", 1},
		{"skiff_dataplane_sync_errors_total", "ebpf", 0},
		{"skiff_dataplane_sync_duration_seconds", "ebpf", 1},
	}
	for _, tt := range tests {
		if got := g[tt.metric][tt.provider]; got != tt.want {
			t.Errorf("%s{provider=%q}: got %v, want %v", tt.metric, tt.provider, got, tt.want)
		}
	}
}
