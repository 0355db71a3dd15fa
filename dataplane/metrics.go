package dataplane

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sync kinds for SyncMetrics.
const (
	SyncFull    = "full"
	SyncPartial = "partial"
)

// SyncMetrics are the Prometheus collectors both providers report syncs
// to. They carry a constant "provider" label, so an eBPF and an iptables
// provider can share one registry. A nil *SyncMetrics records nothing.
type SyncMetrics struct {
	duration  *prometheus.HistogramVec
	changes   prometheus.Counter
	errors    prometheus.Counter
	services  prometheus.Gauge
	endpoints prometheus.Gauge
	last      prometheus.Gauge
}

// NewSyncMetrics creates the collectors and registers them with reg.
func NewSyncMetrics(reg prometheus.Registerer, provider string) (*SyncMetrics, error) {
	labels := prometheus.Labels{"provider": provider}
	m := &SyncMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "sync_duration_seconds",
			Help:        "Time to apply recorded Service and endpoint changes to the kernel, by kind (full or partial).",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"kind"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "sync_changes_total",
			Help:        "Service ports whose Service or endpoints changed, summed over successful syncs.",
			ConstLabels: labels,
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "sync_errors_total",
			Help:        "Syncs that failed.",
			ConstLabels: labels,
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "service_ports",
			Help:        "Service ports programmed by the last successful sync.",
			ConstLabels: labels,
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "endpoints",
			Help:        "Endpoints (per service port) known at the last successful sync.",
			ConstLabels: labels,
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace:   "skiff",
			Subsystem:   "dataplane",
			Name:        "last_sync_timestamp_seconds",
			Help:        "Unix time of the last successful sync.",
			ConstLabels: labels,
		}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.changes, m.errors, m.services, m.endpoints, m.last} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register dataplane sync metrics for %s: %w", provider, err)
		}
	}
	return m, nil
}

// ObserveSync records one sync that started at start. On success it also
// records how many service ports changed and the size of the state.
func (m *SyncMetrics) ObserveSync(kind string, start time.Time, u Update, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		m.errors.Inc()
		return
	}
	m.changes.Add(float64(len(u.Changed)))
	m.services.Set(float64(len(u.Services)))
	m.endpoints.Set(float64(u.EndpointCount)) // kept by the tracker: no walk over every Service per sync
	m.last.SetToCurrentTime()
}
