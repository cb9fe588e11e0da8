package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sparkpods/sparkpods/services/podmanager/internal/fairqueue"
)

// queueMetrics measure the write budget: how long calls wait for a token,
// and how much work waits for a worker.
type queueMetrics struct {
	wait         prometheus.Histogram
	queued       prometheus.Gauge
	applications prometheus.Gauge
}

func newQueueMetrics(reg prometheus.Registerer) (*queueMetrics, error) {
	m := &queueMetrics{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "rate_limit_wait_seconds",
			Help:    "Time each Kubernetes API call waited for a token of the client-side rate limit (--kube-qps, --kube-burst).",
			Buckets: []float64{0, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "queued_calls",
			Help: "Kubernetes API calls waiting for a worker (--create-concurrency).",
		}),
		applications: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "queued_applications",
			Help: "Applications with API calls waiting; the queue serves them round-robin.",
		}),
	}
	for _, c := range []prometheus.Collector{m.wait, m.queued, m.applications} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *queueMetrics) observer() fairqueue.Observer {
	return fairqueue.Observer{
		LimiterWait: func(d time.Duration) { m.wait.Observe(d.Seconds()) },
		Queued: func(calls, applications int) {
			m.queued.Set(float64(calls))
			m.applications.Set(float64(applications))
		},
	}
}
