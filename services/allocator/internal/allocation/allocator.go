package allocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// PodWriter carries out the allocator's pod writes for one application. The
// service implements it with the PodService client; the namespace, the
// application id and everything the pod spec is built from are the
// implementation's business, not the allocator's.
//
// The allocator calls it only from inside a round, one call at a time, and
// treats every error as Spark treats a failed API call: it logs it and lets a
// later round, a later snapshot or the creation timeout converge. It never
// retries a call itself.
type PodWriter interface {
	// CreateExecutorPods creates one executor pod for each id, all of
	// resource profile rpID. The ids are fresh: the allocator never passes an
	// id twice, so an implementation that persists the executor-id high-water
	// mark should persist the largest id before it creates any pod.
	//
	// failed maps the ids whose pod could not be created to the reason. A
	// non-nil err means the call as a whole failed and the allocator counts
	// every id as failed; if some pods were created regardless, they show up
	// in a later snapshot and are counted from there, and their ids are never
	// issued again.
	CreateExecutorPods(ctx context.Context, rpID int32, ids []int64) (failed map[int64]error, err error)
	// DeletePendingExecutorPods deletes the pods of ids that are still in
	// phase Pending, leaving the others alone (Spark's deletion of excess
	// pending executors, with field selector status.phase=Pending). ids are
	// in ascending order.
	DeletePendingExecutorPods(ctx context.Context, ids []int64) error
	// DeleteExecutorPods deletes the pods of ids whatever their phase
	// (Spark's deletion of requests that never appeared in a snapshot).
	DeleteExecutorPods(ctx context.Context, ids []int64) error
}

// ErrStopped is returned by OnNewSnapshots once Stop has been called.
var ErrStopped = errors.New("allocation: allocator stopped")

// MaximumExceededError ends a round whose next executor id would reach
// spark.kubernetes.allocation.maximum. The pods requested earlier in the
// round stand; no further pods are requested until the round after, which
// fails the same way if it needs another id.
type MaximumExceededError struct {
	// Maximum is the configured spark.kubernetes.allocation.maximum.
	Maximum int
}

// Error returns Spark's message for the condition, word for word, so that
// logs and clients read as they would with Spark.
func (e *MaximumExceededError) Error() string {
	return fmt.Sprintf("Exceed the pod creation limit: %d", e.Maximum)
}

// AllocatorConfig is what NewAllocator needs.
type AllocatorConfig struct {
	// Config is the application's allocator settings. Required; it is
	// validated.
	Config Config
	// Pods makes the pod writes. Required.
	Pods PodWriter
	// Clock tells the time for creation timeouts and idle protection. Nil
	// means the real clock.
	Clock clock.PassiveClock
	// Logger receives the allocator's decisions and the errors it swallows.
	// Nil means slog.Default().
	Logger *slog.Logger
	// LastExecutorID is the highest executor id already issued for the
	// application, restored from persisted state after a restart; the next
	// id is one more. 0 for a new application.
	LastExecutorID int64
	// Existing are the application's executor pods (id → resource profile)
	// that a consistent read of the API server found when the allocator was
	// restored. Until a snapshot shows them they count as requested and not
	// yet seen, as Spark counts its newly created executors, so that a
	// snapshot service that has not caught up with the cluster (its watch
	// broken by an API server outage, say) does not make a restored
	// allocator request them again; a full snapshot taken after the restore
	// that lacks one says the pod is gone since.
	Existing map[int64]int32
}

// Allocator runs Spark's executor pod allocation for one application.
//
// Rounds (OnNewSnapshots) and Stop are serialised: one runs at a time, and a
// round holds the allocator for as long as its pod writes take. The other
// methods never wait for a round: SetTotalExpectedExecutors, IsDeleted and
// Status read and write a small shared state under a short lock, so they are
// cheap to call from request handlers at any time. All methods are safe for
// concurrent use.
type Allocator struct {
	cfg   Config
	pods  PodWriter
	clock clock.PassiveClock
	log   *slog.Logger

	// round serialises rounds and Stop, and guards the round-private state
	// below it, which only rounds and Stop touch.
	round sync.Mutex
	// lastID is Spark's EXECUTOR_ID_COUNTER: the last executor id issued.
	lastID int64
	// newly is Spark's newlyCreatedExecutors: requested, not yet seen in a
	// snapshot, not registered with the scheduler.
	newly *requests
	// known is Spark's schedulerKnownNewlyCreatedExecs: requested, not yet
	// seen in a snapshot, but registered with the scheduler.
	known *requests
	// restoredAt is when the allocator was built, with restored requests
	// in newly; zero when none are left.
	restoredAt time.Time
	// lastPods is Spark's lastSnapshot, indexed by executor id.
	lastPods     map[int64]*sparkpodsv1.Executor
	lastRevision int64
	// failedCreations is Spark's totalFailedPodCreations.
	failedCreations int
	// failureStreak counts the consecutive pod requests in which no pod
	// could be created; while it is positive no pods are requested before
	// backoffUntil.
	failureStreak int
	backoffUntil  time.Time
	lastFailure   string

	// mu guards the shared state below it.
	mu sync.Mutex
	// targets is Spark's totalExpectedExecutorsPerResourceProfileId. Entries
	// are never removed.
	targets map[int32]int32
	// outstanding is Spark's numOutstandingPods, set at the end of each
	// complete round.
	outstanding int
	// deleted is Spark's deletedExecutorIds, the set IsDeleted reads. A
	// round adds to it as it decides deletions and replaces it at its end.
	deleted map[int64]bool
	// view is what Status reports, set at the end of each round.
	view    roundView
	stopped bool
}

