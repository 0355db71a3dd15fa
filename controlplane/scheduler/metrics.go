package scheduler

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scheduler's Prometheus metrics, named as upstream's.
type metrics struct {
	attempts         *prometheus.CounterVec
	attemptDuration  *prometheus.HistogramVec
	algorithm        prometheus.Histogram
	podSchedulingSLI *prometheus.HistogramVec
	bindingDuration  prometheus.Histogram
	pending          *prometheus.Desc
	cacheSize        *prometheus.Desc

	// current is the running instance, read by the collector.
	current atomic.Pointer[instance]
}

func newMetrics() *metrics {
	latency := prometheus.ExponentialBuckets(0.001, 2, 15)
	return &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by the result: 'unschedulable' means a pod could not be scheduled, 'error' means an internal scheduler problem.",
		}, []string{"result", "profile"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_attempt_duration_seconds",
			Help:    "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
			Buckets: latency,
		}, []string{"result", "profile"}),
		algorithm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_algorithm_duration_seconds",
			Help:    "Scheduling algorithm latency in seconds (filtering and scoring).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
		}),
		podSchedulingSLI: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_pod_scheduling_sli_duration_seconds",
			Help:    "End-to-end latency of scheduling a pod, from its first attempt until it is bound, by the number of attempts.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
		}, []string{"attempts"}),
		bindingDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_binding_duration_seconds",
			Help:    "Latency of the binding cycle (pods/binding call) in seconds.",
			Buckets: latency,
		}),
		pending: prometheus.NewDesc("scheduler_pending_pods",
			"Number of pending pods, by the queue type: 'active' pods wait to be scheduled, 'backoff' pods wait out a backoff, 'unschedulable' pods wait for a cluster change, 'gated' pods for their scheduling gates.",
			[]string{"queue"}, nil),
		cacheSize: prometheus.NewDesc("scheduler_cache_size",
			"Number of nodes, pods, and assumed (bound but not yet confirmed) pods in the scheduler cache.",
			[]string{"type"}, nil),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.attempts, m.attemptDuration, m.algorithm, m.podSchedulingSLI, m.bindingDuration, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector for the gauges read at scrape
// time.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pending
	ch <- m.cacheSize
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	inst := m.current.Load()
	var active, backoff, unsched, gated, nodes, pods, assumed int
	if inst != nil {
		active, backoff, unsched, gated = inst.queue.LensByKind()
		nodes, pods, assumed = inst.cache.Counts()
	}
	ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(active), "active")
	ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(backoff), "backoff")
	ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(unsched), "unschedulable")
	ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(gated), "gated")
	ch <- prometheus.MustNewConstMetric(m.cacheSize, prometheus.GaugeValue, float64(nodes), "nodes")
	ch <- prometheus.MustNewConstMetric(m.cacheSize, prometheus.GaugeValue, float64(pods), "pods")
	ch <- prometheus.MustNewConstMetric(m.cacheSize, prometheus.GaugeValue, float64(assumed), "assumed_pods")
}
