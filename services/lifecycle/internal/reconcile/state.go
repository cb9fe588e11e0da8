package reconcile

import (
	"maps"
	"slices"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// State is what a Manager remembers between rounds, as plain values the
// service can persist beside the events it records and hand back to a new
// Manager after a restart. Without it a restarted service would report again
// every executor whose pod is still finished (its events would come twice,
// under new sequence numbers), count old failures afresh, and report the
// failure limit a second time.
type State struct {
	// RemovedMs maps each executor in the removed-executors cache to when it
	// was reported removed, in epoch milliseconds.
	RemovedMs map[int64]int64 `json:"removedMs,omitempty"`
	// Inactivated lists executors whose pods the Manager asked to label
	// inactive, in id order.
	Inactivated []int64 `json:"inactivated,omitempty"`
	// Failed lists every executor ever seen FAILED, in id order.
	Failed []int64 `json:"failed,omitempty"`
	// FailureTimesMs are the failures counted, oldest first, in epoch
	// milliseconds.
	FailureTimesMs []int64 `json:"failureTimesMs,omitempty"`
	// LastFullSnapshotMs is the full snapshot time missing-pod detection last
	// ran against.
	LastFullSnapshotMs int64 `json:"lastFullSnapshotMs,omitempty"`
	// LimitReported is set once FAILURE_LIMIT_EXCEEDED was reported.
	LimitReported bool `json:"limitReported,omitempty"`
}

// State returns a copy of what the Manager remembers now. Expired entries of
// the removed-executors cache are left out. Take it after a round and record
// it together with that round's events: both then describe the same moment.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.conf.Clock.Now()
	s := State{
		LastFullSnapshotMs: m.lastFullSnapshotMs,
		LimitReported:      m.limitReported,
		Inactivated:        slices.Sorted(maps.Keys(m.inactivated)),
		Failed:             slices.Sorted(maps.Keys(m.failed)),
		FailureTimesMs:     slices.Clone(m.failureTimes),
	}
	for id, at := range m.removed {
		if m.recentlyRemoved(id, now) {
			if s.RemovedMs == nil {
				s.RemovedMs = make(map[int64]int64)
			}
			s.RemovedMs[id] = at.UnixMilli()
		}
	}
	return s
}

// Restore replaces what the Manager remembers with s, typically the State a
// previous Manager of the same application recorded before the service
// stopped. Call it before the first round.
func (m *Manager) Restore(s State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = make(map[int64]time.Time, len(s.RemovedMs))
	for id, ms := range s.RemovedMs {
		m.removed[id] = time.UnixMilli(ms)
	}
	m.inactivated = make(map[int64]struct{}, len(s.Inactivated))
	for _, id := range s.Inactivated {
		m.inactivated[id] = struct{}{}
	}
	m.failed = make(map[int64]struct{}, len(s.Failed))
	for _, id := range s.Failed {
		m.failed[id] = struct{}{}
	}
	m.failureTimes = slices.Clone(s.FailureTimesMs)
	m.lastFullSnapshotMs = s.LastFullSnapshotMs
	m.limitReported = s.LimitReported
}

// NeedsRegistered reports whether a round over batch will run missing-pod
// detection and so read the registered executors. The service can skip
// asking the scheduler for them otherwise, which is most rounds: detection
// runs only once per new full snapshot.
func (m *Manager) NeedsRegistered(batch []*sparkpodsv1.ExecutorSnapshot) bool {
	if len(batch) == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return fullSnapshotMs(batch[len(batch)-1]) != m.lastFullSnapshotMs
}
