package reconcile

import (
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Ported from Spark: "When an executor reaches error states immediately,
// remove from the scheduler backend."
func TestFailedExecutorIsRemovedWithSparksMessageAndItsPodDeleted(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	got := m.OnNewSnapshots(store.batch(), nil)

	wantExit := &sparkpodsv1.ExecutorExit{
		ExitCode:        1,
		ExitCausedByApp: true,
		Message: "\nThe executor with id 1 exited with exit code 1(generic, look at logs to clarify).\n" +
			"The API gave the following brief reason: Executor failed because of a thrown error.\n" +
			"The API gave the following message: Executor failed.\n\n" +
			"The API gave the following container statuses:\n\n" +
			"\n\t container name: spark-executor\n\t container image: k8s-spark\n\t container state: terminated" +
			"\n\t container started at: N/A\n\t container finished at: N/A\n\t exit code: 1\n\t termination reason: N/A" +
			"\n\n" +
			"\n\t container name: spark-executor-sidecar\n\t container image: k8s-spark-sidecar\n\t container state: terminated" +
			"\n\t container started at: N/A\n\t container finished at: N/A\n\t exit code: 1\n\t termination reason: N/A" +
			"\n      ",
	}
	want := Actions{
		Events: []*sparkpodsv1.ExecutorEvent{{
			Namespace:  testNamespace,
			AppId:      testAppID,
			Type:       sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
			ExecutorId: 1,
			State:      sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
			Exit:       wantExit,
			PodName:    "spark-executor-1",
		}},
		Delete: []PodRef{{ExecutorID: 1, Name: "spark-executor-1", UID: "uid-1"}},
	}
	checkActions(t, "round 1", got, want)
}

// Ported from Spark: "SPARK-49804: Use the exit code of executor container
// always".
func TestExitCodeComesFromTheExecutorContainerEvenWithASidecarListedFirst(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)
	pod.ContainerStatuses = []*sparkpodsv1.ContainerStatus{
		{Name: "spark-executor-sidecar", State: sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED, ExitCode: 2},
		{Name: testContainer, State: sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED, ExitCode: 1},
	}

	store.updatePod(pod)
	got := m.OnNewSnapshots(store.batch(), nil)

	if len(got.Events) != 1 || got.Events[0].GetExit().GetExitCode() != 1 {
		t.Fatalf("got events %v, want one with exit code 1", got.Events)
	}
}

func TestSucceededExecutorIsRemovedAsCausedByTheApplicationAndNotCountedAsAFailure(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := succeededExecutor(2)

	store.updatePod(pod)
	got := m.OnNewSnapshots(store.batch(), nil)

	checkActions(t, "round 1", got, Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})
	if exit := got.Events[0].GetExit(); !exit.GetExitCausedByApp() || exit.GetExitCode() != 0 {
		t.Fatalf("exit = %v, want code 0 caused by the application", exit)
	}
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("NumFailedExecutors() = %d, want 0", n)
	}
}

func TestDeletedExecutorIsRemovedButItsPodIsNotDeletedAgain(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := deletedExecutor(3)

	store.updatePod(pod)
	got := m.OnNewSnapshots(store.batch(), nil)

	checkActions(t, "round 1", got, Actions{Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)}})
	want := &sparkpodsv1.ExecutorExit{ExitCode: -1, Message: "The executor with id 3 was deleted by a user or the framework."}
	if !proto.Equal(got.Events[0].GetExit(), want) {
		t.Fatalf("exit = %v, want %v", got.Events[0].GetExit(), want)
	}
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("NumFailedExecutors() = %d, want 0", n)
	}
}

// Ported from Spark: "Don't remove executors twice from Spark but remove from
// K8s repeatedly." While the pod still shows as failed without a deletion
// timestamp, every round asks for its deletion again.
func TestExecutorIsRemovedOnceButItsPodIsDeletedEveryRound(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})

	clk.Step(time.Second)
	store.updatePod(pod)
	checkActions(t, "round 2", m.OnNewSnapshots(store.batch(), nil), Actions{
		Delete: []PodRef{podOf(pod)},
	})
}

// Ported from Spark: "Don't remove executors twice from Spark and K8s." Once
// the deletion shows in the snapshot, nothing more is asked.
func TestExecutorIsNotRemovedNorDeletedAgainOnceItsDeletionShows(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})

	clk.Step(time.Second)
	going := failedExecutor(1)
	going.State = sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED
	going.DeletionTime = timestamppb.New(clk.Now())
	store.updatePod(going)
	checkActions(t, "round 2", m.OnNewSnapshots(store.batch(), nil), Actions{})
}

