package allocation_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
)

// The tests below port the scenarios of Spark's ExecutorPodsAllocatorSuite
// (named in each comment) and add the rules the suite leaves implicit.

// Suite: "Initially request executors in batches. Do not request another
// batch if the first has not finished."
func TestInitialRequestIsOneBatchAndTheNextWaitsForIt(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: suiteBatchSize + 1})
	s.wantOutstanding(5)
	s.wantRequested(idRange(1, 5)...)

	// Nothing has appeared yet: later rounds ask for nothing more.
	s.advance(time.Second)
	s.notify()
	s.wantRequested(idRange(1, 5)...)
	s.wantOutstanding(5)
}

// Suite: "Request executors in batches. Allow another batch to be requested
// if all pending executors start running."
func TestNextBatchOnceEveryRequestHasAppeared(t *testing.T) {
	s := newScenario(t, nil)
	if got := s.alloc.Status().LastExecutorID; got != 0 {
		t.Fatalf("last executor id before any round = %d, want 0", got)
	}
	s.setTargets(map[int32]int32{0: suiteBatchSize + 1})
	s.wantOutstanding(5)
	for id := int64(1); id < suiteBatchSize; id++ {
		s.updatePod(s.running(id, 0))
	}
	if got := s.alloc.Status().LastExecutorID; got != 5 {
		t.Fatalf("last executor id = %d, want 5", got)
	}
	s.notify()
	// Executor 5 is still unseen, so it blocks the profile.
	s.wantOutstanding(1)
	s.wantRequested(idRange(1, 5)...)

	s.updatePod(s.running(suiteBatchSize, 0))
	s.notify()
	s.wantOutstanding(1)
	s.wantRequested(idRange(1, 6)...)

	s.updatePod(s.running(suiteBatchSize, 0))
	s.notify()
	s.wantOutstanding(1)
	s.wantRequested(idRange(1, 6)...)
}

// Suite: "When a current batch reaches error states immediately, re-request
// them on the next batch."
func TestFailedExecutorFreesItsSlotInTheSameRound(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: suiteBatchSize})
	s.wantOutstanding(5)
	for id := int64(1); id < suiteBatchSize; id++ {
		s.updatePod(s.running(id, 0))
	}
	s.updatePod(s.failed(suiteBatchSize, 0))
	s.notify()
	s.wantOutstanding(1)
	s.wantRequested(idRange(1, 6)...)
}

// Suite: "Verify stopping deletes the labeled pods".
func TestStopDeletesAllExecutorPodsOnlyWithDeleteOnTermination(t *testing.T) {
	for _, deleteOnTermination := range []bool{true, false} {
		t.Run(fmt.Sprintf("deleteOnTermination=%v", deleteOnTermination), func(t *testing.T) {
			s := newScenario(t, func(c *allocation.Config) { c.DeleteOnTermination = deleteOnTermination })
			s.setTargets(map[int32]int32{0: 3})
			s.updatePod(s.running(2, 0))
			s.notify()

			got := s.alloc.Stop()
			if got.DeleteAllExecutorPods != deleteOnTermination {
				t.Errorf("DeleteAllExecutorPods = %v, want %v", got.DeleteAllExecutorPods, deleteOnTermination)
			}
			if want := []int64{1, 2, 3}; !slices.Equal(got.ExecutorIDs, want) {
				t.Errorf("ExecutorIDs = %v, want %v", got.ExecutorIDs, want)
			}
			if err := s.tryNotify(); !errors.Is(err, allocation.ErrStopped) {
				t.Errorf("round after Stop: %v, want ErrStopped", err)
			}
			if s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 10}) {
				t.Errorf("SetTotalExpectedExecutors after Stop asked for a round")
			}
			s.wantRequested(idRange(1, 3)...)
		})
	}
}

