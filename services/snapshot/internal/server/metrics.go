package server

import (
	"github.com/prometheus/client_golang/prometheus"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

type metrics struct {
	subscribers prometheus.Gauge
	resets      *prometheus.CounterVec
	messages    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, st store) *metrics {
	m := &metrics{
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sparkpods_snapshot_subscribers",
			Help: "Open WatchSnapshots streams.",
		}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_resets_total",
			Help: "Resets (full snapshots) sent on WatchSnapshots streams, by reason.",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_stream_messages_total",
			Help: "Messages sent on WatchSnapshots streams, by kind (reset, changes, heartbeat).",
		}, []string{"kind"}),
	}
	for _, r := range []sparkpodsv1.ResetReason{
		sparkpodsv1.ResetReason_RESET_REASON_INITIAL, sparkpodsv1.ResetReason_RESET_REASON_REVISION_TOO_OLD,
		sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED, sparkpodsv1.ResetReason_RESET_REASON_SUBSCRIBER_LAGGED,
	} {
		m.resets.WithLabelValues(resetLabel(r))
	}
	if reg == nil {
		return m
	}
	stat := func(f func(s snapshotmodel.Stats) float64) func() float64 {
		return func() float64 { return f(st.Stats()) }
	}
	reg.MustRegister(m.subscribers, m.resets, m.messages,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sparkpods_snapshot_applications",
			Help: "Applications with executor pods in the snapshot.",
		}, stat(func(s snapshotmodel.Stats) float64 { return float64(s.Applications) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sparkpods_snapshot_executors",
			Help: "Executors in the snapshot, across all applications (the snapshot's size).",
		}, stat(func(s snapshotmodel.Stats) float64 { return float64(s.Executors) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sparkpods_snapshot_revision",
			Help: "The store's newest revision.",
		}, stat(func(s snapshotmodel.Stats) float64 { return float64(s.Revision) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sparkpods_snapshot_oldest_revision",
			Help: "The oldest revision a watcher can resume after without a reset.",
		}, stat(func(s snapshotmodel.Stats) float64 { return float64(s.OldestRevision) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sparkpods_snapshot_stale_updates_total",
			Help: "Pod updates dropped because the snapshot already held the same or a newer resourceVersion.",
		}, stat(func(s snapshotmodel.Stats) float64 { return float64(s.Dropped) })),
	)
	return m
}

func resetLabel(r sparkpodsv1.ResetReason) string {
	switch r {
	case sparkpodsv1.ResetReason_RESET_REASON_INITIAL:
		return "initial"
	case sparkpodsv1.ResetReason_RESET_REASON_REVISION_TOO_OLD:
		return "revision_too_old"
	case sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED:
		return "epoch_changed"
	case sparkpodsv1.ResetReason_RESET_REASON_SUBSCRIBER_LAGGED:
		return "subscriber_lagged"
	case sparkpodsv1.ResetReason_RESET_REASON_RESYNC:
		return "resync"
	default:
		return "unspecified"
	}
}