// SPARK-54197: a finished pod whose snapshot already carries a deletion
// timestamp is not deleted again.
func TestFinishedPodWithADeletionTimestampIsNotDeletedAgain(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	// A pod still Running while its container exited, and being deleted.
	pod := succeededExecutor(4)
	pod.Phase = "Running"
	pod.DeletionTime = timestamppb.New(clk.Now())

	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
	})
}

// SPARK-54198: one round deletes a pod once, however many of its snapshots
// show it failed.
func TestSameExecutorFailedInTwoSnapshotsOfARoundIsDeletedOnce(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	store.updatePod(runningExecutor(2))
	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})
	if n := m.NumFailedExecutors(); n != 1 {
		t.Fatalf("NumFailedExecutors() = %d, want 1", n)
	}
}

func TestExecutorIsRemovedAgainOnlyOnceTheRemovedCacheExpires(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.DeletedExecutorsCacheTimeout = 60 * time.Second })
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	checkActions(t, "at 0s", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})

	clk.Step(60*time.Second - time.Millisecond)
	store.updatePod(pod)
	checkActions(t, "just before the timeout", m.OnNewSnapshots(store.batch(), nil), Actions{
		Delete: []PodRef{podOf(pod)},
	})

	// Like Guava's expireAfterWrite, the entry is gone once its age reaches
	// the timeout.
	clk.Step(time.Millisecond)
	store.updatePod(pod)
	checkActions(t, "at the timeout", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		Delete: []PodRef{podOf(pod)},
	})

	// The failure itself was counted once.
	if n := m.NumFailedExecutors(); n != 1 {
		t.Fatalf("NumFailedExecutors() = %d, want 1", n)
	}
}

func TestRemovedCacheDefaultsToSpark180Seconds(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	pod := deletedExecutor(1)

	store.updatePod(pod)
	if got := m.OnNewSnapshots(store.batch(), nil); len(got.Events) != 1 {
		t.Fatalf("round 1: got %d events, want 1", len(got.Events))
	}
	clk.Step(179 * time.Second)
	store.updatePod(pod)
	if got := m.OnNewSnapshots(store.batch(), nil); len(got.Events) != 0 {
		t.Fatalf("after 179s: got %d events, want 0", len(got.Events))
	}
	clk.Step(time.Second)
	store.updatePod(pod)
	if got := m.OnNewSnapshots(store.batch(), nil); len(got.Events) != 1 {
		t.Fatalf("after 180s: got %d events, want 1", len(got.Events))
	}
}

// Ported from Spark: "Keep executor pods in k8s if configured." The pod is
// labelled inactive once, never deleted, and forgotten once it leaves the
// snapshots.
func TestKeptPodIsLabelledInactiveOnceAndNeverDeleted(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.DeleteOnTermination = false })
	store := newSnapshotStore(clk)
	pod := failedExecutor(1)

	store.updatePod(pod)
	store.updatePod(runningExecutor(2))
	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events:        []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		LabelInactive: []PodRef{podOf(pod)},
	})

	// The label has not reached the snapshots yet.
	for _, round := range []string{"round 2", "round 3"} {
		clk.Step(time.Second)
		store.updatePod(pod)
		store.updatePod(pod)
		checkActions(t, round, m.OnNewSnapshots(store.batch(), nil), Actions{})
	}

	// It has: the full re-list leaves the labelled pod out.
	clk.Step(time.Second)
	store.replaceSnapshot(runningExecutor(2))
	checkActions(t, "round 4", m.OnNewSnapshots(store.batch(), nil), Actions{})

	// Someone removed the label: the pod is back, so it is labelled again,
	// but the executor was already reported removed.
	clk.Step(time.Second)
	store.updatePod(pod)
	checkActions(t, "round 5", m.OnNewSnapshots(store.batch(), nil), Actions{
		LabelInactive: []PodRef{podOf(pod)},
	})
}

// The pod a Manager labelled inactive is never reported again, even when the
// snapshot service shows it deleted after the removed cache expired: in
// Spark the inactive label wins over every state.
func TestLabelledPodIsNotReportedAgainWhenItShowsDeleted(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.DeleteOnTermination = false })
	store := newSnapshotStore(clk)
	pod := succeededExecutor(1)

	store.updatePod(pod)
	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events:        []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
		LabelInactive: []PodRef{podOf(pod)},
	})

	clk.Step(DefaultDeletedExecutorsCacheTimeout)
	gone := succeededExecutor(1)
	gone.State = sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED
	store.updatePod(gone)
	checkActions(t, "round 2", m.OnNewSnapshots(store.batch(), nil), Actions{})
}