// Suite: "When an executor is requested but the API does not report it in a
// reasonable time, retry requesting that executor."
func TestUnseenRequestTimesOutIsDeletedAndReplaced(t *testing.T) {
	s := newScenario(t, nil)
	timeout := s.alloc.Config().PodCreationTimeout()
	if timeout != 600*time.Second {
		t.Fatalf("PodCreationTimeout = %v, want 600s", timeout)
	}
	s.setTargets(map[int32]int32{0: 1})
	s.wantOutstanding(1)
	s.wantRequested(ids(1)...)

	// The timeout is strict: at exactly the timeout nothing happens.
	s.advance(timeout)
	s.notify()
	s.wantDeletes()
	s.wantRequested(ids(1)...)

	s.advance(time.Millisecond)
	s.notify()
	s.wantOutstanding(1)
	s.wantDeletes([]int64{1})
	s.wantPendingDeletes()
	s.wantRequested(ids(1, 2)...)
	// A timed-out request is not what IsDeleted reports.
	s.wantDeleted(false, 1)
}

func TestTimedOutRequestIsReplacedButKeptWithoutDeleteOnTermination(t *testing.T) {
	s := newScenario(t, func(c *allocation.Config) { c.DeleteOnTermination = false })
	s.setTargets(map[int32]int32{0: 1})
	s.advance(s.alloc.Config().PodCreationTimeout() + time.Millisecond)
	s.notify()
	s.wantDeletes()
	s.wantRequested(ids(1, 2)...)
}

// Suite: "SPARK-28487: scale up and down on target executor count changes".
func TestScaleUpAndDownOnTargetChanges(t *testing.T) {
	s := newScenario(t, nil)
	// Requested even with an empty initial snapshot.
	s.setTargets(map[int32]int32{0: 1})
	s.wantOutstanding(1)
	s.wantRequested(ids(1)...)

	s.updatePod(s.running(1, 0))
	s.notify()
	s.wantOutstanding(0)
	s.wantRequested(ids(1)...)
	s.wantPendingDeletes()

	s.setTargets(map[int32]int32{0: 4})
	s.notify()
	s.wantOutstanding(3)
	s.wantRequested(ids(1, 2, 3, 4)...)

	s.updatePod(s.running(2, 0))
	s.updatePod(s.pending(3, 0))
	s.notify()
	s.wantOutstanding(2)
	s.wantRequested(ids(1, 2, 3, 4)...)
	s.wantPendingDeletes()

	// Scale down to 1: the pending pod and the unseen request both go.
	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 1})
	s.notify()
	s.wantOutstanding(0)
	s.wantRequested(ids(1, 2, 3, 4)...)
	s.wantPendingDeletes([]int64{3, 4})
	s.wantDeleted(true, 3, 4)

	// Once the deleted pods have left the snapshot, they are forgotten.
	s.updatePod(s.deleted(3, 0))
	s.updatePod(s.deleted(4, 0))
	s.removeDeletedExecutors()
	s.notify()
	s.wantOutstanding(0)
	s.wantDeleted(false, 3, 4)
}

// Suite: "SPARK-34334: correctly identify timed out pending pod requests as
// excess".
func TestIdleTimedOutPendingPodIsExcessEvenBesideYoungRequest(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 1})
	s.wantRequested(ids(1)...)
	s.updatePod(s.pending(1, 0))
	s.notify()

	s.advance(suiteIdle)
	s.setTargets(map[int32]int32{0: 2})
	s.notify()
	s.wantRequested(ids(1, 2)...)

	// Pod 1 is exactly idle-timeout old, request 2 brand new: both protected.
	s.setTargets(map[int32]int32{0: 1})
	s.notify()
	s.wantPendingDeletes()

	// Pod 1 is now past the idle timeout; request 2 is not, and must not use
	// up the excess that pod 1 should take.
	s.advance(suiteIdle)
	s.notify()
	s.wantPendingDeletes([]int64{1})
}

