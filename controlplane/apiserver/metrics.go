package apiserver

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-project/skiff/controlplane/storage"
)

// metrics are the server's Prometheus metrics, named as kube-apiserver's.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	watches  *prometheus.GaugeVec
	etcd     *prometheus.HistogramVec
	nWatches atomic.Int64

	// The allocation repair's, as kube-apiserver's repair controllers'.
	ipRepairErrors     *prometheus.CounterVec
	ipRepairFailures   prometheus.Counter
	portRepairErrors   *prometheus.CounterVec
	portRepairFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of API requests by verb, resource and HTTP response code.",
		}, []string{"verb", "resource", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency of API requests by verb, resource and HTTP response code (watches excluded).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 5, 10, 30, 60},
		}, []string{"verb", "resource", "code"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_registered_watchers",
			Help: "Number of open watches by resource.",
		}, []string{"resource"}),
		etcd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "etcd_request_duration_seconds",
			Help:    "etcd request latency by operation.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"operation"}),
		ipRepairErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_clusterip_repair_ip_errors_total",
			Help: "Number of errors detected on cluster IPs by the repair loop by type: leak, repair, outOfRange, duplicate, invalid.",
		}, []string{"type"}),
		ipRepairFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiserver_clusterip_repair_reconcile_errors_total",
			Help: "Number of failures of the cluster IP repair loop to repair what it detected.",
		}),
		portRepairErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_nodeport_repair_port_errors_total",
			Help: "Number of errors detected on node ports by the repair loop by type: leak, repair, outOfRange, duplicate.",
		}, []string{"type"}),
		portRepairFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiserver_nodeport_repair_reconcile_errors_total",
			Help: "Number of failures of the node port repair loop to repair what it detected.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.watches, m.etcd,
		m.ipRepairErrors, m.ipRepairFailures, m.portRepairErrors, m.portRepairFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(verb, resource, sub string, code int, d time.Duration) {
	if sub != "" {
		resource += "/" + sub
	}
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(verb, resource, c).Inc()
	if verb != "watch" {
		m.duration.WithLabelValues(verb, resource, c).Observe(d.Seconds())
	}
}

func (m *metrics) watchStarted(resource string) {
	m.nWatches.Add(1)
	m.watches.WithLabelValues(resource).Inc()
}

func (m *metrics) watchEnded(resource string) {
	m.nWatches.Add(-1)
	m.watches.WithLabelValues(resource).Dec()
}

func (m *metrics) watchers() int64 { return m.nWatches.Load() }

// timedStore records the latency of every storage call.
type timedStore struct {
	storage.Interface
	h *prometheus.HistogramVec
}

func (t timedStore) since(op string, start time.Time) {
	t.h.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t timedStore) Get(ctx context.Context, key string) (storage.KeyValue, error) {
	defer t.since("get", time.Now())
	return t.Interface.Get(ctx, key)
}

func (t timedStore) GetSerializable(ctx context.Context, key string) (storage.KeyValue, error) {
	defer t.since("get", time.Now())
	return t.Interface.GetSerializable(ctx, key)
}

func (t timedStore) Create(ctx context.Context, key string, value []byte, conds []storage.Condition, extra ...storage.Op) (int64, error) {
	defer t.since("create", time.Now())
	return t.Interface.Create(ctx, key, value, conds, extra...)
}

func (t timedStore) Update(ctx context.Context, key string, value []byte, rev int64, conds []storage.Condition, extra ...storage.Op) (int64, error) {
	defer t.since("update", time.Now())
	return t.Interface.Update(ctx, key, value, rev, conds, extra...)
}

func (t timedStore) Delete(ctx context.Context, key string, rev int64, conds []storage.Condition, extra ...storage.Op) (int64, error) {
	defer t.since("delete", time.Now())
	return t.Interface.Delete(ctx, key, rev, conds, extra...)
}

func (t timedStore) Txn(ctx context.Context, conds []storage.Condition, ops ...storage.Op) (bool, int64, error) {
	defer t.since("txn", time.Now())
	return t.Interface.Txn(ctx, conds, ops...)
}

func (t timedStore) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	defer t.since("list", time.Now())
	return t.Interface.List(ctx, prefix, opts)
}