func TestPendingRunningUnknownAndTerminatingExecutorsAreLeftAlone(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	store.updatePod(pendingExecutor(1))
	store.updatePod(runningExecutor(2))
	store.updatePod(executor(3, sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNKNOWN, "Unknown"))
	store.updatePod(executor(4, sparkpodsv1.ExecutorState_EXECUTOR_STATE_TERMINATING, "Terminating"))
	store.updatePod(executor(5, sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNSPECIFIED, ""))

	checkActions(t, "round 1", m.OnNewSnapshots(store.batch(), nil), Actions{})
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("NumFailedExecutors() = %d, want 0", n)
	}
}

// Ported from Spark: "When the scheduler backend lists executor ids that
// aren't present in the cluster, remove those executors from Spark."
func TestMissingExecutorIsReportedOnlyBeyondTheDetectDelta(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	registered := registeredAt(map[int64]int64{1: 7})

	clk.Step(DefaultMissingPodDetectDelta + 7*time.Millisecond)
	store.replaceSnapshot()
	checkActions(t, "at the delta", m.OnNewSnapshots(store.batch(), registered), Actions{})

	// One more millisecond and the accepted delta is over.
	clk.Step(time.Millisecond)
	store.replaceSnapshot()
	got := m.OnNewSnapshots(store.batch(), registered)
	want := &sparkpodsv1.ExecutorEvent{
		Namespace:  testNamespace,
		AppId:      testAppID,
		Type:       sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING,
		ExecutorId: 1,
		Exit: &sparkpodsv1.ExecutorExit{
			ExitCode:        -1,
			ExitCausedByApp: false,
			Message: "The executor with ID 1 (registered at 7 ms) was not found in the cluster at " +
				"the polling time (30008 ms) which is after the accepted detect delta time (30000 ms) " +
				"configured by `spark.kubernetes.executor.missingPodDetectDelta`. The executor may have " +
				"been deleted but the driver missed the deletion event. Marking this executor as failed.",
		},
	}
	checkActions(t, "past the delta", got, Actions{Events: []*sparkpodsv1.ExecutorEvent{want}})
}

func TestMissingExecutorIsReportedOnlyOnANewFullSnapshotAndEveryTime(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.MissingPodDetectDelta = 10 * time.Second })
	store := newSnapshotStore(clk)
	registered := registeredAt(map[int64]int64{1: 0, 2: 0})

	// Incremental snapshots before the first full list never detect.
	clk.Step(time.Minute)
	store.updatePod(runningExecutor(2))
	checkActions(t, "before any full list", m.OnNewSnapshots(store.batch(), registered), Actions{})

	store.replaceSnapshot(runningExecutor(2))
	checkActions(t, "first full list", m.OnNewSnapshots(store.batch(), registered), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{missingEvent(1, 0, 60_000, 10_000)},
	})

	// Later snapshots carry the same full snapshot time: no detection.
	clk.Step(time.Second)
	store.updatePod(runningExecutor(2))
	checkActions(t, "same full list", m.OnNewSnapshots(store.batch(), registered), Actions{})
	clk.Step(time.Second)
	checkActions(t, "empty batch", m.OnNewSnapshots(store.batch(), registered), Actions{})

	// A missing executor is not remembered: the next full list reports it again.
	clk.Step(28 * time.Second)
	store.replaceSnapshot(runningExecutor(2))
	checkActions(t, "next full list", m.OnNewSnapshots(store.batch(), registered), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{missingEvent(1, 0, 90_000, 10_000)},
	})
}

func TestMissingPodDetectionSkipsExecutorsPresentRemovedOrTooRecent(t *testing.T) {
	m, clk := newTestManager(t, nil)
	failed3 := failedExecutor(3)

	// Executor 3 is removed in an earlier round and so sits in the cache.
	clk.Step(time.Minute)
	round1 := []*sparkpodsv1.ExecutorSnapshot{{Executors: []*sparkpodsv1.Executor{failed3}}}
	checkActions(t, "round 1", m.OnNewSnapshots(round1, nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(failed3)},
		Delete: []PodRef{podOf(failed3)},
	})

	// Registered: 1 has a pod, 2 is deleted in this round before the re-list
	// drops it, 3 was removed earlier, 4 is truly missing, 5 registered too
	// recently.
	clk.Step(time.Minute)
	deleted2 := deletedExecutor(2)
	full := timestamppb.New(clk.Now())
	round2 := []*sparkpodsv1.ExecutorSnapshot{
		{Executors: []*sparkpodsv1.Executor{runningExecutor(1), deleted2}},
		{Executors: []*sparkpodsv1.Executor{runningExecutor(1)}, FullSnapshotTime: full},
	}
	registered := registeredAt(map[int64]int64{1: 0, 2: 0, 3: 0, 4: 1_000, 5: 100_000})
	checkActions(t, "round 2", m.OnNewSnapshots(round2, registered), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{
			removedEvent(deleted2),
			missingEvent(4, 1_000, 120_000, 30_000),
		},
	})
}

