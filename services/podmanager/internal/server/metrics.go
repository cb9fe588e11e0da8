package server

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// metrics are the service's own Prometheus metrics.
type metrics struct {
	pods     *prometheus.CounterVec
	replays  prometheus.Counter
	refusals *prometheus.CounterVec
	// createRetries counts creates tried again because the outcome of the
	// last try was unknown.
	createRetries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "pod_operations_total",
			Help: "Executor pods created, deleted and labelled, by operation (create, delete, label), outcome (created, already_exists, deleted, not_found, already_terminating, labeled, skipped, failed) and, for failures, gRPC code.",
		}, []string{"operation", "outcome", "code"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "request_id_replays_total",
			Help: "CreateExecutorPods calls answered from the request-id cache (retries) without calling the API server.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "refusals_total",
			Help: "Pods the service refused to touch because they are not executor pods of the named application, by operation.",
		}, []string{"operation"}),
		createRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sparkpods", Subsystem: "podmanager", Name: "create_retries_total",
			Help: "Pod creates tried again under the same name because the last try's outcome was unknown (connection lost or timed out).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pods, m.replays, m.refusals, m.createRetries} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) count(op string, results []*sparkpodsv1.ExecutorPodResult) {
	for _, r := range results {
		outcome := strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "POD_OUTCOME_"))
		code := ""
		if r.GetOutcome() == sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED {
			code = codes.Code(r.GetCode()).String()
			if r.GetCode() == int32(codes.PermissionDenied) {
				m.refusals.WithLabelValues(op).Inc()
			}
		}
		m.pods.WithLabelValues(op, outcome, code).Inc()
	}
}
