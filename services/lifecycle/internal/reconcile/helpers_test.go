package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	testingclock "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/exitreason"
)

const (
	testNamespace = "spark-jobs"
	testAppID     = "spark-app-id"
	// testContainer is the executor container of Spark's suite, which sets
	// spark.kubernetes.executor.podTemplateContainerName to it.
	testContainer = "spark-executor"
)

// newTestManager returns a Manager configured like Spark's suite (defaults,
// deleteOnTermination=true, the template container name) after edit, and the
// fake clock it reads, starting at the epoch like Spark's ManualClock.
func newTestManager(t *testing.T, edit func(*Config)) (*Manager, *testingclock.FakeClock) {
	t.Helper()
	clk := testingclock.NewFakeClock(time.UnixMilli(0))
	conf := Config{
		Namespace:           testNamespace,
		AppID:               testAppID,
		DeleteOnTermination: true,
		MaxNumFailures:      DefaultMaxNumFailures(0),
		SparkContainerName:  testContainer,
		Clock:               clk,
	}
	if edit != nil {
		edit(&conf)
	}
	m, err := NewManager(conf)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m, clk
}

// snapshotStore plays the part of Spark's DeterministicExecutorPodsSnapshotsStore:
// every update adds a snapshot of all executors to the next batch, and a
// full replacement also stamps the snapshot with the clock's time.
type snapshotStore struct {
	clock     *testingclock.FakeClock
	executors map[int64]*sparkpodsv1.Executor
	fullTime  *timestamppb.Timestamp
	pending   []*sparkpodsv1.ExecutorSnapshot
}

func newSnapshotStore(clk *testingclock.FakeClock) *snapshotStore {
	return &snapshotStore{clock: clk, executors: make(map[int64]*sparkpodsv1.Executor)}
}

// updatePod is an incremental update: it adds or replaces one executor.
func (s *snapshotStore) updatePod(e *sparkpodsv1.Executor) {
	s.executors[e.GetExecutorId()] = e
	s.push()
}

// replaceSnapshot is a full re-list: exactly these executors, at the clock's time.
func (s *snapshotStore) replaceSnapshot(es ...*sparkpodsv1.Executor) {
	s.executors = make(map[int64]*sparkpodsv1.Executor)
	for _, e := range es {
		s.executors[e.GetExecutorId()] = e
	}
	s.fullTime = timestamppb.New(s.clock.Now())
	s.push()
}

func (s *snapshotStore) push() {
	snap := &sparkpodsv1.ExecutorSnapshot{
		Namespace:        testNamespace,
		AppId:            testAppID,
		Revision:         int64(len(s.pending) + 1),
		FullSnapshotTime: s.fullTime,
	}
	for _, id := range slices.Sorted(maps.Keys(s.executors)) {
		snap.Executors = append(snap.Executors, s.executors[id])
	}
	s.pending = append(s.pending, snap)
}

// batch hands over the snapshots taken since the last batch, like Spark's
// notifySubscribers.
func (s *snapshotStore) batch() []*sparkpodsv1.ExecutorSnapshot {
	b := s.pending
	s.pending = nil
	return b
}

func executor(id int64, state sparkpodsv1.ExecutorState, phase string) *sparkpodsv1.Executor {
	return &sparkpodsv1.Executor{
		ExecutorId: id,
		State:      state,
		PodName:    fmt.Sprintf("spark-executor-%d", id),
		PodUid:     fmt.Sprintf("uid-%d", id),
		Phase:      phase,
	}
}

// failedExecutor is Spark's failedExecutorWithoutDeletion: both the executor
// container and a sidecar exited with code 1.
func failedExecutor(id int64) *sparkpodsv1.Executor {
	e := executor(id, sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, "Failed")
	e.StatusReason = "Executor failed because of a thrown error."
	e.StatusMessage = "Executor failed."
	e.Termination = &sparkpodsv1.ContainerTermination{ContainerName: testContainer, ExitCode: 1, Message: "Failed"}
	e.ContainerStatuses = []*sparkpodsv1.ContainerStatus{
		{Name: testContainer, Image: "k8s-spark", State: sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED, ExitCode: 1},
		{Name: "spark-executor-sidecar", Image: "k8s-spark-sidecar", State: sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED, ExitCode: 1},
	}
	return e
}

