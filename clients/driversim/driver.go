package driversim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Config is what a Driver needs. Scheduler, Snapshot, Lifecycle, Namespace
// and AppID are required.
type Config struct {
	// Scheduler reaches the allocator (sparkpods.v1.SchedulerService).
	Scheduler grpc.ClientConnInterface
	// Snapshot reaches the snapshot service, the source of which executors
	// are up.
	Snapshot grpc.ClientConnInterface
	// Lifecycle reaches the lifecycle service, the source of executor
	// losses.
	Lifecycle grpc.ClientConnInterface

	// Namespace and AppID name the application (spark.kubernetes.namespace,
	// spark.app.id).
	Namespace string
	AppID     string
	// DriverPodName is spark.kubernetes.driver.pod.name; empty in client
	// mode.
	DriverPodName string
	// SparkConf is the application's whole Spark configuration, forwarded
	// to the allocator as is; the spark.dynamicAllocation.* keys also drive
	// the simulator.
	SparkConf map[string]string
	// Profiles are resource profiles beyond the default profile 0, which is
	// built from SparkConf.
	Profiles []*sparkpodsv1.ResourceProfile

	// OnLoss is called, from one goroutine at a time, for every executor
	// event once (after de-duplication by sequence). Optional.
	OnLoss func(Loss)
	// Clock is the time source; default the real clock.
	Clock clock.WithTicker
	// Logger receives reconnects and failed calls; default discards.
	Logger *slog.Logger
	// Interval is how often the allocation manager runs; default 100ms,
	// Spark's.
	Interval time.Duration
}

// Loss is an executor event from the lifecycle service.
type Loss struct {
	Event *sparkpodsv1.ExecutorEvent
	// Requested reports that the driver itself asked for the executor to go
	// (an idle release, Kill or Decommission), so the loss is expected.
	Requested bool
	// ResourceProfileID is the executor's profile as the driver registered
	// it (the event of a missing pod may not carry it).
	ResourceProfileID int32
}

// Driver simulates the executor-management side of a Spark driver with
// dynamic allocation. Create it with New, run it with Run, drive its
// workload with SetTasks.
type Driver struct {
	cfg       Config
	scheduler sparkpodsv1.SchedulerServiceClient
	lifecycle sparkpodsv1.LifecycleServiceClient
	watcher   *snapshotwatcher.Watcher

	// wake asks the schedule loop for an immediate round.
	wake chan struct{}

	mu            sync.Mutex
	alloc         *allocationManager
	snapshot      *sparkpodsv1.ExecutorSnapshot
	requested     map[int64]bool // executors the driver asked to go
	lost          map[int64]bool // executors the lifecycle service reported
	reportGen     int            // bumped when the registered set changes
	reportedGen   int            // the generation the allocator holds
	targetsDirty  bool
	lastSequence  int64
	registeredApp bool
	stopped       bool // unregistered: the allocator no longer knows the application
}

// New validates cfg and returns a Driver. It makes no call.
func New(cfg Config) (*Driver, error) {
	switch {
	case cfg.Scheduler == nil || cfg.Snapshot == nil || cfg.Lifecycle == nil:
		return nil, errors.New("driversim: Scheduler, Snapshot and Lifecycle connections are required")
	case cfg.Namespace == "" || cfg.AppID == "":
		return nil, errors.New("driversim: Namespace and AppID are required")
	}
	settings, err := SettingsFromConf(cfg.SparkConf)
	if err != nil {
		return nil, fmt.Errorf("driversim: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	cores := map[int32]int{0: settings.ExecutorCores}
	for _, p := range cfg.Profiles {
		if p.GetId() == 0 {
			continue
		}
		cores[p.GetId()] = settings.ExecutorCores
		if p.GetExecutorCores() > 0 {
			cores[p.GetId()] = int(p.GetExecutorCores())
		}
	}
	w, err := snapshotwatcher.New(cfg.Snapshot,
		snapshotwatcher.WithApplication(cfg.Namespace, cfg.AppID),
		snapshotwatcher.WithHeartbeatInterval(2*time.Second),
		snapshotwatcher.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("driversim: %w", err)
	}
	return &Driver{
		cfg:          cfg,
		scheduler:    sparkpodsv1.NewSchedulerServiceClient(cfg.Scheduler),
		lifecycle:    sparkpodsv1.NewLifecycleServiceClient(cfg.Lifecycle),
		watcher:      w,
		wake:         make(chan struct{}, 1),
		alloc:        newAllocationManager(settings, cores),
		requested:    map[int64]bool{},
		lost:         map[int64]bool{},
		targetsDirty: true,
	}, nil
}

// Run registers the application with the allocator (Spark's start()), then
// until ctx ends: follows the snapshot stream to register Running executors,
// follows the lifecycle event stream, and runs the allocation manager. It
// does not unregister; call Stop for that.
func (d *Driver) Run(ctx context.Context) error {
	if _, err := d.scheduler.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace:        d.cfg.Namespace,
		AppId:            d.cfg.AppID,
		DriverPodName:    d.cfg.DriverPodName,
		SparkConf:        d.cfg.SparkConf,
		ResourceProfiles: d.cfg.Profiles,
	}); err != nil {
		return fmt.Errorf("register application: %w", err)
	}
	d.mu.Lock()
	d.registeredApp = true
	d.mu.Unlock()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.watcher.Run(ctx, d.onSnapshot) })
	g.Go(func() error { return d.followEvents(ctx) })
	g.Go(func() error { return d.scheduleLoop(ctx) })
	return g.Wait()
}

