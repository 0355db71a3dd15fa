package scheduler

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// APICall summarises one kind of API server or etcd request during the
// measured phase.
type APICall struct {
	// Name is "verb resource[/subresource]" or "etcd <operation>".
	Name   string  `json:"name"`
	Count  float64 `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	// Errors counts responses other than 2xx.
	Errors float64 `json:"errors,omitempty"`
}

type histSum struct{ count, sum float64 }

// apiSnapshot reads the request counts and latency sums of the API
// server's registry.
type apiSnapshot struct {
	hist   map[string]histSum
	errors map[string]float64
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func snapshotAPI(reg *prometheus.Registry) apiSnapshot {
	s := apiSnapshot{hist: map[string]histSum{}, errors: map[string]float64{}}
	mfs, err := reg.Gather()
	if err != nil {
		return s
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "apiserver_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				// Summed over response codes.
				k := label(m, "verb") + " " + label(m, "resource")
				h, sum := m.GetHistogram(), s.hist[k]
				sum.count += float64(h.GetSampleCount())
				sum.sum += h.GetSampleSum()
				s.hist[k] = sum
			}
		case "etcd_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				s.hist["etcd "+label(m, "operation")] = histSum{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
			}
		case "apiserver_request_total":
			for _, m := range mf.GetMetric() {
				if code := label(m, "code"); !strings.HasPrefix(code, "2") {
					s.errors[label(m, "verb")+" "+label(m, "resource")] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return s
}

// apiCalls returns what happened between two snapshots, busiest first.
func apiCalls(before, after apiSnapshot) []APICall {
	var out []APICall
	for k, a := range after.hist {
		b := before.hist[k]
		n := a.count - b.count
		if n <= 0 {
			continue
		}
		out = append(out, APICall{
			Name:   k,
			Count:  n,
			MeanMS: (a.sum - b.sum) / n * 1000,
			Errors: after.errors[k] - before.errors[k],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count*out[i].MeanMS > out[j].Count*out[j].MeanMS })
	return out
}