func TestMissingExecutorsAreReportedInExecutorIDOrder(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	clk.Step(time.Hour)
	store.replaceSnapshot()
	registered := registeredAt(map[int64]int64{9: 0, 2: 0, 40: 0, 1: 0})

	got := m.OnNewSnapshots(store.batch(), registered)

	var ids []int64
	for _, ev := range got.Events {
		ids = append(ids, ev.GetExecutorId())
	}
	if want := []int64{1, 2, 9, 40}; !slices.Equal(ids, want) {
		t.Fatalf("missing executors reported in order %v, want %v", ids, want)
	}
}

func TestFailedExecutorCountsAsOneFailureHoweverOftenItIsSeen(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)

	store.updatePod(failedExecutor(1))
	store.updatePod(failedExecutor(1))
	m.OnNewSnapshots(store.batch(), nil)
	clk.Step(time.Hour) // well past the removed cache: removed again, not failed again
	store.updatePod(failedExecutor(1))
	store.updatePod(succeededExecutor(2))
	store.updatePod(deletedExecutor(3))
	m.OnNewSnapshots(store.batch(), nil)

	if n := m.NumFailedExecutors(); n != 1 {
		t.Fatalf("NumFailedExecutors() = %d, want 1", n)
	}
}

func TestFailureLimitIsReportedOnceWhenExceededWithoutValidityInterval(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) {
		c.MaxNumFailures = 2
		// Keep the first removals cached for the whole test.
		c.DeletedExecutorsCacheTimeout = 48 * time.Hour
	})
	store := newSnapshotStore(clk)

	store.updatePod(failedExecutor(1))
	store.updatePod(failedExecutor(2))
	if got := m.OnNewSnapshots(store.batch(), nil); len(got.Events) != 2 {
		t.Fatalf("round 1: got %d events, want the 2 removals and no limit", len(got.Events))
	}

	// Without a validity interval failures never expire.
	clk.Step(24 * time.Hour)
	checkActions(t, "a day later", m.OnNewSnapshots(store.batch(), nil), Actions{})
	if n := m.NumFailedExecutors(); n != 2 {
		t.Fatalf("NumFailedExecutors() = %d, want 2", n)
	}

	// The limit is strict: the third failure exceeds 2.
	pod3 := failedExecutor(3)
	store.updatePod(pod3)
	checkActions(t, "third failure", m.OnNewSnapshots(store.batch(), nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod3), limitEvent(3, 2)},
		Delete: []PodRef{podOf(failedExecutor(1)), podOf(failedExecutor(2)), podOf(pod3)},
	})

	// Spark's driver has exited by now; the limit is not reported again.
	pod4 := failedExecutor(4)
	store.updatePod(pod4)
	got := m.OnNewSnapshots(store.batch(), nil)
	for _, ev := range got.Events {
		if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED {
			t.Fatalf("limit reported again: %v", ev)
		}
	}
}

// Ported from Spark: "SPARK-41210: Window based executor failure tracking
// mechanism".
func TestFailureLimitCountsOnlyFailuresWithinTheValidityInterval(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) {
		c.MaxNumFailures = 2
		c.FailuresValidityInterval = 2 * time.Second
	})
	store := newSnapshotStore(clk)
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("at start: NumFailedExecutors() = %d, want 0", n)
	}

	clk.Step(time.Second)
	store.updatePod(failedExecutor(1))
	store.updatePod(failedExecutor(2))
	checkLimit(t, "two failures at 1s", m.OnNewSnapshots(store.batch(), nil), false)
	if n := m.NumFailedExecutors(); n != 2 {
		t.Fatalf("at 1s: NumFailedExecutors() = %d, want 2", n)
	}

	clk.Step(time.Second)
	checkLimit(t, "at 2s", m.OnNewSnapshots(store.batch(), nil), false)
	if n := m.NumFailedExecutors(); n != 2 {
		t.Fatalf("at 2s: NumFailedExecutors() = %d, want 2", n)
	}

	clk.Step(2 * time.Second)
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("at 4s: NumFailedExecutors() = %d, want 0", n)
	}

	clk.Step(time.Second)
	store.updatePod(failedExecutor(3))
	store.updatePod(failedExecutor(4))
	store.updatePod(failedExecutor(5))
	got := m.OnNewSnapshots(store.batch(), nil)
	checkLimit(t, "three failures at 5s", got, true)
	if last := got.Events[len(got.Events)-1]; !proto.Equal(last, limitEvent(3, 2)) {
		t.Fatalf("limit event = %v, want %v", last, limitEvent(3, 2))
	}
}

