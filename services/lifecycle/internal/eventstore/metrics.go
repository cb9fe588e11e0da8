package eventstore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	writes  *prometheus.CounterVec
	dropped prometheus.Counter
	corrupt prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle_store", Name: "writes_total",
			Help: "Writes of event segments to the API server, by operation (append, acknowledge, delete) and result (ok, conflict, error).",
		}, []string{"op", "result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle_store", Name: "dropped_events_total",
			Help: "Unacknowledged executor events dropped because an application had more than the configured maximum.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle_store", Name: "unreadable_segments_total",
			Help: "Event segment ConfigMaps that could not be read when loading.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.writes, m.dropped, m.corrupt} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("eventstore: register metrics: %w", err)
		}
	}
	return m, nil
}
