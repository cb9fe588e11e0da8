package application

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
)

// Key names an application: its namespace and Spark application id.
type Key struct {
	Namespace string
	AppID     string
}

func (k Key) String() string { return k.Namespace + "/" + k.AppID }

// maxPendingSnapshots is how many snapshots an application keeps for its
// next round before it folds the older ones into one (see offer).
const maxPendingSnapshots = 8

// killQueue bounds the kill and decommission orders waiting for the run
// loop; a caller blocks only if that many are waiting.
const killQueue = 1024

// App is one registered application: its registration, its Spark allocator
// and the loop that runs allocation rounds for it.
//
// The run loop is the only goroutine that runs rounds; the scheduler API's
// handlers call the other methods at any time.
type App struct {
	key      Key
	reg      *sparkpodsv1.Application // immutable
	settings Settings
	profiles map[int32]bool
	alloc    *allocation.Allocator
	pods     PodClient
	store    *store.Store
	clock    clock.WithTicker
	log      *slog.Logger
	metrics  *Metrics

	// persistMu serialises writes of record, the persisted state.
	persistMu sync.Mutex
	record    *store.Record

	// mu guards the fields below.
	mu sync.Mutex
	// registered are the executors registered with the scheduler, as last
	// reported.
	registered map[int64]*sparkpodsv1.RegisteredExecutor
	// pending are the snapshots received since the last round, oldest first.
	pending []*sparkpodsv1.ExecutorSnapshot
	// latest is the newest snapshot received; nil until the first.
	latest *sparkpodsv1.ExecutorSnapshot

	runNow   chan struct{}
	kills    chan killOrder
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// killOrder is a kill or decommission to carry out in the background.
type killOrder struct {
	ids   []int64
	grace time.Duration
}

// appConfig is what newApp needs.
type appConfig struct {
	record *store.Record
	// existing are the executor pods the API server had at a restore
	// (allocation.AllocatorConfig.Existing).
	existing map[int64]int32
	settings Settings
	pods     PodClient
	store    *store.Store
	clock    clock.WithTicker
	log      *slog.Logger
	metrics  *Metrics
}

func newApp(cfg appConfig) (*App, error) {
	reg := cfg.record.Application
	a := &App{
		key:        Key{reg.GetNamespace(), reg.GetAppId()},
		reg:        reg,
		settings:   cfg.settings,
		profiles:   map[int32]bool{0: true},
		pods:       cfg.pods,
		store:      cfg.store,
		clock:      cfg.clock,
		metrics:    cfg.metrics,
		record:     cfg.record,
		registered: map[int64]*sparkpodsv1.RegisteredExecutor{},
		runNow:     make(chan struct{}, 1),
		kills:      make(chan killOrder, killQueue),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	a.log = cfg.log.With("namespace", a.key.Namespace, "appId", a.key.AppID)
	for _, p := range reg.GetResourceProfiles() {
		a.profiles[p.GetId()] = true
	}
	alloc, err := allocation.NewAllocator(allocation.AllocatorConfig{
		Config:         cfg.settings.Allocation,
		Pods:           podWriter{app: a},
		Clock:          cfg.clock,
		Logger:         a.log,
		LastExecutorID: cfg.record.LastExecutorID,
		Existing:       cfg.existing,
	})
	if err != nil {
		return nil, err
	}
	a.alloc = alloc
	alloc.SetTotalExpectedExecutors(cfg.record.Targets)
	a.metrics.setTargets(a.key, cfg.record.Targets)
	return a, nil
}

// Application returns the registration, with the default profile 0 listed
// first when the registration left it implied.
func (a *App) Application() *sparkpodsv1.Application {
	app := proto.CloneOf(a.reg)
	if !slices.ContainsFunc(app.ResourceProfiles, func(p *sparkpodsv1.ResourceProfile) bool { return p.GetId() == 0 }) {
		app.ResourceProfiles = append([]*sparkpodsv1.ResourceProfile{{Id: 0}}, app.ResourceProfiles...)
	}
	return app
}

// Profiles returns the allocator's state per resource profile.
func (a *App) Profiles() []*sparkpodsv1.ProfileAllocation {
	st := a.alloc.Status()
	out := make([]*sparkpodsv1.ProfileAllocation, len(st.Profiles))
	for i, p := range st.Profiles {
		out[i] = p.Proto()
	}
	return out
}

// SetTargets sets executor targets per profile (Spark's
// requestTotalExecutors). It persists them first, so a restarted allocator
// resumes with them, then wakes the run loop when Spark would run a round at
// once.
func (a *App) SetTargets(ctx context.Context, targets map[int32]int32) error {
	for rp, n := range targets {
		if !a.profiles[rp] {
			return fieldErrorf("targets.resource_profile_id", "resource profile %d is not registered for the application (registered: %v)",
				rp, slices.Sorted(maps.Keys(a.profiles)))
		}
		if n < 0 || n > MaxTarget {
			return fieldErrorf("targets.total_executors", "%d for resource profile %d: must be between 0 and %d", n, rp, MaxTarget)
		}
	}
	a.persistMu.Lock()
	old := a.record.Targets
	merged := maps.Clone(old)
	maps.Copy(merged, targets)
	a.record.Targets = merged
	if err := a.store.Update(ctx, a.record); err != nil {
		a.record.Targets = old
		a.persistMu.Unlock()
		return &DependencyError{Service: "kubernetes", Op: "persist executor targets", Err: err}
	}
	a.persistMu.Unlock()

	if a.alloc.SetTotalExpectedExecutors(targets) {
		a.trigger()
	}
	a.metrics.setTargets(a.key, targets)
	a.log.Info("executor targets set", "targets", targets)
	return nil
}

// reserveIDs persists upTo as the executor-id high-water mark, unless a
// higher one is on record already.
func (a *App) reserveIDs(ctx context.Context, upTo int64) error {
	a.persistMu.Lock()
	defer a.persistMu.Unlock()
	if a.record.LastExecutorID >= upTo {
		return nil
	}
	prev := a.record.LastExecutorID
	a.record.LastExecutorID = upTo
	if err := a.store.Update(ctx, a.record); err != nil {
		a.record.LastExecutorID = prev
		return &DependencyError{Service: "kubernetes", Op: "persist the executor id high-water mark", Err: err}
	}
	return nil
}

// ReportRegistered replaces the executors registered with the scheduler,
// and returns how many there are.
func (a *App) ReportRegistered(execs []*sparkpodsv1.RegisteredExecutor) int {
	reg := make(map[int64]*sparkpodsv1.RegisteredExecutor, len(execs))
	for _, e := range execs {
		reg[e.GetExecutorId()] = e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.registered = reg
	return len(reg)
}

// IsDeleted is Spark's isDeleted.
func (a *App) IsDeleted(id int64) bool { return a.alloc.IsDeleted(id) }

// ListExecutors returns the application's executors and the allocator's
// view of them.
func (a *App) ListExecutors() *sparkpodsv1.ListExecutorsResponse {
	st := a.alloc.Status()
	resp := &sparkpodsv1.ListExecutorsResponse{
		DeletedExecutorIds: st.DeletedExecutorIDs,
		SnapshotRevision:   st.SnapshotRevision,
		Counts:             &sparkpodsv1.ExecutorCounts{},
		FailedPodCreations: int64(st.FailedPodCreations),
	}
	for _, p := range st.Profiles {
		resp.Profiles = append(resp.Profiles, p.Proto())
	}
	a.mu.Lock()
	latest := a.latest
	for _, r := range a.registered {
		resp.RegisteredExecutors = append(resp.RegisteredExecutors, proto.CloneOf(r))
	}
	a.mu.Unlock()
	slices.SortFunc(resp.RegisteredExecutors, func(x, y *sparkpodsv1.RegisteredExecutor) int {
		return cmp.Compare(x.GetExecutorId(), y.GetExecutorId())
	})
	c := resp.Counts
	for _, e := range latest.GetExecutors() {
		resp.Executors = append(resp.Executors, e)
		switch e.GetState() {
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING:
			c.Pending++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING:
			c.Running++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED:
			c.Succeeded++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED:
			c.Failed++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED:
			c.Deleted++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_TERMINATING:
			c.Terminating++
		default:
			c.Unknown++
		}
	}
	return resp
}

// offer hands the run loop a new snapshot of the application. It never
// blocks. The first snapshot wakes the loop, which runs no round before it;
// later ones wake it too when the application asks for RoundOnSnapshot.
func (a *App) offer(s *sparkpodsv1.ExecutorSnapshot) {
	a.mu.Lock()
	first := a.latest == nil
	a.latest = s
	a.pending = append(a.pending, s)
	if len(a.pending) > maxPendingSnapshots {
		// A round reads a batch only through the union of its snapshots
		// (which executors were seen) and its last snapshot, so the older
		// snapshots can be folded into their union without changing the
		// round's decisions, and a stalled round cannot make the batch grow
		// without bound.
		last := len(a.pending) - 1
		a.pending = []*sparkpodsv1.ExecutorSnapshot{union(a.pending[:last]), a.pending[last]}
	}
	a.mu.Unlock()
	if first || a.settings.RoundOnSnapshot {
		a.trigger()
	}
}

// trigger asks the run loop for a round now.
func (a *App) trigger() {
	select {
	case a.runNow <- struct{}{}:
	default:
	}
}

// run runs allocation rounds every batch delay and whenever triggered,
// and carries out kill orders, until ctx ends or the application is
// stopped. Kill orders in flight end with it.
func (a *App) run(ctx context.Context) error {
	defer close(a.done)
	ctx, cancel := context.WithCancel(ctx)
	var kills errgroup.Group
	defer func() {
		cancel()
		_ = kills.Wait()
	}()
	ticker := a.clock.NewTicker(a.settings.Allocation.BatchDelay)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.stop:
			return nil
		case o := <-a.kills:
			kills.Go(func() error {
				a.kill(ctx, o)
				return nil
			})
			continue
		case <-ticker.C():
		case <-a.runNow:
		}
		a.round(ctx)
	}
}

// round runs one allocation round over the snapshots received since the
// last one.
func (a *App) round(ctx context.Context) {
	a.mu.Lock()
	if a.latest == nil {
		a.mu.Unlock()
		return
	}
	batch := a.pending
	a.pending = nil
	registered := make(map[int64]bool, len(a.registered))
	for id := range a.registered {
		registered[id] = true
	}
	a.mu.Unlock()

	start := a.clock.Now()
	err := a.alloc.OnNewSnapshots(ctx, batch, registered)
	a.metrics.roundSeconds.Observe(a.clock.Since(start).Seconds())
	result := "ok"
	var maxErr *allocation.MaximumExceededError
	switch {
	case err == nil:
	case errors.Is(err, allocation.ErrStopped), ctx.Err() != nil:
		return
	case errors.As(err, &maxErr):
		result = "error" // the allocator logged it
	default:
		result = "error"
		a.log.Error("allocation round failed", "err", err)
	}
	a.metrics.rounds.WithLabelValues(result).Inc()
	a.metrics.outstanding.WithLabelValues(a.key.Namespace, a.key.AppID).Set(float64(a.alloc.Status().Outstanding))
}

// shutdown stops the run loop and waits until it has returned, or ctx ends.
func (a *App) shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() { close(a.stop) })
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// union merges snapshots into one whose executors are every executor in
// any of them, a later snapshot's entry winning, as Spark aggregates a
// batch.
func union(snaps []*sparkpodsv1.ExecutorSnapshot) *sparkpodsv1.ExecutorSnapshot {
	byID := map[int64]*sparkpodsv1.Executor{}
	for _, s := range snaps {
		for _, e := range s.GetExecutors() {
			byID[e.GetExecutorId()] = e
		}
	}
	last := snaps[len(snaps)-1]
	out := &sparkpodsv1.ExecutorSnapshot{
		Namespace:        last.GetNamespace(),
		AppId:            last.GetAppId(),
		Revision:         last.GetRevision(),
		FullSnapshotTime: last.GetFullSnapshotTime(),
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out.Executors = append(out.Executors, byID[id])
	}
	return out
}

// newRecord returns the record of a new registration.
func newRecord(r Registration, uid string, now time.Time, initial int32) *store.Record {
	return &store.Record{
		Application: &sparkpodsv1.Application{
			Namespace:        r.Namespace,
			AppId:            r.AppID,
			DriverPodName:    r.DriverPodName,
			SparkConf:        maps.Clone(r.SparkConf),
			ResourceProfiles: r.ResourceProfiles,
			RegisterTime:     timestamppb.New(now),
		},
		DriverPodUID: typesUID(uid),
		Targets:      map[int32]int32{0: initial},
	}
}