// Suite: "SPARK-33099: Respect executor idle timeout configuration".
func TestIdleTimeoutProtectsYoungPodsAndSchedulerKnownAreNeverDeleted(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 5})
	s.wantOutstanding(5)
	s.wantRequested(idRange(1, 5)...)

	s.updatePod(s.pending(1, 0))
	s.updatePod(s.pending(2, 0))
	// Young pending pods and young requests are protected.
	s.setTargets(map[int32]int32{0: 0})
	s.notify()
	s.wantOutstanding(5)
	s.wantPendingDeletes()

	s.advance(2 * suiteIdle)
	s.register(1, 3, 4)
	s.notify()
	// 1 (pending), 3 and 4 (unseen) are registered with the scheduler: they
	// count as running, are not outstanding and are never deleted.
	s.wantOutstanding(0)
	s.wantPendingDeletes([]int64{2, 5})
	s.wantDeletes()
}

// Suite: "SPARK-34361: scheduler backend known pods with multiple resource
// profiles at downscaling".
func TestSchedulerKnownExecutorsWithTwoProfilesAtDownscale(t *testing.T) {
	s := newScenario(t, nil)
	// 0) three executors of the default profile, four of profile 1.
	s.setTargets(map[int32]int32{0: 3, 1: 4})
	s.wantOutstanding(7)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 0}, podReq{4, 1}, podReq{5, 1}, podReq{6, 1}, podReq{7, 1})

	// 1) one request of each profile registers with the scheduler.
	s.register(1, 4)
	s.notify()
	s.wantOutstanding(5)

	// 2) one more each registers, and some pods turn up pending.
	s.register(1, 2, 4, 5)
	s.updatePod(s.pending(2, 0))
	s.updatePod(s.pending(3, 0))
	s.updatePod(s.pending(5, 1))
	s.updatePod(s.pending(6, 1))
	s.notify()
	s.wantOutstanding(3)
	if got := len(s.pods.requested); got != 7 {
		t.Fatalf("%d pods requested, want 7", got)
	}

	// 3) down to one each: only what the scheduler does not know goes.
	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 1, 1: 1})
	s.notify()
	s.wantOutstanding(0)
	s.wantPendingDeletes([]int64{3}, []int64{6, 7})
	s.wantDeleted(true, 3, 6, 7)

	// 4) up to two each: the registered ones already make two.
	s.setTargets(map[int32]int32{0: 2, 1: 2})
	s.notify()
	s.wantOutstanding(0)
	if got := len(s.pods.requested); got != 7 {
		t.Fatalf("%d pods requested, want 7", got)
	}

	// 5) up to three each: one new pod each.
	s.setTargets(map[int32]int32{0: 3, 1: 3})
	s.notify()
	s.wantOutstanding(2)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 0}, podReq{4, 1}, podReq{5, 1}, podReq{6, 1}, podReq{7, 1},
		podReq{8, 0}, podReq{9, 1})
}

// Suite: "SPARK-33288: multiple resource profiles".
func TestTwoResourceProfilesScaleIndependently(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 1, 1: 2})
	s.wantOutstanding(3)
	s.wantRequested(podReq{1, 0}, podReq{2, 1}, podReq{3, 1})

	s.updatePod(s.running(1, 0))
	s.updatePod(s.running(2, 1))
	s.updatePod(s.running(3, 1))
	s.notify()
	s.wantOutstanding(0)
	s.wantPendingDeletes()

	s.setTargets(map[int32]int32{0: 4, 1: 3})
	s.notify()
	s.wantOutstanding(4)
	s.wantRequested(podReq{1, 0}, podReq{2, 1}, podReq{3, 1}, podReq{4, 0}, podReq{5, 0}, podReq{6, 0}, podReq{7, 1})

	s.updatePod(s.running(4, 0))
	s.updatePod(s.pending(5, 0))
	s.updatePod(s.pending(7, 1))
	s.notify()
	s.wantOutstanding(3)
	if got := len(s.pods.requested); got != 7 {
		t.Fatalf("%d pods requested, want 7", got)
	}
	s.wantPendingDeletes()

	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 1, 1: 1})
	s.notify()
	s.wantOutstanding(0)
	s.wantPendingDeletes([]int64{5, 6}, []int64{7})
	s.wantDeleted(true, 5, 6, 7)

	s.updatePod(s.deleted(5, 0))
	s.updatePod(s.deleted(6, 0))
	s.updatePod(s.deleted(7, 1))
	s.removeDeletedExecutors()
	s.notify()
	s.wantOutstanding(0)
	s.wantDeleted(false, 5, 6, 7)
}