// A failure exactly as old as the validity interval still counts; Spark
// drops only those older.
func TestFailureExactlyAtTheValidityEdgeStillCounts(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.FailuresValidityInterval = 2 * time.Second })
	m.RegisterExecutorFailure()
	clk.Step(2 * time.Second)
	if n := m.NumFailedExecutors(); n != 1 {
		t.Fatalf("at the edge: NumFailedExecutors() = %d, want 1", n)
	}
	clk.Step(time.Millisecond)
	if n := m.NumFailedExecutors(); n != 0 {
		t.Fatalf("past the edge: NumFailedExecutors() = %d, want 0", n)
	}
}

// Spark 4.2: the allocator's failed pod creations count toward the same
// limit, and an empty batch is enough for the limit to be reported.
func TestRegisteredFailuresReachTheLimitOnAnEmptyRound(t *testing.T) {
	m, _ := newTestManager(t, nil) // the default limit: max(3, 2*0) = 3
	for range 4 {
		m.RegisterExecutorFailure()
	}
	checkActions(t, "empty batch", m.OnNewSnapshots(nil, nil), Actions{
		Events: []*sparkpodsv1.ExecutorEvent{limitEvent(4, 3)},
	})
}

func checkLimit(t *testing.T, round string, got Actions, want bool) {
	t.Helper()
	reported := false
	for _, ev := range got.Events {
		if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED {
			reported = true
		}
	}
	if reported != want {
		t.Fatalf("%s: failure limit reported = %t, want %t", round, reported, want)
	}
}

func TestEmptyBatchChangesNothing(t *testing.T) {
	m, clk := newTestManager(t, nil)
	clk.Step(time.Hour)
	got := m.OnNewSnapshots(nil, registeredAt(map[int64]int64{1: 0}))
	if !got.Empty() {
		t.Fatalf("empty batch: got %s", formatActions(got))
	}
}

func TestRetryAsksAgainForWhatTheServiceCouldNotDo(t *testing.T) {
	t.Run("events not recorded", func(t *testing.T) {
		m, clk := newTestManager(t, func(c *Config) { c.MaxNumFailures = 0 })
		store := newSnapshotStore(clk)
		pod := failedExecutor(1)
		store.updatePod(pod)
		want := Actions{
			Events: []*sparkpodsv1.ExecutorEvent{removedEvent(pod), limitEvent(1, 0)},
			Delete: []PodRef{podOf(pod)},
		}
		first := m.OnNewSnapshots(store.batch(), nil)
		checkActions(t, "round 1", first, want)

		m.Retry(first)
		clk.Step(time.Second)
		store.updatePod(pod)
		checkActions(t, "round 2", m.OnNewSnapshots(store.batch(), nil), want)
	})
	t.Run("label failed", func(t *testing.T) {
		m, clk := newTestManager(t, func(c *Config) { c.DeleteOnTermination = false })
		store := newSnapshotStore(clk)
		pod := failedExecutor(1)
		store.updatePod(pod)
		first := m.OnNewSnapshots(store.batch(), nil)
		checkActions(t, "round 1", first, Actions{
			Events:        []*sparkpodsv1.ExecutorEvent{removedEvent(pod)},
			LabelInactive: []PodRef{podOf(pod)},
		})

		m.Retry(Actions{LabelInactive: first.LabelInactive})
		clk.Step(time.Second)
		store.updatePod(pod)
		checkActions(t, "round 2", m.OnNewSnapshots(store.batch(), nil), Actions{
			LabelInactive: []PodRef{podOf(pod)},
		})
	})
}

// The service may count an allocator failure while a round runs.
func TestRegisterExecutorFailureIsSafeDuringARound(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.MaxNumFailures = 1000 })
	store := newSnapshotStore(clk)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			m.RegisterExecutorFailure()
		}
	})
	for id := range int64(100) {
		store.updatePod(failedExecutor(id))
		m.OnNewSnapshots(store.batch(), nil)
	}
	wg.Wait()
	if n := m.NumFailedExecutors(); n != 200 {
		t.Fatalf("NumFailedExecutors() = %d, want 200", n)
	}
}
