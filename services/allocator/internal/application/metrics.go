package application

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the allocator's Prometheus metrics.
type Metrics struct {
	rounds          *prometheus.CounterVec
	roundSeconds    prometheus.Histogram
	podsRequested   prometheus.Counter
	podsFailed      prometheus.Counter
	podsDeleted     *prometheus.CounterVec
	targets         *prometheus.GaugeVec
	outstanding     *prometheus.GaugeVec
	applications    prometheus.Gauge
	snapshotUpdates *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg; a nil reg leaves them
// unregistered (for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_allocator_rounds_total",
			Help: "Allocation rounds run, by result (ok, error).",
		}, []string{"result"}),
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sparkpods_allocator_round_duration_seconds",
			Help:    "Duration of allocation rounds, pod writes included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		podsRequested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sparkpods_allocator_pods_requested_total",
			Help: "Executor pods the pod manager created (or found existing) for the allocator.",
		}),
		podsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sparkpods_allocator_pod_creation_failures_total",
			Help: "Executor pods whose creation failed.",
		}),
		podsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_allocator_pod_deletions_total",
			Help: "Executor pod deletions asked of the pod manager, by reason (excess, timeout, kill, unregister).",
		}, []string{"reason"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sparkpods_allocator_target_executors",
			Help: "Executor target per application and resource profile.",
		}, []string{"namespace", "app_id", "resource_profile_id"}),
		outstanding: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sparkpods_allocator_outstanding_pods",
			Help: "Spark's numOutstandingPods per application: pending pods and unseen requests unknown to the scheduler.",
		}, []string{"namespace", "app_id"}),
		applications: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sparkpods_allocator_applications",
			Help: "Registered applications.",
		}),
		snapshotUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_allocator_snapshot_updates_total",
			Help: "Snapshot stream updates received, by kind (reset, changes).",
		}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rounds, m.roundSeconds, m.podsRequested, m.podsFailed,
			m.podsDeleted, m.targets, m.outstanding, m.applications, m.snapshotUpdates} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) setTargets(k Key, targets map[int32]int32) {
	for rp, n := range targets {
		m.targets.WithLabelValues(k.Namespace, k.AppID, strconv.Itoa(int(rp))).Set(float64(n))
	}
}

func (m *Metrics) forget(k Key) {
	m.targets.DeletePartialMatch(prometheus.Labels{"namespace": k.Namespace, "app_id": k.AppID})
	m.outstanding.DeleteLabelValues(k.Namespace, k.AppID)
}
