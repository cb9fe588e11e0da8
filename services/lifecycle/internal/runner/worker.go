package runner

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/exitreason"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// worker runs one application's rounds.
type worker struct {
	r      *Runner
	key    eventstore.AppKey
	logger *slog.Logger

	mu sync.Mutex
	// pending are the snapshots since the last round, oldest first: the
	// round's batch.
	pending []*sparkpodsv1.ExecutorSnapshot

	// The allocator's failed-pod-creation counter as last read, for
	// countCreationFailures; used only by the worker's own goroutine.
	creationFailures int64
	lastCreationPoll time.Time
	creationPolled   bool
	// creationBaseline makes the first reading a baseline instead of new
	// failures: set when the reconcile state was restored, whose failure
	// times already hold what was counted before a restart.
	creationBaseline bool
}

func newWorker(r *Runner, key eventstore.AppKey) *worker {
	return &worker{r: r, key: key, logger: r.conf.Logger.With("app", key.String())}
}

// maxPending bounds the snapshots an application keeps between rounds, for
// when rounds cannot run (the scheduler service is down). Each snapshot is
// the application's whole state, so dropping the oldest loses only
// transitions that later snapshots no longer show.
const maxPending = 1000

func (w *worker) push(s *sparkpodsv1.ExecutorSnapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) >= maxPending {
		w.pending = slices.Delete(w.pending, 0, len(w.pending)-maxPending+1)
	}
	w.pending = append(w.pending, s)
}

func (w *worker) take() []*sparkpodsv1.ExecutorSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.pending
	w.pending = nil
	return b
}

// giveBack puts a batch back in front of what arrived since, for the next
// round.
func (w *worker) giveBack(b []*sparkpodsv1.ExecutorSnapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(b, w.pending...)
}

// run sets the application up and runs its rounds until ctx ends or the
// scheduler stops managing it; it reports whether the application was
// managed.
func (w *worker) run(ctx context.Context) bool {
	app, err := w.application(ctx)
	if err != nil {
		return !errors.Is(err, ErrNotManaged)
	}
	conf, err := configFor(w.key.Namespace, w.key.AppID, sparkconf.Conf(app.GetSparkConf()))
	if err != nil {
		// The allocator validated the configuration; if it still does not
		// parse here, Spark's defaults are the safest reading.
		w.logger.ErrorContext(ctx, "spark configuration unreadable; using Spark's defaults", "err", err)
		conf, _ = configFor(w.key.Namespace, w.key.AppID, nil)
	}
	conf.reconcile.Clock = w.r.conf.Clock
	mgr, err := reconcile.NewManager(conf.reconcile)
	if err != nil {
		w.logger.ErrorContext(ctx, "cannot manage application", "err", err)
		return false
	}
	if state, ok := w.r.conf.Store.State(w.key); ok {
		mgr.Restore(state)
		w.creationBaseline = true
		w.logger.InfoContext(ctx, "restored reconcile state", "removed", len(state.RemovedMs), "failures", len(state.FailureTimesMs), "limitReported", state.LimitReported)
	}
	owner := w.owner(ctx, app)
	w.logger.InfoContext(ctx, "managing executor lifecycle", "interval", conf.interval,
		"deleteOnTermination", conf.reconcile.DeleteOnTermination, "maxNumFailures", conf.reconcile.MaxNumFailures)

	ticker := w.r.conf.Clock.NewTicker(conf.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-ticker.C():
		}
		if err := w.round(ctx, mgr, owner); errors.Is(err, ErrNotManaged) {
			w.logger.InfoContext(ctx, "application unregistered; no longer managing it")
			return false
		}
	}
}

// application asks the scheduler for the application until it answers.
func (w *worker) application(ctx context.Context) (*sparkpodsv1.Application, error) {
	for {
		callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
		app, err := w.r.conf.Scheduler.Application(callCtx, w.key)
		cancel()
		switch {
		case err == nil:
			return app, nil
		case errors.Is(err, ErrNotManaged):
			w.logger.DebugContext(ctx, "application not registered with the scheduler; ignoring its executors")
			return nil, err
		}
		w.logger.WarnContext(ctx, "cannot look the application up; retrying", "err", err, "in", w.r.conf.RecheckInterval)
		if !w.sleep(ctx, w.r.conf.RecheckInterval) {
			return nil, ctx.Err()
		}
	}
}

