package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

var app = eventstore.AppKey{Namespace: "spark-jobs", AppID: "spark-app-1"}

// registry is the scheduler's view of registered applications.
type registry map[eventstore.AppKey]bool

func (r registry) Registered(_ context.Context, app eventstore.AppKey) (bool, error) {
	return r[app], nil
}

type fixture struct {
	store  *eventstore.Store
	clock  *testingclock.FakeClock
	client sparkpodsv1.LifecycleServiceClient
}

// newFixture serves a real Server over bufconn, on a real store whose API
// server is client-go's fake, and dials it with the generated client.
func newFixture(t *testing.T, registered registry) *fixture {
	t.Helper()
	clk := testingclock.NewFakeClock(time.UnixMilli(1_700_000_000_000))
	store, err := eventstore.New(eventstore.Config{ConfigMaps: eventstore.KubeConfigMaps(fake.NewClientset()), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Events: store, Applications: registered, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///lifecycle",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &fixture{store: store, clock: clk, client: sparkpodsv1.NewLifecycleServiceClient(conn)}
}

func (f *fixture) record(t *testing.T, ids ...int64) {
	t.Helper()
	var evs []*sparkpodsv1.ExecutorEvent
	for _, id := range ids {
		evs = append(evs, &sparkpodsv1.ExecutorEvent{
			Namespace: app.Namespace, AppId: app.AppID, ExecutorId: id,
			Type:  sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
			State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
			Exit:  &sparkpodsv1.ExecutorExit{ExitCode: 137, ExitCausedByApp: true, Message: "exited"},
		})
	}
	if _, err := f.store.Append(t.Context(), app, evs, reconcile.State{}, nil); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, stream grpc.ServerStreamingClient[sparkpodsv1.WatchExecutorEventsResponse]) *sparkpodsv1.WatchExecutorEventsResponse {
	t.Helper()
	msg, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return msg
}

func wantEvent(t *testing.T, msg *sparkpodsv1.WatchExecutorEventsResponse, seq, executorID int64) {
	t.Helper()
	ev := msg.GetEvent()
	if ev == nil || ev.GetSequence() != seq || ev.GetExecutorId() != executorID {
		t.Fatalf("got %v, want event %d for executor %d", msg, seq, executorID)
	}
}

func wantHeartbeat(t *testing.T, msg *sparkpodsv1.WatchExecutorEventsResponse, last int64) {
	t.Helper()
	hb := msg.GetHeartbeat()
	if hb == nil || hb.GetLastSequence() != last {
		t.Fatalf("got %v, want a heartbeat with last sequence %d", msg, last)
	}
}

func TestWatchReplaysRecordedEventsThenStreamsNewOnesWithHeartbeats(t *testing.T) {
	f := newFixture(t, nil)
	f.record(t, 11, 12, 13)
	stream, err := f.client.WatchExecutorEvents(t.Context(), &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace: app.Namespace, AppId: app.AppID, AfterSequence: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, recv(t, stream), 2, 12)
	wantEvent(t, recv(t, stream), 3, 13)
	wantHeartbeat(t, recv(t, stream), 3)

	f.record(t, 14)
	wantEvent(t, recv(t, stream), 4, 14)

	f.clock.Step(defaultHeartbeatInterval)
	wantHeartbeat(t, recv(t, stream), 4)
}

func TestResumedWatchMissesNothingRecordedWhileAway(t *testing.T) {
	f := newFixture(t, nil)
	f.record(t, 1)
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := f.client.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, recv(t, stream), 1, 1)
	cancel() // the client goes away
	f.record(t, 2, 3)

	stream, err = f.client.WatchExecutorEvents(t.Context(), &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace: app.Namespace, AppId: app.AppID, AfterSequence: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, recv(t, stream), 2, 2)
	wantEvent(t, recv(t, stream), 3, 3)
}

func TestWatchOfARegisteredApplicationWithoutEventsWaitsForTheFirst(t *testing.T) {
	f := newFixture(t, registry{app: true})
	stream, err := f.client.WatchExecutorEvents(t.Context(), &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace: app.Namespace, AppId: app.AppID, HeartbeatInterval: durationpb.New(time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantHeartbeat(t, recv(t, stream), 0)
	f.record(t, 7)
	wantEvent(t, recv(t, stream), 1, 7)
}

func TestListPagesThroughEvents(t *testing.T) {
	f := newFixture(t, nil)
	f.record(t, 1, 2, 3, 4, 5)
	resp, err := f.client.ListExecutorEvents(t.Context(), &sparkpodsv1.ListExecutorEventsRequest{
		Namespace: app.Namespace, AppId: app.AppID, AfterSequence: 1, PageSize: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != 2 || resp.GetEvents()[0].GetSequence() != 2 || resp.GetLastSequence() != 5 {
		t.Fatalf("page after 1 of size 2: %v", resp)
	}
}

func TestAcknowledgeIsMonotonicAndTrims(t *testing.T) {
	f := newFixture(t, nil)
	f.record(t, 1, 2, 3)
	ctx := t.Context()
	ack := func(seq int64) (*sparkpodsv1.AcknowledgeExecutorEventsResponse, error) {
		return f.client.AcknowledgeExecutorEvents(ctx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID, Sequence: seq})
	}
	if resp, err := ack(2); err != nil || resp.GetAcknowledgedSequence() != 2 {
		t.Fatalf("ack 2: %v, %v", resp, err)
	}
	if resp, err := ack(1); err != nil || resp.GetAcknowledgedSequence() != 2 {
		t.Fatalf("ack 1 after 2: %v, %v; want 2", resp, err)
	}
	if _, err := ack(9); status.Code(err) != codes.OutOfRange {
		t.Fatalf("ack 9 with last 3: %v, want OutOfRange", err)
	}
	resp, err := f.client.ListExecutorEvents(ctx, &sparkpodsv1.ListExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if err != nil || len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetSequence() != 3 {
		t.Fatalf("list after ack 2: %v, %v; want only event 3", resp, err)
	}
}

func TestUnknownApplicationIsNotFoundAndBadInputInvalid(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	_, err := f.client.ListExecutorEvents(ctx, &sparkpodsv1.ListExecutorEventsRequest{Namespace: "spark-jobs", AppId: "spark-nobody"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown app: %v, want NotFound", err)
	}
	f.record(t, 1)
	for name, req := range map[string]*sparkpodsv1.WatchExecutorEventsRequest{
		"no namespace":       {AppId: app.AppID},
		"bad namespace":      {Namespace: "Spark_Jobs", AppId: app.AppID},
		"no app":             {Namespace: app.Namespace},
		"bad app":            {Namespace: app.Namespace, AppId: "spark app"},
		"negative after":     {Namespace: app.Namespace, AppId: app.AppID, AfterSequence: -1},
		"heartbeat too fast": {Namespace: app.Namespace, AppId: app.AppID, HeartbeatInterval: durationpb.New(time.Millisecond)},
	} {
		t.Run(name, func(t *testing.T) {
			stream, err := f.client.WatchExecutorEvents(ctx, req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
	stream, err := f.client.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID, AfterSequence: 5})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("after_sequence beyond the last: %v, want OutOfRange", err)
	}
}

func TestCallsBeforeRestoreAndStreamsAtShutdownAreUnavailable(t *testing.T) {
	store, err := eventstore.New(eventstore.Config{ConfigMaps: eventstore.KubeConfigMaps(fake.NewClientset())})
	if err != nil {
		t.Fatal(err)
	}
	ready, stopping := make(chan struct{}), make(chan struct{})
	srv, err := New(Config{Events: store, Applications: registry{app: true}, Ready: ready, Stopping: stopping})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///lifecycle",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := sparkpodsv1.NewLifecycleServiceClient(conn)

	_, err = client.ListExecutorEvents(t.Context(), &sparkpodsv1.ListExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("before restore: %v, want Unavailable", err)
	}
	close(ready)
	stream, err := client.WatchExecutorEvents(t.Context(), &sparkpodsv1.WatchExecutorEventsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if err != nil {
		t.Fatal(err)
	}
	wantHeartbeat(t, recv(t, stream), 0)
	close(stopping)
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("at shutdown: %v, want Unavailable", err)
	}
}