// Suite: "SPARK-33262: pod allocator does not stall with pending pods".
func TestPendingPodsDoNotStallAllocation(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 6})
	s.wantOutstanding(5)
	s.wantRequested(idRange(1, 5)...)

	s.updatePod(s.pending(1, 0))
	for id := int64(2); id <= 5; id++ {
		s.updatePod(s.running(id, 0))
	}
	s.advance(s.alloc.Config().BatchDelay + time.Millisecond)
	s.notify()
	s.wantOutstanding(2)
	s.wantRequested(idRange(1, 6)...)
}

// Suite: "SPARK-36052: pending pod limit with multiple resource profiles".
func TestMaxPendingPodsIsSharedAcrossProfiles(t *testing.T) {
	s := newScenario(t, func(c *allocation.Config) { c.MaxPendingPods = 3 })
	// Three slots over two profiles: splitSlots gives 2 and 1.
	s.setTargets(map[int32]int32{0: 2, 1: 3})
	s.wantOutstanding(3)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1})

	// 2 and 3 turn pending, 1 stays unseen: no slot is freed.
	s.updatePod(s.pending(2, 0))
	s.updatePod(s.pending(3, 1))
	s.notify()
	s.wantOutstanding(3)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1})
	s.wantPendingDeletes()

	// Scaling the default profile down frees one slot, which profile 1 uses.
	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 1, 1: 3})
	s.notify()
	s.wantOutstanding(3)
	s.wantPendingDeletes([]int64{1})
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1}, podReq{4, 1})

	// A pod that starts running frees another.
	s.updatePod(s.running(3, 1))
	s.updatePod(s.pending(4, 1))
	s.notify()
	s.wantOutstanding(3)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1}, podReq{4, 1}, podReq{5, 1})
	s.wantPendingDeletes([]int64{1})
	if p := s.profile(1); !slices.Equal(p.NewlyCreatedExecutorIDs, []int64{5}) || p.BlockedReason != "" {
		t.Errorf("profile 1 status = %+v, want request 5 unseen and nothing lacking", p)
	}
}

// Suite: "pending pod limit per resource profile ID".
func TestMaxPendingPodsPerRpCapsEachProfile(t *testing.T) {
	s := newScenario(t, func(c *allocation.Config) { c.MaxPendingPodsPerRp = 2 })
	s.setTargets(map[int32]int32{0: 2, 1: 3})
	s.wantOutstanding(4)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1}, podReq{4, 1})

	s.updatePod(s.pending(2, 0))
	s.updatePod(s.pending(3, 1))
	s.notify()
	s.wantOutstanding(4)
	if got := len(s.pods.requested); got != 4 {
		t.Fatalf("%d pods requested, want 4", got)
	}
	s.wantPendingDeletes()

	// The default profile shrinking does not lift profile 1's own cap.
	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 1, 1: 3})
	s.notify()
	s.wantOutstanding(3)
	s.wantPendingDeletes([]int64{1})
	if got := len(s.pods.requested); got != 4 {
		t.Fatalf("%d pods requested, want 4", got)
	}

	s.updatePod(s.running(3, 1))
	s.updatePod(s.pending(4, 1))
	s.notify()
	s.wantOutstanding(3)
	s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 1}, podReq{4, 1}, podReq{5, 1})
	s.wantPendingDeletes([]int64{1})
}

// Suite: "SPARK-53907: Support spark.kubernetes.allocation.maximum".
func TestAllocationMaximumOfOneCreatesNothing(t *testing.T) {
	s := newScenario(t, func(c *allocation.Config) { c.AllocationMaximum = 1 })
	err := s.trySetTargets(map[int32]int32{0: 2})
	var maxErr *allocation.MaximumExceededError
	if !errors.As(err, &maxErr) || maxErr.Maximum != 1 {
		t.Fatalf("round error = %v, want a *MaximumExceededError for 1", err)
	}
	if got, want := err.Error(), "Exceed the pod creation limit: 1"; got != want {
		t.Errorf("error = %q, want Spark's %q", got, want)
	}
	s.wantRequested()
}

