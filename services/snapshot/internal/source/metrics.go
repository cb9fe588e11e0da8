package source

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	listRequests *prometheus.CounterVec
	watchStarts  prometheus.Counter
	relists      prometheus.Counter
	polls        *prometheus.CounterVec
	events       *prometheus.CounterVec
	skipped      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		listRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_list_requests_total",
			Help: "LIST requests for executor pods sent to the API server, by caller (watch: the reflector's (re)list; poll: the periodic full list).",
		}, []string{"caller"}),
		watchStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_watch_starts_total",
			Help: "WATCH requests for executor pods sent to the API server: the first one and every restart.",
		}),
		relists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_relists_total",
			Help: "Times the watch (re)listed all executor pods: at start, and after its resourceVersion expired or the API server restarted.",
		}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_polls_total",
			Help: "Periodic full lists of executor pods (Spark's apiPollingInterval), by result.",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_pod_events_total",
			Help: "Watch events for executor pods, by result (applied, or stale: not newer than what the store holds).",
		}, []string{"result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_skipped_pods_total",
			Help: "Executor pods left out of the snapshot, by reason (no_executor_id covers Spark's EXECID placeholder).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.listRequests, m.watchStarts, m.relists, m.polls, m.events, m.skipped)
	}
	return m
}
