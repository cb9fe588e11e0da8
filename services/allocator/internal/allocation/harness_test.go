package allocation_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	clocktesting "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
)

// The settings of Spark's ExecutorPodsAllocatorSuite: batch size 5 and a 10s
// idle timeout, everything else at its default.
const (
	suiteBatchSize = 5
	suiteIdle      = 10 * time.Second
)

// podReq is one executor pod the allocator asked for.
type podReq struct {
	ID int64
	RP int32
}

// fakePods is a PodWriter that records every call. Creation fails for the
// ids failCreate returns an error for, or wholesale with createErr.
type fakePods struct {
	mu               sync.Mutex
	requested        []podReq
	pendingDeletes   [][]int64
	deletes          [][]int64
	failCreate       func(id int64) error
	createErr        error
	deletePendingErr error
	// onCreate and onDeletePending, when set, run inside the calls, without
	// the fake's lock.
	onCreate        func(ids []int64)
	onDeletePending func(ids []int64)
}

func (f *fakePods) CreateExecutorPods(_ context.Context, rpID int32, ids []int64) (map[int64]error, error) {
	if f.onCreate != nil {
		f.onCreate(ids)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	failed := map[int64]error{}
	for _, id := range ids {
		f.requested = append(f.requested, podReq{ID: id, RP: rpID})
		if f.failCreate != nil {
			if err := f.failCreate(id); err != nil {
				failed[id] = err
			}
		}
	}
	if f.createErr != nil {
		return nil, f.createErr
	}
	return failed, nil
}

func (f *fakePods) DeletePendingExecutorPods(_ context.Context, ids []int64) error {
	if f.onDeletePending != nil {
		f.onDeletePending(ids)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pendingDeletes = append(f.pendingDeletes, slices.Clone(ids))
	return f.deletePendingErr
}

func (f *fakePods) DeleteExecutorPods(_ context.Context, ids []int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, slices.Clone(ids))
	return nil
}

// scenario drives an Allocator the way Spark's suite drives
// ExecutorPodsAllocator through DeterministicExecutorPodsSnapshotsStore:
// updatePod applies an incremental update and buffers the new snapshot,
// notify hands the whole buffer to a round and clears it (an empty buffer
// gives an empty batch), and setTargets runs a round at once when the
// allocator asks for one.
type scenario struct {
	t          *testing.T
	clock      *clocktesting.FakePassiveClock
	start      time.Time
	pods       *fakePods
	alloc      *allocation.Allocator
	current    map[int64]*sparkpodsv1.Executor
	revision   int64
	buffer     []*sparkpodsv1.ExecutorSnapshot
	registered map[int64]bool
}

func newScenario(t *testing.T, configure func(*allocation.Config)) *scenario {
	t.Helper()
	conf := allocation.DefaultConfig()
	conf.BatchSize = suiteBatchSize
	conf.ExecutorIdleTimeout = suiteIdle
	if configure != nil {
		configure(&conf)
	}
	start := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	s := &scenario{
		t:          t,
		clock:      clocktesting.NewFakePassiveClock(start),
		start:      start,
		pods:       &fakePods{},
		current:    map[int64]*sparkpodsv1.Executor{},
		registered: map[int64]bool{},
	}
	alloc, err := allocation.NewAllocator(allocation.AllocatorConfig{
		Config: conf,
		Pods:   s.pods,
		Clock:  s.clock,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("NewAllocator: %v", err)
	}
	s.alloc = alloc
	return s
}

func (s *scenario) advance(d time.Duration) { s.clock.SetTime(s.clock.Now().Add(d)) }

func (s *scenario) executor(id int64, rp int32, state sparkpodsv1.ExecutorState) *sparkpodsv1.Executor {
	return &sparkpodsv1.Executor{
		ExecutorId:        id,
		State:             state,
		ResourceProfileId: rp,
		CreateTime:        timestamppb.New(s.clock.Now()),
	}
}

// pending is a pending executor pod created now, like the suite's
// pendingExecutor, whose creation timestamp is the time of the update.
func (s *scenario) pending(id int64, rp int32) *sparkpodsv1.Executor {
	return s.executor(id, rp, sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING)
}

func (s *scenario) running(id int64, rp int32) *sparkpodsv1.Executor {
	return s.executor(id, rp, sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING)
}

func (s *scenario) failed(id int64, rp int32) *sparkpodsv1.Executor {
	return s.executor(id, rp, sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED)
}

func (s *scenario) deleted(id int64, rp int32) *sparkpodsv1.Executor {
	return s.executor(id, rp, sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED)
}

func (s *scenario) snapshot() *sparkpodsv1.ExecutorSnapshot {
	s.revision++
	snap := &sparkpodsv1.ExecutorSnapshot{Namespace: "default", AppId: "spark-app-id", Revision: s.revision}
	for _, id := range slices.Sorted(maps.Keys(s.current)) {
		snap.Executors = append(snap.Executors, s.current[id])
	}
	return snap
}

// updatePod is an incremental update: it adds or replaces one executor.
func (s *scenario) updatePod(e *sparkpodsv1.Executor) {
	s.current[e.GetExecutorId()] = e
	s.buffer = append(s.buffer, s.snapshot())
}

// replaceSnapshot is a full re-list: the snapshot becomes exactly execs.
func (s *scenario) replaceSnapshot(execs ...*sparkpodsv1.Executor) {
	s.current = map[int64]*sparkpodsv1.Executor{}
	for _, e := range execs {
		s.current[e.GetExecutorId()] = e
	}
	s.buffer = append(s.buffer, s.snapshot())
}

// removeDeletedExecutors is a full re-list after deleted pods have gone.
func (s *scenario) removeDeletedExecutors() {
	var kept []*sparkpodsv1.Executor
	for _, e := range s.current {
		if e.GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED {
			kept = append(kept, e)
		}
	}
	s.replaceSnapshot(kept...)
}

func (s *scenario) register(ids ...int64) {
	s.registered = map[int64]bool{}
	for _, id := range ids {
		s.registered[id] = true
	}
}

func (s *scenario) tryNotify() error {
	batch := s.buffer
	s.buffer = nil
	return s.alloc.OnNewSnapshots(context.Background(), batch, maps.Clone(s.registered))
}

func (s *scenario) notify() {
	s.t.Helper()
	if err := s.tryNotify(); err != nil {
		s.t.Fatalf("round: %v", err)
	}
}

func (s *scenario) trySetTargets(targets map[int32]int32) error {
	if s.alloc.SetTotalExpectedExecutors(targets) {
		return s.tryNotify()
	}
	return nil
}

func (s *scenario) setTargets(targets map[int32]int32) {
	s.t.Helper()
	if err := s.trySetTargets(targets); err != nil {
		s.t.Fatalf("round after SetTotalExpectedExecutors: %v", err)
	}
}

func (s *scenario) wantOutstanding(want int) {
	s.t.Helper()
	if got := s.alloc.Status().Outstanding; got != want {
		s.t.Fatalf("outstanding pods = %d, want %d", got, want)
	}
}

// wantRequested checks every pod requested so far, in order.
func (s *scenario) wantRequested(want ...podReq) {
	s.t.Helper()
	if got := s.pods.requested; !slices.Equal(got, want) {
		s.t.Fatalf("pods requested = %v, want %v", got, want)
	}
}

// ids is the requests for ids in the default profile.
func ids(ids ...int64) []podReq {
	var out []podReq
	for _, id := range ids {
		out = append(out, podReq{ID: id})
	}
	return out
}

func idRange(from, to int64) []podReq {
	var out []podReq
	for id := from; id <= to; id++ {
		out = append(out, podReq{ID: id})
	}
	return out
}

// wantPendingDeletes checks every DeletePendingExecutorPods call so far.
func (s *scenario) wantPendingDeletes(want ...[]int64) {
	s.t.Helper()
	if got := s.pods.pendingDeletes; !slices.EqualFunc(got, want, slices.Equal) {
		s.t.Fatalf("pending-pod deletions = %v, want %v", got, want)
	}
}

// wantDeletes checks every DeleteExecutorPods call so far.
func (s *scenario) wantDeletes(want ...[]int64) {
	s.t.Helper()
	if got := s.pods.deletes; !slices.EqualFunc(got, want, slices.Equal) {
		s.t.Fatalf("deletions = %v, want %v", got, want)
	}
}

func (s *scenario) wantDeleted(want bool, ids ...int64) {
	s.t.Helper()
	for _, id := range ids {
		if got := s.alloc.IsDeleted(id); got != want {
			s.t.Fatalf("IsDeleted(%d) = %v, want %v", id, got, want)
		}
	}
}

func (s *scenario) profile(rp int32) allocation.ProfileStatus {
	s.t.Helper()
	for _, p := range s.alloc.Status().Profiles {
		if p.ResourceProfileID == rp {
			return p
		}
	}
	s.t.Fatalf("no status for resource profile %d", rp)
	return allocation.ProfileStatus{}
}

var errQuota = errors.New("exceeded quota: executors")