func TestAllocationMaximumEndsTheRoundAfterTheIDsBelowIt(t *testing.T) {
	s := newScenario(t, func(c *allocation.Config) { c.AllocationMaximum = 3 })
	s.setTargets(map[int32]int32{0: 1})
	s.updatePod(s.running(1, 0))
	s.notify()
	s.wantOutstanding(0)

	// Id 2 is below the maximum and is requested; 3 is not, and the round
	// stops there, leaving profile 1 without its pod.
	err := s.trySetTargets(map[int32]int32{0: 3, 1: 1})
	var maxErr *allocation.MaximumExceededError
	if !errors.As(err, &maxErr) {
		t.Fatalf("round error = %v, want a *MaximumExceededError", err)
	}
	s.wantRequested(podReq{1, 0}, podReq{2, 0})
	// The aborted round does not update the outstanding count, as in Spark.
	s.wantOutstanding(0)
	if got := s.profile(0).BlockedReason; !strings.HasPrefix(got, "allocation maximum reached") {
		t.Errorf("blocked reason = %q, want the allocation maximum", got)
	}
	if got := s.profile(1).BlockedReason; !strings.HasPrefix(got, "allocation maximum reached") {
		t.Errorf("profile 1 blocked reason = %q, want the allocation maximum", got)
	}
}

// Suite: "SPARK-55075: Pod creation failures are tracked by
// ExecutorFailureTracker".
func TestFailedCreationsConsumeIDsAreCountedAndTheRoundGoesOn(t *testing.T) {
	t.Run("every creation fails", func(t *testing.T) {
		s := newScenario(t, nil)
		s.pods.createErr = errQuota
		s.setTargets(map[int32]int32{0: 3})
		s.wantRequested(ids(1, 2, 3)...)
		s.wantOutstanding(0)
		st := s.alloc.Status()
		if st.FailedPodCreations != 3 {
			t.Errorf("FailedPodCreations = %d, want 3", st.FailedPodCreations)
		}
		if got, want := st.Profiles[0].BlockedReason, "creating executor pods failed, retrying next round: "+errQuota.Error(); got != want {
			t.Errorf("blocked reason = %q, want %q", got, want)
		}

		// The next round tries again with new ids.
		s.pods.createErr = nil
		s.notify()
		s.wantRequested(ids(1, 2, 3, 4, 5, 6)...)
		s.wantOutstanding(3)
	})
	t.Run("some creations fail", func(t *testing.T) {
		s := newScenario(t, nil)
		s.pods.failCreate = func(id int64) error {
			if id == 2 || id == 4 {
				return errQuota
			}
			return nil
		}
		// The default profile's failures do not stop profile 1's requests.
		s.setTargets(map[int32]int32{0: 3, 1: 2})
		s.wantRequested(podReq{1, 0}, podReq{2, 0}, podReq{3, 0}, podReq{4, 1}, podReq{5, 1})
		s.wantOutstanding(3)
		if got := s.alloc.Status().FailedPodCreations; got != 2 {
			t.Errorf("FailedPodCreations = %d, want 2", got)
		}
		if got := s.profile(0).NewlyCreatedExecutorIDs; !slices.Equal(got, []int64{1, 3}) {
			t.Errorf("profile 0 newly created = %v, want [1 3]", got)
		}
	})
}

// Suite: "SPARK-36052: test splitSlots" is TestSplitSlots in
// slots_test.go; "SPARK-49447: Prevent small values less than 100 for batch
// delay" is in config_test.go.

