package driversim

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	clocktesting "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// newTestDriver returns a Driver whose connections are never used.
func newTestDriver(t *testing.T, onLoss func(Loss)) *Driver {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	d, err := New(Config{
		Scheduler: conn, Snapshot: conn, Lifecycle: conn, Namespace: "spark", AppID: "spark-1",
		Profiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
		OnLoss:   onLoss,
		Clock:    clocktesting.NewFakeClock(time.Unix(1000, 0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEventsAreDeduplicatedBySequence(t *testing.T) {
	var losses []Loss
	d := newTestDriver(t, func(l Loss) { losses = append(losses, l) })
	now := time.Unix(1000, 0)
	d.alloc.register(7, 1, now)
	d.alloc.register(8, 0, now)
	d.markRequested([]int64{8})

	missing := &sparkpodsv1.ExecutorEvent{Sequence: 1, Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING, ExecutorId: 7}
	killed := &sparkpodsv1.ExecutorEvent{Sequence: 2, Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED, ExecutorId: 8,
		State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED}
	// A resumed stream repeats what was already processed.
	for _, ev := range []*sparkpodsv1.ExecutorEvent{missing, missing, killed, missing, killed} {
		d.handleEvent(ev)
	}

	if len(losses) != 2 {
		t.Fatalf("OnLoss called %d times, want 2: %+v", len(losses), losses)
	}
	// The missing executor's profile comes from its registration.
	if l := losses[0]; l.Event.GetExecutorId() != 7 || l.ResourceProfileID != 1 || l.Requested {
		t.Errorf("first loss = executor %d profile %d requested %t, want 7, 1, false", l.Event.GetExecutorId(), l.ResourceProfileID, l.Requested)
	}
	if l := losses[1]; l.Event.GetExecutorId() != 8 || !l.Requested {
		t.Errorf("second loss = executor %d requested %t, want 8, true", l.Event.GetExecutorId(), l.Requested)
	}
	st := d.Status()
	if st.LastSequence != 2 {
		t.Errorf("last sequence = %d, want 2", st.LastSequence)
	}
	for _, p := range st.Profiles {
		if len(p.Registered) != 0 {
			t.Errorf("profile %d still has registered executors %v", p.ID, p.Registered)
		}
	}
	if d.reportGen == d.reportedGen {
		t.Error("the registered set changed but no report is due")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Namespace: "spark", AppID: "a"}); err == nil {
		t.Error("New without connections succeeded")
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, err = New(Config{Scheduler: conn, Snapshot: conn, Lifecycle: conn, Namespace: "spark", AppID: "a",
		SparkConf: map[string]string{"spark.dynamicAllocation.maxExecutors": "0"}})
	if err == nil {
		t.Error("New with maxExecutors 0 succeeded")
	}
}