func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	t := w.r.conf.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// owner finds the driver pod the application's event segments belong to.
func (w *worker) owner(ctx context.Context, app *sparkpodsv1.Application) *metav1.OwnerReference {
	if w.r.conf.Owners == nil || app.GetDriverPodName() == "" {
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
	defer cancel()
	ref, err := w.r.conf.Owners.DriverPod(callCtx, w.key.Namespace, app.GetDriverPodName())
	if err != nil {
		w.logger.WarnContext(ctx, "driver pod not found; event segments will have no owner", "driverPod", app.GetDriverPodName(), "err", err)
		return nil
	}
	return ref
}

// round runs one processing interval: Spark's onNewSnapshots over the
// snapshots since the last round, then its Actions, in the contract's order.
func (w *worker) round(ctx context.Context, mgr *reconcile.Manager, owner *metav1.OwnerReference) error {
	m := w.r.conf.Metrics
	batch := w.take()
	var registered map[int64]time.Time
	if mgr.NeedsRegistered(batch) {
		callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
		var err error
		registered, err = w.r.conf.Scheduler.Registered(callCtx, w.key)
		cancel()
		if err != nil {
			if errors.Is(err, ErrNotManaged) {
				return err
			}
			// Without the registered executors the round would consume the
			// new full snapshot without detecting missing pods; wait.
			w.logger.WarnContext(ctx, "cannot read registered executors; postponing the round", "err", err)
			w.giveBack(batch)
			return nil
		}
	}
	w.countCreationFailures(ctx, mgr)
	m.rounds.Inc()
	actions := mgr.OnNewSnapshots(batch, registered)
	if actions.Empty() {
		return nil
	}
	if len(actions.Events) > 0 {
		callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
		recorded, err := w.r.conf.Store.Append(callCtx, w.key, actions.Events, mgr.State(), owner)
		cancel()
		if err != nil {
			// Nothing of the round happens: its pods stay until their events
			// are recorded (SPARK-25730).
			m.recordFailures.Inc()
			w.logger.ErrorContext(ctx, "cannot record executor events; will retry, leaving their pods alone", "events", len(actions.Events), "err", err)
			mgr.Retry(actions)
			return nil
		}
		for _, ev := range recorded {
			m.events.WithLabelValues(eventType(ev), eventState(ev), eventReason(ev)).Inc()
			w.logger.InfoContext(ctx, "executor event recorded", "sequence", ev.GetSequence(), "type", eventType(ev),
				"executor", ev.GetExecutorId(), "state", eventState(ev), "exitCode", ev.GetExit().GetExitCode(),
				"exitCausedByApp", ev.GetExit().GetExitCausedByApp())
		}
	}
	if len(actions.Delete) > 0 {
		callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
		failed, err := w.r.conf.Pods.Delete(callCtx, w.key, actions.Delete)
		cancel()
		m.deletes.WithLabelValues("ok").Add(float64(len(actions.Delete) - len(failed)))
		m.deletes.WithLabelValues("failed").Add(float64(len(failed)))
		if err != nil || len(failed) > 0 {
			// Spark's deletion is best effort: the next round that still
			// sees the pod finished asks again.
			w.logger.WarnContext(ctx, "could not delete finished executor pods", "failed", len(failed), "err", err)
		}
	}
	if len(actions.LabelInactive) > 0 {
		callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
		failed, err := w.r.conf.Pods.LabelInactive(callCtx, w.key, actions.LabelInactive)
		cancel()
		m.labels.WithLabelValues("ok").Add(float64(len(actions.LabelInactive) - len(failed)))
		m.labels.WithLabelValues("failed").Add(float64(len(failed)))
		if len(failed) > 0 {
			w.logger.WarnContext(ctx, "could not label finished executor pods inactive; will retry", "failed", len(failed), "err", err)
			mgr.Retry(reconcile.Actions{LabelInactive: failed})
		}
	}
	return nil
}

// creationFailurePollInterval is how often a worker asks the allocator for
// its failed pod creations: often enough for the failure limit, rarely
// enough that many applications do not load the allocator.
const creationFailurePollInterval = 5 * time.Second

// countCreationFailures registers the allocator's failed pod creations as
// executor failures, as Spark 4.2's allocator does with the lifecycle
// manager's failure tracker. The allocator's counter restarts from 0 when the
// allocator does, so a smaller value counts as new failures since then; the
// first reading after this worker starts is a baseline, because failures
// from before were counted (and recorded in the reconcile state) already or
// predate this application's failure window. A worker for an application
// with no restored state counts from 0, so an image that cannot be pulled
// from the first batch on is counted.
func (w *worker) countCreationFailures(ctx context.Context, mgr *reconcile.Manager) {
	now := w.r.conf.Clock.Now()
	if w.creationPolled && now.Sub(w.lastCreationPoll) < creationFailurePollInterval {
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, w.r.conf.CallTimeout)
	n, err := w.r.conf.Scheduler.FailedPodCreations(callCtx, w.key)
	cancel()
	if err != nil {
		w.logger.DebugContext(ctx, "cannot read failed pod creations; trying again next round", "err", err)
		return
	}
	w.lastCreationPoll = now
	if !w.creationPolled {
		w.creationPolled = true
		if w.creationBaseline {
			w.creationFailures = n
			return
		}
	}
	fresh := n - w.creationFailures
	if n < w.creationFailures {
		fresh = n // the allocator restarted and counts from 0 again
	}
	w.creationFailures = n
	for range fresh {
		mgr.RegisterExecutorFailure()
	}
	if fresh > 0 {
		w.logger.InfoContext(ctx, "pod creations failed; counted as executor failures", "new", fresh, "failures", mgr.NumFailedExecutors())
	}
}

func eventType(ev *sparkpodsv1.ExecutorEvent) string {
	switch ev.GetType() {
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED:
		return "executor_removed"
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING:
		return "executor_missing"
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED:
		return "failure_limit_exceeded"
	}
	return "unspecified"
}

// eventReason is a short, bounded reason for metrics: Spark's description of
// the exit code of a finished executor ("JVM OOM", "SIGKILL, possible
// container OOM", ...), "deleted", "missing" or "failure limit".
func eventReason(ev *sparkpodsv1.ExecutorEvent) string {
	switch ev.GetType() {
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING:
		return "missing"
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED:
		return "failure limit"
	}
	if ev.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED {
		return "deleted"
	}
	return strings.Trim(exitreason.Describe(ev.GetExit().GetExitCode()), "()")
}

func eventState(ev *sparkpodsv1.ExecutorEvent) string {
	switch ev.GetState() {
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED:
		return "succeeded"
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED:
		return "failed"
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED:
		return "deleted"
	}
	return ""
}