func TestSetTotalExpectedExecutorsAsksForARoundOnlyWithNothingOutstanding(t *testing.T) {
	s := newScenario(t, nil)
	if !s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 2}) {
		t.Fatal("first target with nothing outstanding: want runNow")
	}
	s.notify()
	s.wantOutstanding(2)
	if s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 4}) {
		t.Fatal("target change with 2 outstanding: want no immediate round")
	}
	// Requests the scheduler knows of are not outstanding.
	s.register(1, 2)
	s.notify()
	s.wantOutstanding(2) // 3 and 4, requested this round
	s.updatePod(s.running(1, 0))
	s.updatePod(s.running(2, 0))
	s.updatePod(s.running(3, 0))
	s.updatePod(s.running(4, 0))
	s.notify()
	s.wantOutstanding(0)
	if !s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 5}) {
		t.Fatal("target change with nothing outstanding: want runNow")
	}
	// A profile missing from the map keeps its target.
	if !s.alloc.SetTotalExpectedExecutors(map[int32]int32{1: 1}) {
		t.Fatal("want runNow")
	}
	s.notify()
	if got := s.profile(0).Target; got != 5 {
		t.Errorf("profile 0 target = %d, want 5", got)
	}
}

// The suite's helper store can deliver a full re-list in the middle of a
// batch (SPARK-55963): executors seen only before the re-list still count as
// seen.
func TestBatchUnionCountsExecutorsDroppedByAFullRelist(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 2})
	s.wantRequested(ids(1, 2)...)

	s.updatePod(s.pending(1, 0))
	s.replaceSnapshot(s.pending(2, 0))
	s.notify()
	// 1 was seen, so it no longer blocks the profile and will not time out;
	// the last snapshot has only 2, so a replacement for 1 is requested.
	if got := s.profile(0).NewlyCreatedExecutorIDs; !slices.Equal(got, []int64{3}) {
		t.Fatalf("newly created = %v, want [3]", got)
	}
	s.wantRequested(ids(1, 2, 3)...)
	s.advance(s.alloc.Config().PodCreationTimeout() + time.Second)
	s.notify()
	s.wantDeletes([]int64{3})
}

func TestSchedulerKnownRequestsNeverTimeOut(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 2})
	s.register(1)
	s.advance(s.alloc.Config().PodCreationTimeout() + time.Hour)
	s.notify()
	// 2 timed out and is replaced by 3; 1 registered and is kept.
	s.wantDeletes([]int64{2})
	s.wantRequested(ids(1, 2, 3)...)
	if got := s.profile(0).SchedulerKnownNewlyCreatedExecutorIDs; !slices.Equal(got, []int64{1}) {
		t.Errorf("scheduler-known newly created = %v, want [1]", got)
	}
}

func TestRunningAndSchedulerKnownPodsAreNeverDeletedAsExcess(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 4})
	s.updatePod(s.running(1, 0))
	s.updatePod(s.running(2, 0))
	s.updatePod(s.pending(3, 0))
	s.updatePod(s.pending(4, 0))
	s.register(3)
	s.notify()
	s.advance(time.Hour)
	s.setTargets(map[int32]int32{0: 0})
	s.notify()
	s.wantPendingDeletes([]int64{4})
	s.wantDeleted(false, 1, 2, 3)
}

func TestFailedExcessDeletionStillMarksIDsDeletedButKeepsCounts(t *testing.T) {
	s := newScenario(t, nil)
	s.pods.deletePendingErr = errors.New("apiserver unavailable")
	s.setTargets(map[int32]int32{0: 2})
	s.updatePod(s.pending(1, 0))
	s.notify()
	s.advance(2 * suiteIdle)
	s.setTargets(map[int32]int32{0: 0})
	s.notify()
	s.wantPendingDeletes([]int64{1, 2})
	s.wantDeleted(true, 1, 2)
	// The call failed: pod 1 is still counted as pending and request 2 is
	// still waited for.
	s.wantOutstanding(2)
	if got := s.profile(0).NewlyCreatedExecutorIDs; !slices.Equal(got, []int64{2}) {
		t.Errorf("newly created = %v, want [2]", got)
	}

	// The next round leaves deleted executors out of its counts and tries
	// again only with what is left.
	s.pods.deletePendingErr = nil
	s.notify()
	s.wantPendingDeletes([]int64{1, 2}, []int64{2})
	s.wantOutstanding(0)
}