func succeededExecutor(id int64) *sparkpodsv1.Executor {
	e := executor(id, sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED, "Succeeded")
	e.Termination = &sparkpodsv1.ContainerTermination{ContainerName: testContainer, ExitCode: 0, Reason: "Completed"}
	e.ContainerStatuses = []*sparkpodsv1.ContainerStatus{
		{Name: testContainer, Image: "k8s-spark", State: sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED, Reason: "Completed"},
	}
	return e
}

func deletedExecutor(id int64) *sparkpodsv1.Executor {
	e := executor(id, sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED, "Pending")
	e.DeletionTime = timestamppb.New(time.UnixMilli(523012521))
	return e
}

func runningExecutor(id int64) *sparkpodsv1.Executor {
	return executor(id, sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING, "Running")
}

func pendingExecutor(id int64) *sparkpodsv1.Executor {
	return executor(id, sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING, "Pending")
}

func removedEvent(e *sparkpodsv1.Executor) *sparkpodsv1.ExecutorEvent {
	var exit *sparkpodsv1.ExecutorExit
	if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED {
		exit = exitreason.ForDeletedPod(e.GetExecutorId(), e, testContainer)
	} else {
		exit = exitreason.ForFinishedPod(e.GetExecutorId(), e, testContainer)
	}
	return &sparkpodsv1.ExecutorEvent{
		Namespace:         testNamespace,
		AppId:             testAppID,
		Type:              sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
		ExecutorId:        e.GetExecutorId(),
		State:             e.GetState(),
		Exit:              exit,
		PodName:           e.GetPodName(),
		ResourceProfileId: e.GetResourceProfileId(),
	}
}

func missingEvent(id, registeredMs, fullMs, deltaMs int64) *sparkpodsv1.ExecutorEvent {
	return &sparkpodsv1.ExecutorEvent{
		Namespace:  testNamespace,
		AppId:      testAppID,
		Type:       sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING,
		ExecutorId: id,
		Exit:       exitreason.ForMissingPod(id, registeredMs, fullMs, deltaMs),
	}
}

func limitEvent(failed, maxFailures int32) *sparkpodsv1.ExecutorEvent {
	return &sparkpodsv1.ExecutorEvent{
		Namespace:       testNamespace,
		AppId:           testAppID,
		Type:            sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED,
		FailedExecutors: failed,
		MaxFailures:     maxFailures,
		Exit: &sparkpodsv1.ExecutorExit{
			ExitCode: ExceedMaxExecutorFailuresExitCode,
			Message:  exitreason.FailureLimitMessage(int(maxFailures)),
		},
	}
}

func podOf(e *sparkpodsv1.Executor) PodRef {
	return PodRef{ExecutorID: e.GetExecutorId(), Name: e.GetPodName(), UID: e.GetPodUid()}
}

// checkActions stops the test unless got is want, events compared as protos.
func checkActions(t *testing.T, round string, got, want Actions) {
	t.Helper()
	same := len(got.Events) == len(want.Events) &&
		slices.Equal(got.Delete, want.Delete) &&
		slices.Equal(got.LabelInactive, want.LabelInactive)
	for i := 0; same && i < len(got.Events); i++ {
		same = proto.Equal(got.Events[i], want.Events[i])
	}
	if !same {
		t.Fatalf("%s: got actions\n%s\nwant\n%s", round, formatActions(got), formatActions(want))
	}
}

func formatActions(a Actions) string {
	s := ""
	for _, ev := range a.Events {
		s += fmt.Sprintf("  event %v\n", ev)
	}
	return s + fmt.Sprintf("  delete %v\n  label inactive %v", a.Delete, a.LabelInactive)
}

// registeredAt is the scheduler's view: executor id → registration time.
func registeredAt(ms map[int64]int64) map[int64]time.Time {
	r := make(map[int64]time.Time, len(ms))
	for id, at := range ms {
		r[id] = time.UnixMilli(at)
	}
	return r
}