// NewAllocator returns an Allocator with no targets, which requests nothing
// until SetTotalExpectedExecutors is called.
func NewAllocator(conf AllocatorConfig) (*Allocator, error) {
	if err := conf.Config.Validate(); err != nil {
		return nil, err
	}
	if conf.Pods == nil {
		return nil, errors.New("allocation: a PodWriter is required")
	}
	if conf.LastExecutorID < 0 {
		return nil, fmt.Errorf("allocation: last executor id %d is negative", conf.LastExecutorID)
	}
	if conf.Clock == nil {
		conf.Clock = clock.RealClock{}
	}
	if conf.Logger == nil {
		conf.Logger = slog.Default()
	}
	a := &Allocator{
		cfg:      conf.Config,
		pods:     conf.Pods,
		clock:    conf.Clock,
		log:      conf.Logger,
		lastID:   conf.LastExecutorID,
		newly:    newRequests(),
		known:    newRequests(),
		lastPods: map[int64]*sparkpodsv1.Executor{},
		targets:  map[int32]int32{},
		deleted:  map[int64]bool{},
	}
	if len(conf.Existing) > 0 {
		a.restoredAt = conf.Clock.Now()
		for _, id := range slices.Sorted(maps.Keys(conf.Existing)) {
			a.newly.add(id, request{rpID: conf.Existing[id], created: a.restoredAt, restored: true})
			a.lastID = max(a.lastID, id)
		}
	}
	a.view = roundView{lastExecutorID: a.lastID}
	return a, nil
}

// Config returns the allocator's settings.
func (a *Allocator) Config() Config { return a.cfg }

// SetTotalExpectedExecutors sets the target number of executors of the given
// resource profiles (Spark's requestTotalExecutors); profiles not in the map
// keep their target. Targets must not be negative; validating them is the
// caller's job, as it is Spark's scheduler's.
//
// It reports whether the caller should run a round now rather than at the
// next tick: true exactly when no pods are outstanding, as Spark notifies its
// subscribers only then. After Stop it changes nothing and returns false.
func (a *Allocator) SetTotalExpectedExecutors(targets map[int32]int32) (runNow bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return false
	}
	maps.Copy(a.targets, targets)
	return a.outstanding == 0
}

// IsDeleted reports whether the allocator deleted executor id's pod as
// excess and has not yet seen it leave the snapshot (Spark's isDeleted). The
// scheduler refuses registration from such an executor. Requests deleted for
// never appearing in a snapshot are not included, as in Spark.
func (a *Allocator) IsDeleted(id int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deleted[id]
}

// StopDecision is what stopping an application's allocation entails.
type StopDecision struct {
	// DeleteAllExecutorPods is spark.kubernetes.executor.deleteOnTermination:
	// when true the caller deletes every executor pod of the application,
	// selected by label rather than by these ids, as Spark's stop does; when
	// false the pods are left alone.
	DeleteAllExecutorPods bool
	// ExecutorIDs are the executors the allocator knows of at stop, in
	// ascending order: those in the last snapshot and those requested but
	// not yet seen. For reporting; the deletion must not be limited to them.
	ExecutorIDs []int64
}

// Stop ends allocation for the application: it waits for a round in
// progress, after which no round runs and targets are no longer accepted, and
// returns what Spark's stop would delete. Calling it again returns the same
// decision.
func (a *Allocator) Stop() StopDecision {
	a.round.Lock()
	defer a.round.Unlock()
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()

	ids := slices.Collect(maps.Keys(a.lastPods))
	a.newly.each(func(id int64, _ request) { ids = append(ids, id) })
	a.known.each(func(id int64, _ request) { ids = append(ids, id) })
	slices.Sort(ids)
	return StopDecision{
		DeleteAllExecutorPods: a.cfg.DeleteOnTermination,
		ExecutorIDs:           slices.Compact(ids),
	}
}