func TestPendingPodWithoutCreationTimeCountsAsIdle(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 2})
	noTime := s.pending(1, 0)
	noTime.CreateTime = nil
	s.updatePod(noTime)
	s.updatePod(s.pending(2, 0))
	s.setTargets(map[int32]int32{0: 0})
	s.notify()
	s.wantPendingDeletes([]int64{1})
}

func TestExcessPendingPodsGoOldestFirst(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 4})
	s.updatePod(s.pending(3, 0))
	s.advance(time.Second)
	s.updatePod(s.pending(1, 0))
	s.updatePod(s.pending(4, 0))
	s.advance(time.Second)
	s.updatePod(s.pending(2, 0))
	s.notify()
	s.advance(time.Hour)
	s.setTargets(map[int32]int32{0: 1})
	s.notify()
	s.wantPendingDeletes([]int64{1, 3, 4})
}

// With a single target, every executor belongs to it whatever its label, as
// in Spark's shortcut; the target need not be the default profile's.
func TestSingleTargetCountsEveryExecutor(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{3: 2})
	s.wantRequested(podReq{1, 3}, podReq{2, 3})
	s.updatePod(s.running(1, 0))
	s.updatePod(s.running(2, 7))
	s.notify()
	s.wantRequested(podReq{1, 3}, podReq{2, 3})
	s.wantOutstanding(0)
}

func TestExecutorIDsAreNeverReused(t *testing.T) {
	t.Run("restored high-water mark", func(t *testing.T) {
		pods := &fakePods{}
		alloc, err := allocation.NewAllocator(allocation.AllocatorConfig{
			Config:         allocation.DefaultConfig(),
			Pods:           pods,
			Logger:         slog.New(slog.DiscardHandler),
			LastExecutorID: 41,
		})
		if err != nil {
			t.Fatal(err)
		}
		alloc.SetTotalExpectedExecutors(map[int32]int32{0: 2})
		if err := alloc.OnNewSnapshots(t.Context(), nil, nil); err != nil {
			t.Fatal(err)
		}
		if want := []podReq{{42, 0}, {43, 0}}; !slices.Equal(pods.requested, want) {
			t.Fatalf("requested %v, want %v", pods.requested, want)
		}
	})
	t.Run("executors already in the cluster", func(t *testing.T) {
		s := newScenario(t, nil)
		s.updatePod(s.running(17, 0))
		s.setTargets(map[int32]int32{0: 2})
		s.wantRequested(ids(18)...)
		if got := s.alloc.Status().LastExecutorID; got != 18 {
			t.Errorf("LastExecutorID = %d, want 18", got)
		}
	})
}

func TestStatusSaysWhyAProfileGetsNoPods(t *testing.T) {
	t.Run("waiting for requests", func(t *testing.T) {
		s := newScenario(t, nil)
		s.setTargets(map[int32]int32{0: 7})
		s.advance(3 * time.Second)
		p := s.profile(0)
		if want := "waiting for executor 1 and 4 more to appear in a snapshot (requested 3s ago)"; p.BlockedReason != want {
			t.Errorf("blocked reason = %q, want %q", p.BlockedReason, want)
		}
		pa := p.Proto()
		if pa.GetTarget() != 7 || pa.GetOutstanding() != 5 || len(pa.GetNewlyCreatedExecutorIds()) != 5 || pa.GetBlockedReason() != p.BlockedReason {
			t.Errorf("Proto() = %v", pa)
		}
	})
	t.Run("maxPendingPods", func(t *testing.T) {
		s := newScenario(t, func(c *allocation.Config) { c.MaxPendingPods = 2 })
		s.setTargets(map[int32]int32{0: 5})
		s.updatePod(s.pending(1, 0))
		s.updatePod(s.pending(2, 0))
		s.notify()
		if got, want := s.profile(0).BlockedReason, "maxPendingPods (2) reached"; got != want {
			t.Errorf("blocked reason = %q, want %q", got, want)
		}
		if p := s.profile(0); p.Pending != 2 || p.Running != 0 || p.Outstanding != 2 {
			t.Errorf("status = %+v, want 2 pending and 2 outstanding", p)
		}
	})
	t.Run("maxPendingPodsPerRp", func(t *testing.T) {
		s := newScenario(t, func(c *allocation.Config) { c.MaxPendingPodsPerRp = 2 })
		s.setTargets(map[int32]int32{0: 5})
		s.updatePod(s.pending(1, 0))
		s.updatePod(s.pending(2, 0))
		s.notify()
		if got, want := s.profile(0).BlockedReason, "maxPendingPodsPerRp (2) reached"; got != want {
			t.Errorf("blocked reason = %q, want %q", got, want)
		}
	})
	t.Run("nothing lacking", func(t *testing.T) {
		s := newScenario(t, nil)
		s.setTargets(map[int32]int32{0: 1})
		s.updatePod(s.running(1, 0))
		s.notify()
		if got := s.profile(0).BlockedReason; got != "" {
			t.Errorf("blocked reason = %q, want none", got)
		}
		if st := s.alloc.Status(); st.SnapshotRevision != 1 || st.LastExecutorID != 1 {
			t.Errorf("status = %+v, want revision 1 and last id 1", st)
		}
	})
}

