package reconcile

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/exitreason"
)

// Manager holds what Spark's lifecycle manager remembers between rounds for
// one application, and runs its rounds. It is safe for concurrent use; rounds
// run one at a time.
type Manager struct {
	conf Config

	mu sync.Mutex
	// removed maps each executor reported removed to when it was: Spark's
	// removedExecutorsCache, whose entries expire DeletedExecutorsCacheTimeout
	// after they were written.
	removed map[int64]time.Time
	// inactivated holds the executors whose pods this Manager asked to label
	// inactive (deleteOnTermination=false), so that it asks once.
	inactivated map[int64]struct{}
	// failed holds every executor ever seen FAILED. Like Spark's
	// failedExecutorIds it only grows, so that an executor counts as one
	// failure however many snapshots show it.
	failed map[int64]struct{}
	// failureTimes is Spark's ExecutorFailureTracker queue: when each failure
	// was registered, in epoch milliseconds, oldest first.
	failureTimes []int64
	// lastFullSnapshotMs is Spark's lastFullSnapshotTs: the full snapshot
	// time missing-pod detection last ran against; 0 before any.
	lastFullSnapshotMs int64
	// limitReported is set once FAILURE_LIMIT_EXCEEDED is reported; Spark's
	// driver exits at that point, so it is reported only once.
	limitReported bool
}

// NewManager returns a Manager for the application conf names, with nothing
// removed, inactivated or failed yet.
func NewManager(conf Config) (*Manager, error) {
	conf, err := conf.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Manager{
		conf:        conf,
		removed:     make(map[int64]time.Time),
		inactivated: make(map[int64]struct{}),
		failed:      make(map[int64]struct{}),
	}, nil
}

// round is the state of one OnNewSnapshots call.
type round struct {
	now time.Time
	// removedThisRound is Spark's execIdsRemovedInThisRound: executors that
	// were deleted or finished in this round's snapshots. A finished pod is
	// deleted or labelled only the first time the round sees it
	// (SPARK-54198), and missing-pod detection skips them.
	removedThisRound map[int64]struct{}
	actions          Actions
}

// OnNewSnapshots runs one round over batch, the application's snapshots
// since the last round in the order they were taken, given the executors the
// scheduler has registered and when each registered. The service should call
// it on every processing interval even when batch is empty, as Spark does:
// an empty batch changes nothing, but RegisterExecutorFailure may have pushed
// the failures past the limit since the last round.
//
// The round follows Spark's onNewSnapshots. For each snapshot it counts newly
// failed executors, then applies to each executor the first rule that
// matches:
//
//   - its pod was labelled inactive by this Manager: nothing;
//   - DELETED: report it removed (not caused by the application); the pod is
//     already going, so it is not deleted;
//   - FAILED or SUCCEEDED: report it removed (caused by the application) and,
//     the first time this round sees it, delete its pod, unless the pod
//     already has a deletion timestamp, or with deleteOnTermination=false
//     label it inactive once;
//   - PENDING, RUNNING, UNKNOWN, TERMINATING: nothing.
//
// An executor is reported removed at most once per DeletedExecutorsCacheTimeout.
// When the last snapshot carries a full snapshot time the Manager has not
// seen, every registered executor that is absent from that snapshot, was not
// removed in this round nor recently, and registered more than
// MissingPodDetectDelta before that time is reported missing, in executor id
// order. Finally, if more failures than MaxNumFailures count, the limit is
// reported, once per Manager.
func (m *Manager) OnNewSnapshots(batch []*sparkpodsv1.ExecutorSnapshot, registered map[int64]time.Time) Actions {
	m.mu.Lock()
	defer m.mu.Unlock()

	r := &round{now: m.conf.Clock.Now(), removedThisRound: make(map[int64]struct{})}
	m.expireRemoved(r.now)
	for _, s := range batch {
		m.countNewFailures(s, r.now)
		for _, e := range s.GetExecutors() {
			m.onExecutor(r, e)
		}
	}
	if len(batch) > 0 {
		last := batch[len(batch)-1]
		inLast := make(map[int64]struct{}, len(last.GetExecutors()))
		for _, e := range last.GetExecutors() {
			inLast[e.GetExecutorId()] = struct{}{}
		}
		// Forget pods labelled inactive once they are gone from the latest
		// snapshot, so the set cannot grow without bound. The snapshot service
		// leaves labelled pods out, so this is how a label that took effect is
		// noticed.
		for id := range m.inactivated {
			if _, ok := inLast[id]; !ok {
				delete(m.inactivated, id)
			}
		}
		m.detectMissing(r, last, inLast, registered)
	}
	m.checkFailureLimit(r)
	return r.actions
}

