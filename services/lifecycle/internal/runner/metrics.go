package runner

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runner's Prometheus metrics.
type Metrics struct {
	events         *prometheus.CounterVec
	deletes        *prometheus.CounterVec
	labels         *prometheus.CounterVec
	rounds         prometheus.Counter
	recordFailures prometheus.Counter
	applications   prometheus.Gauge
}

// NewMetrics creates the metrics, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "events_recorded_total",
			Help: "Executor events recorded, by type, final state (empty for missing executors and the failure limit) and reason (Spark's description of the exit code, deleted, missing or failure limit).",
		}, []string{"type", "state", "reason"}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "pod_deletes_total",
			Help: "Finished executor pods the lifecycle service asked the pod manager to delete, by result.",
		}, []string{"result"}),
		labels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "pod_inactive_labels_total",
			Help: "Finished executor pods labelled spark-exec-inactive=true (deleteOnTermination=false), by result.",
		}, []string{"result"}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "rounds_total",
			Help: "Reconcile rounds run across all applications.",
		}),
		recordFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "record_failures_total",
			Help: "Rounds whose events could not be recorded; their pods were left alone and the events retried.",
		}),
		applications: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "applications",
			Help: "Applications with a running lifecycle worker.",
		}),
	}
}

// Register registers the metrics on reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.events, m.deletes, m.labels, m.rounds, m.recordFailures, m.applications} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("runner: register metrics: %w", err)
		}
	}
	return nil
}