func TestDeletedExecutorsAreReportedBeforeTheDeleteCall(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 1})
	s.updatePod(s.pending(1, 0))
	s.notify()
	s.advance(2 * suiteIdle)
	var duringCall bool
	s.pods.onDeletePending = func([]int64) { duringCall = s.alloc.IsDeleted(1) }
	s.setTargets(map[int32]int32{0: 0})
	s.notify()
	s.wantPendingDeletes([]int64{1})
	if !duringCall {
		t.Error("IsDeleted(1) was false while its pod was being deleted")
	}
}

// Handlers must not wait for a round's pod writes.
func TestStatusIsDeletedAndTargetsDoNotWaitForARound(t *testing.T) {
	s := newScenario(t, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	s.pods.onCreate = func([]int64) {
		close(entered)
		<-release
	}
	s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 2})
	done := make(chan error)
	go func() { done <- s.alloc.OnNewSnapshots(t.Context(), nil, nil) }()
	<-entered

	if got := s.alloc.Status().Profiles[0].Target; got != 2 {
		t.Errorf("target during the round = %d, want 2", got)
	}
	if s.alloc.IsDeleted(1) {
		t.Error("IsDeleted(1) during the round = true")
	}
	if !s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 3}) {
		t.Error("SetTotalExpectedExecutors during the first round: want runNow, nothing is outstanding yet")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.wantOutstanding(2)
}

func TestCancelledContextRequestsNothing(t *testing.T) {
	s := newScenario(t, nil)
	s.alloc.SetTotalExpectedExecutors(map[int32]int32{0: 2})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.alloc.OnNewSnapshots(ctx, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("round with a cancelled context: %v, want context.Canceled", err)
	}
	s.wantRequested()
	if got := s.alloc.Status().LastExecutorID; got != 0 {
		t.Errorf("LastExecutorID = %d, want 0", got)
	}
}

func TestSchedulerKnownRequestIsForgottenOnceItsPodAppears(t *testing.T) {
	s := newScenario(t, nil)
	s.setTargets(map[int32]int32{0: 1})
	s.register(1)
	s.notify()
	if got := s.profile(0).SchedulerKnownNewlyCreatedExecutorIDs; !slices.Equal(got, []int64{1}) {
		t.Fatalf("scheduler-known newly created = %v, want [1]", got)
	}
	s.updatePod(s.running(1, 0))
	s.notify()
	if got := s.profile(0).SchedulerKnownNewlyCreatedExecutorIDs; len(got) != 0 {
		t.Fatalf("scheduler-known newly created = %v, want none", got)
	}
	// Executor 1 counts once, so one more is wanted.
	s.setTargets(map[int32]int32{0: 2})
	s.wantRequested(ids(1, 2)...)
}