// countNewFailures registers a failure for each executor FAILED in s that
// was never seen FAILED before. SUCCEEDED and DELETED executors are not
// failures.
func (m *Manager) countNewFailures(s *sparkpodsv1.ExecutorSnapshot, now time.Time) {
	for _, e := range s.GetExecutors() {
		if e.GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED {
			continue
		}
		if _, seen := m.failed[e.GetExecutorId()]; seen {
			continue
		}
		m.failed[e.GetExecutorId()] = struct{}{}
		m.failureTimes = append(m.failureTimes, now.UnixMilli())
	}
}

func (m *Manager) onExecutor(r *round, e *sparkpodsv1.Executor) {
	id := e.GetExecutorId()
	// Spark's first rule matches a pod carrying spark-exec-inactive=true. The
	// snapshot service leaves such pods out, and the Executor message has no
	// labels, so the only inactive pods this Manager can know of are the ones
	// it asked to label itself. Spark drops an id from its inactivated set on
	// seeing the label; here the label is never seen, so the id stays until
	// the pod is gone from the latest snapshot (see OnNewSnapshots). Dropping
	// it on the next sighting instead would label the pod again every round
	// or two while the label is on its way. (Spark also drops the id when the
	// pod shows as DELETED; with this rule first, such an id never gets there.)
	if _, ok := m.inactivated[id]; ok {
		return
	}
	switch e.GetState() {
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED:
		r.removedThisRound[id] = struct{}{}
		m.removeFromSpark(r, e)
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED:
		_, seenThisRound := r.removedThisRound[id]
		r.removedThisRound[id] = struct{}{}
		m.removeFromSpark(r, e)
		if !seenThisRound {
			m.removeFromK8s(r, e)
		}
	default:
		// PENDING, RUNNING and UNKNOWN are not final. TERMINATING is final in
		// Spark's types, but Spark ignores it here too.
	}
}

// removeFromSpark reports executor e removed unless it was reported within
// DeletedExecutorsCacheTimeout.
func (m *Manager) removeFromSpark(r *round, e *sparkpodsv1.Executor) {
	id := e.GetExecutorId()
	if m.recentlyRemoved(id, r.now) {
		return
	}
	m.removed[id] = r.now
	var exit *sparkpodsv1.ExecutorExit
	if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED {
		exit = exitreason.ForDeletedPod(id, e, m.conf.SparkContainerName)
	} else {
		exit = exitreason.ForFinishedPod(id, e, m.conf.SparkContainerName)
	}
	r.actions.Events = append(r.actions.Events, &sparkpodsv1.ExecutorEvent{
		Namespace:         m.conf.Namespace,
		AppId:             m.conf.AppID,
		Type:              sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
		ExecutorId:        id,
		State:             e.GetState(),
		Exit:              exit,
		PodName:           e.GetPodName(),
		ResourceProfileId: e.GetResourceProfileId(),
	})
}

// removeFromK8s asks for the pod of finished executor e to be deleted or,
// with deleteOnTermination=false, labelled inactive.
func (m *Manager) removeFromK8s(r *round, e *sparkpodsv1.Executor) {
	if m.conf.DeleteOnTermination {
		// SPARK-54197: a pod that already has a deletion timestamp is on its
		// way out, and another DELETE would only load the API server.
		if e.GetDeletionTime() != nil {
			return
		}
		r.actions.Delete = append(r.actions.Delete, podRef(e))
		return
	}
	if _, ok := m.inactivated[e.GetExecutorId()]; ok {
		return
	}
	r.actions.LabelInactive = append(r.actions.LabelInactive, podRef(e))
	m.inactivated[e.GetExecutorId()] = struct{}{}
}

// detectMissing reports registered executors whose pods a new full snapshot
// does not have: the scheduler would otherwise wait forever for an executor
// whose deletion the watch missed.
func (m *Manager) detectMissing(r *round, last *sparkpodsv1.ExecutorSnapshot, inLast map[int64]struct{}, registered map[int64]time.Time) {
	fullMs := fullSnapshotMs(last)
	if fullMs == m.lastFullSnapshotMs {
		return
	}
	m.lastFullSnapshotMs = fullMs
	deltaMs := m.conf.MissingPodDetectDelta.Milliseconds()
	for _, id := range slices.Sorted(maps.Keys(registered)) {
		if _, ok := inLast[id]; ok {
			continue
		}
		// Spark skips executors removed in this round; with a positive cache
		// timeout they are in the cache too, so this only mirrors Spark.
		if _, ok := r.removedThisRound[id]; ok {
			continue
		}
		registeredMs := registered[id].UnixMilli()
		if m.recentlyRemoved(id, r.now) || fullMs-registeredMs <= deltaMs {
			continue
		}
		// Unlike a removal, a missing executor is not remembered: the next
		// full snapshot reports it again if the scheduler still has it.
		r.actions.Events = append(r.actions.Events, &sparkpodsv1.ExecutorEvent{
			Namespace:  m.conf.Namespace,
			AppId:      m.conf.AppID,
			Type:       sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING,
			ExecutorId: id,
			Exit:       exitreason.ForMissingPod(id, registeredMs, fullMs, deltaMs),
		})
	}
}