// Stop unregisters the application (Spark's stop()); the allocator deletes
// its executor pods. It returns how many it asked to delete. Run keeps
// following snapshots and events until its ctx ends, but sends nothing more.
func (d *Driver) Stop(ctx context.Context) (int32, error) {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	resp, err := d.scheduler.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{
		Namespace: d.cfg.Namespace, AppId: d.cfg.AppID,
	})
	if err != nil {
		return 0, fmt.Errorf("unregister application: %w", err)
	}
	return resp.GetDeletedPods(), nil
}

// SetTasks sets a profile's workload, the number of tasks pending or
// running; dynamic allocation follows it. It reports false for an unknown
// profile.
func (d *Driver) SetTasks(profile int32, tasks int) bool {
	d.mu.Lock()
	ok := d.alloc.setTasks(profile, tasks)
	d.mu.Unlock()
	d.poke()
	return ok
}

// Kill asks the allocator to kill executors, as the scheduler backend's
// killExecutors does; the targets stay, so the allocator replaces them
// unless the workload shrank.
func (d *Driver) Kill(ctx context.Context, ids []int64) error {
	d.markRequested(ids)
	_, err := d.scheduler.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{
		Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, ExecutorIds: ids,
	})
	if err != nil {
		return fmt.Errorf("kill executors: %w", err)
	}
	return nil
}

// Decommission asks the allocator to decommission executors with a drain
// grace period (0 takes the application's
// spark.kubernetes.dynamicAllocation.deleteGracePeriod).
func (d *Driver) Decommission(ctx context.Context, ids []int64, grace time.Duration) error {
	d.markRequested(ids)
	req := &sparkpodsv1.DecommissionExecutorsRequest{Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, ExecutorIds: ids}
	if grace > 0 {
		req.GracePeriod = durationpb.New(grace)
	}
	if _, err := d.scheduler.DecommissionExecutors(ctx, req); err != nil {
		return fmt.Errorf("decommission executors: %w", err)
	}
	return nil
}

func (d *Driver) markRequested(ids []int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.alloc.markRemoving(ids)
	for _, id := range ids {
		d.requested[id] = true
	}
}

// ProfileStatus is one resource profile as the driver sees it.
type ProfileStatus struct {
	ID int32
	// Target is the dynamic allocation target last computed.
	Target int
	// Tasks is the workload set with SetTasks.
	Tasks int
	// Registered are the executors registered with the driver (Running,
	// not lost), lowest id first; Releasing those of them on their way out.
	Registered []int64
	Releasing  int
	// Counts are the profile's executors in the latest snapshot by state.
	Counts *sparkpodsv1.ExecutorCounts
}

// Status is the driver's view of its application.
type Status struct {
	// Registered reports that RegisterApplication succeeded.
	Registered bool
	// Profiles are ordered by id.
	Profiles []ProfileStatus
	// Snapshot is the latest executor snapshot; shared, do not modify.
	Snapshot *sparkpodsv1.ExecutorSnapshot
	// LastSequence is the last lifecycle event processed.
	LastSequence int64
}

// Status returns the driver's current view.
func (d *Driver) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{Registered: d.registeredApp, Snapshot: d.snapshot, LastSequence: d.lastSequence}
	for _, p := range d.alloc.sortedProfiles() {
		ps := ProfileStatus{ID: p.id, Target: p.target, Tasks: p.tasks, Counts: &sparkpodsv1.ExecutorCounts{}}
		for _, e := range d.alloc.executors {
			if e.profile != p.id {
				continue
			}
			ps.Registered = append(ps.Registered, e.id)
			if e.removing {
				ps.Releasing++
			}
		}
		slices.Sort(ps.Registered)
		for _, e := range d.snapshot.GetExecutors() {
			if e.GetResourceProfileId() == p.id {
				count(ps.Counts, e.GetState())
			}
		}
		st.Profiles = append(st.Profiles, ps)
	}
	return st
}

