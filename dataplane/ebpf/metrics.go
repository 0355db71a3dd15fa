package ebpf

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the maps to Prometheus: per-Service packets, bytes and
// socket-level translations (read from the per-CPU counter maps at scrape
// time), map pressure, conntrack entries, what the conntrack GC deleted
// and full-map errors. Sync duration comes from dataplane.SyncMetrics.
type collector struct {
	p        *Provider
	mapFull  atomic.Uint64
	packets  *prometheus.Desc
	bytes    *prometheus.Desc
	sock     *prometheus.Desc
	pressure *prometheus.Desc
	ct       *prometheus.Desc
	full     *prometheus.Desc
	drops    *prometheus.Desc
	gcDel    *prometheus.Desc
	gcRuns   *prometheus.Desc
}

func newCollector(p *Provider) *collector {
	labels := prometheus.Labels{"node": p.cfg.Node.Name}
	svc := []string{"namespace", "service", "port", "protocol"}
	return &collector{
		p:        p,
		packets:  prometheus.NewDesc("skiff_ebpf_service_packets_total", "Packets translated by TC and XDP, per Service port.", svc, labels),
		bytes:    prometheus.NewDesc("skiff_ebpf_service_bytes_total", "Bytes translated by TC and XDP, per Service port.", svc, labels),
		sock:     prometheus.NewDesc("skiff_ebpf_service_socket_translations_total", "Connections and datagrams translated by the socket hooks, per Service port.", svc, labels),
		pressure: prometheus.NewDesc("skiff_ebpf_map_pressure", "Entries in use divided by max entries, per map.", []string{"map"}, labels),
		ct:       prometheus.NewDesc("skiff_ebpf_conntrack_entries", "Entries in the conntrack map.", nil, labels),
		full:     prometheus.NewDesc("skiff_ebpf_map_full_errors_total", "Syncs that failed because a map or id space was full.", nil, labels),
		drops:    prometheus.NewDesc("skiff_ebpf_drops_total", "Packets the datapath dropped while translating them, by reason.", []string{"reason"}, labels),
		gcDel:    prometheus.NewDesc("skiff_ebpf_conntrack_gc_deleted_total", "Conntrack entries the conntrack GC deleted: pairs whose lifetime ended and entries that lost their other half.", nil, labels),
		gcRuns:   prometheus.NewDesc("skiff_ebpf_conntrack_gc_runs_total", "Conntrack GC passes.", nil, labels),
	}
}

func (c *collector) observe(err error) {
	if errors.Is(err, ErrMapFull) {
		c.mapFull.Add(1)
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.sock, c.pressure, c.ct, c.full, c.drops, c.gcDel, c.gcRuns} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	p.mu.Lock()
	sets := p.rec.portSets()
	sizes := p.cfg.MapSizes.withDefaults()
	pressure := map[string]float64{
		MapServices:    float64(len(p.rec.frontends)) / float64(sizes.Services),
		MapBackends:    float64(p.rec.beIDs.inUse()) / float64(sizes.Backends-1),
		MapSvcCounters: float64(p.rec.setIDs.inUse()) / float64(sizes.Sets-1),
	}
	slots := 0
	p.rec.sets.each(func(_ uint32, st *setState) { slots += len(st.slots) })
	pressure[MapSlots] = float64(slots) / float64(sizes.Slots)
	// The maps are read under the lock too: Close must not close them
	// in between.
	defer p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.full, prometheus.CounterValue, float64(c.mapFull.Load()))
	ch <- prometheus.MustNewConstMetric(c.gcDel, prometheus.CounterValue, float64(p.ctGCDeleted.Load()))
	ch <- prometheus.MustNewConstMetric(c.gcRuns, prometheus.CounterValue, float64(p.ctGCRuns.Load()))
	if p.closed {
		return
	}
	var ids []uint32
	for _, s := range sets {
		ids = append(ids, s...)
	}
	counters, err := p.maps.SetCounters(ids)
	if err == nil {
		for name, s := range sets {
			var sum Counter
			for _, id := range s {
				c := counters[id]
				sum.Packets += c.Packets
				sum.Bytes += c.Bytes
				sum.Sock += c.Sock
			}
			lv := []string{name.Namespace, name.Name, name.Port, strings.ToLower(string(name.Protocol))}
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(sum.Packets), lv...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(sum.Bytes), lv...)
			ch <- prometheus.MustNewConstMetric(c.sock, prometheus.CounterValue, float64(sum.Sock), lv...)
		}
	} else {
		p.log.Warn("read counters", "error", err)
	}
	if drops, err := p.maps.Drops(); err == nil {
		for i, n := range drops {
			if DropReasons[i] != "" {
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), DropReasons[i])
			}
		}
	} else {
		p.log.Warn("read drop counters", "error", err)
	}
	if n, err := p.maps.ConntrackEntries(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.ct, prometheus.GaugeValue, float64(n))
		pressure[MapConntrack] = float64(n) / float64(sizes.Conntrack)
	}
	for m, v := range pressure {
		ch <- prometheus.MustNewConstMetric(c.pressure, prometheus.GaugeValue, v, m)
	}
}