// fullSnapshotMs is Spark's fullSnapshotTs of s: 0 until the first full list.
func fullSnapshotMs(s *sparkpodsv1.ExecutorSnapshot) int64 {
	if s.GetFullSnapshotTime() == nil {
		return 0
	}
	return s.GetFullSnapshotTime().AsTime().UnixMilli()
}

// ExceedMaxExecutorFailuresExitCode is the exit code of Spark's driver when
// more executors failed than spark.executor.maxNumFailures allows
// (SparkExitCode.EXCEED_MAX_EXECUTOR_FAILURES).
const ExceedMaxExecutorFailuresExitCode = 11

func (m *Manager) checkFailureLimit(r *round) {
	if m.limitReported {
		return
	}
	n := m.numFailedExecutors(r.now)
	if n <= m.conf.MaxNumFailures {
		return
	}
	m.limitReported = true
	r.actions.Events = append(r.actions.Events, &sparkpodsv1.ExecutorEvent{
		Namespace:       m.conf.Namespace,
		AppId:           m.conf.AppID,
		Type:            sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED,
		FailedExecutors: int32(min(n, math.MaxInt32)),
		MaxFailures:     int32(m.conf.MaxNumFailures),
		// What Spark's driver logs before it exits with this code.
		Exit: &sparkpodsv1.ExecutorExit{
			ExitCode: ExceedMaxExecutorFailuresExitCode,
			Message:  exitreason.FailureLimitMessage(m.conf.MaxNumFailures),
		},
	})
}

// RegisterExecutorFailure counts a failure that no snapshot shows, such as
// an executor pod the allocator failed to create (Spark 4.2). The next round
// checks the limit.
func (m *Manager) RegisterExecutorFailure() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failureTimes = append(m.failureTimes, m.conf.Clock.Now().UnixMilli())
}

// NumFailedExecutors returns how many failures count now: all of them, or
// with a FailuresValidityInterval only those registered within it.
func (m *Manager) NumFailedExecutors() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.numFailedExecutors(m.conf.Clock.Now())
}

func (m *Manager) numFailedExecutors(now time.Time) int {
	if validity := m.conf.FailuresValidityInterval.Milliseconds(); validity > 0 {
		cutoff := now.UnixMilli() - validity
		i := 0
		for i < len(m.failureTimes) && m.failureTimes[i] < cutoff {
			i++
		}
		m.failureTimes = m.failureTimes[i:]
	}
	return len(m.failureTimes)
}

// Retry undoes what the Manager recorded for the part of a round's Actions
// that the service could not carry out, so that later rounds ask for it
// again. Call it, before the next round, with the whole Actions when its
// events could not be recorded, or with only the LabelInactive entries that
// failed. A removed executor is then reported again by the next round that
// still shows it finished or deleted, and a pod labelled again by the next
// round that shows it finished. A missing executor needs no undoing: it is
// reported again on the next new full snapshot. Failures stay counted.
func (m *Manager) Retry(a Actions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range a.Events {
		switch ev.GetType() {
		case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED:
			delete(m.removed, ev.GetExecutorId())
		case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED:
			m.limitReported = false
		}
	}
	for _, p := range a.LabelInactive {
		delete(m.inactivated, p.ExecutorID)
	}
}

// recentlyRemoved reports whether executor id is in the removed-executors
// cache at now. Like Guava's expireAfterWrite, an entry is gone once its age
// reaches the timeout.
func (m *Manager) recentlyRemoved(id int64, now time.Time) bool {
	at, ok := m.removed[id]
	return ok && now.Sub(at) < m.conf.DeletedExecutorsCacheTimeout
}

// expireRemoved drops expired entries of the removed-executors cache, which
// otherwise would grow with every executor the application ever had.
func (m *Manager) expireRemoved(now time.Time) {
	for id := range m.removed {
		if !m.recentlyRemoved(id, now) {
			delete(m.removed, id)
		}
	}
}