func count(c *sparkpodsv1.ExecutorCounts, s sparkpodsv1.ExecutorState) {
	switch s {
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

func (d *Driver) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// onSnapshot registers executors whose pods are Running, as their JVMs
// would register with a real driver, and unregisters those that are no
// longer Running. Like Spark's scheduler backend it refuses an executor
// whose pod the allocator deleted (IsExecutorDeleted).
func (d *Driver) onSnapshot(ctx context.Context, u snapshotwatcher.Update) error {
	var snap *sparkpodsv1.ExecutorSnapshot
	for _, s := range u.Snapshots {
		if s.GetNamespace() == d.cfg.Namespace && s.GetAppId() == d.cfg.AppID {
			snap = s
		}
	}
	if snap == nil && len(u.Removed) == 0 && !u.Reset {
		return nil
	}
	running := map[int64]*sparkpodsv1.Executor{}
	for _, e := range snap.GetExecutors() {
		if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
			running[e.GetExecutorId()] = e
		}
	}
	d.mu.Lock()
	var fresh []int64
	for id := range running {
		if _, ok := d.alloc.executors[id]; !ok && !d.lost[id] {
			fresh = append(fresh, id)
		}
	}
	d.mu.Unlock()
	slices.Sort(fresh)

	refused := map[int64]bool{}
	for _, id := range fresh {
		resp, err := d.scheduler.IsExecutorDeleted(ctx, &sparkpodsv1.IsExecutorDeletedRequest{
			Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, ExecutorId: id,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.cfg.Logger.Warn("is executor deleted", "executor", id, "err", err)
			refused[id] = true // try again with the next snapshot
			continue
		}
		refused[id] = resp.GetDeleted()
	}

	now := d.cfg.Clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.snapshot = snap
	for _, id := range fresh {
		if !refused[id] && !d.lost[id] {
			d.alloc.register(id, running[id].GetResourceProfileId(), now)
			d.reportGen++
		}
	}
	// An executor whose pod ended is gone, as its JVM would disconnect. One
	// whose pod vanished stays registered until the lifecycle service
	// reports it missing, as in Spark.
	for _, e := range snap.GetExecutors() {
		if _, ok := d.alloc.executors[e.GetExecutorId()]; ok && final(e.GetState()) {
			d.alloc.unregister(e.GetExecutorId())
			d.reportGen++
		}
	}
	return nil
}

func final(s sparkpodsv1.ExecutorState) bool {
	switch s {
	case sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED, sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
		sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED:
		return true
	}
	return false
}

// scheduleLoop runs the allocation manager every Interval and sends what it
// decides, plus the registered executor set when it changed.
func (d *Driver) scheduleLoop(ctx context.Context) error {
	tick := d.cfg.Clock.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		if err := d.round(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C():
		case <-d.wake:
		}
	}
}

func (d *Driver) round(ctx context.Context) error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return ctx.Err()
	}
	dec := d.alloc.schedule(d.cfg.Clock.Now())
	if dec.targetsChanged {
		d.targetsDirty = true
	}
	var targets []*sparkpodsv1.ExecutorTarget
	if d.targetsDirty {
		for _, p := range d.alloc.sortedProfiles() {
			targets = append(targets, &sparkpodsv1.ExecutorTarget{ResourceProfileId: p.id, TotalExecutors: int32(p.target)})
		}
	}
	var report []*sparkpodsv1.RegisteredExecutor
	gen := d.reportGen
	sendReport := gen != d.reportedGen
	if sendReport {
		for _, id := range slices.Sorted(maps.Keys(d.alloc.executors)) {
			report = append(report, &sparkpodsv1.RegisteredExecutor{
				ExecutorId: id, RegisterTime: timestamppb.New(d.alloc.executors[id].registered),
			})
		}
	}
	for _, id := range dec.release {
		d.requested[id] = true
	}
	d.mu.Unlock()

	// Failed calls are retried on the next round, as Spark's allocation
	// manager re-syncs its target; only ctx ends the loop.
	if targets != nil {
		_, err := d.scheduler.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
			Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, Targets: targets,
		})
		d.mu.Lock()
		d.targetsDirty = err != nil
		d.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("set executor targets", "err", err)
		}
	}
	if sendReport {
		_, err := d.scheduler.ReportRegisteredExecutors(ctx, &sparkpodsv1.ReportRegisteredExecutorsRequest{
			Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, Executors: report,
		})
		if err == nil {
			d.mu.Lock()
			d.reportedGen = gen
			d.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("report registered executors", "err", err)
		}
	}
	if len(dec.release) > 0 {
		var err error
		if d.alloc.settings.Decommission {
			_, err = d.scheduler.DecommissionExecutors(ctx, &sparkpodsv1.DecommissionExecutorsRequest{
				Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, ExecutorIds: dec.release,
			})
		} else {
			_, err = d.scheduler.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{
				Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, ExecutorIds: dec.release,
			})
		}
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("release idle executors", "executors", dec.release, "err", err)
		}
	}
	return ctx.Err()
}
