package snapshotwatcher_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// script is a stand-in snapshot service: the n-th WatchSnapshots call runs
// the n-th step, and every request is recorded.
type script struct {
	sparkpodsv1.UnimplementedSnapshotServiceServer
	steps []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error

	mu       sync.Mutex
	requests []*sparkpodsv1.WatchSnapshotsRequest
}

func (s *script) WatchSnapshots(req *sparkpodsv1.WatchSnapshotsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, proto.Clone(req).(*sparkpodsv1.WatchSnapshotsRequest))
	s.mu.Unlock()
	if n >= len(s.steps) {
		<-stream.Context().Done()
		return nil
	}
	return s.steps[n](stream)
}

func (s *script) request(i int) *sparkpodsv1.WatchSnapshotsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.requests) {
		return nil
	}
	return s.requests[i]
}

func serve(t *testing.T, s *script) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sparkpodsv1.RegisterSnapshotServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///script",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return conn
}

func send(msgs ...*sparkpodsv1.WatchSnapshotsResponse) func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
	return func(stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		return status.Error(codes.Unavailable, "stream over")
	}
}

func reset(rev int64, epoch string, reason sparkpodsv1.ResetReason, last bool, snaps ...*sparkpodsv1.ExecutorSnapshot) *sparkpodsv1.WatchSnapshotsResponse {
	return &sparkpodsv1.WatchSnapshotsResponse{Revision: rev, Epoch: epoch, Event: &sparkpodsv1.WatchSnapshotsResponse_Reset_{
		Reset_: &sparkpodsv1.SnapshotReset{Reason: reason, LastChunk: last, Snapshots: snaps},
	}}
}

func changes(rev int64, epoch string, cs ...*sparkpodsv1.ApplicationChange) *sparkpodsv1.WatchSnapshotsResponse {
	return &sparkpodsv1.WatchSnapshotsResponse{Revision: rev, Epoch: epoch, Event: &sparkpodsv1.WatchSnapshotsResponse_Changes{
		Changes: &sparkpodsv1.SnapshotChanges{Changes: cs},
	}}
}

func snap(app string, ids ...int64) *sparkpodsv1.ExecutorSnapshot {
	s := &sparkpodsv1.ExecutorSnapshot{Namespace: "ns", AppId: app, Revision: 1}
	for _, id := range ids {
		s.Executors = append(s.Executors, &sparkpodsv1.Executor{ExecutorId: id, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING})
	}
	return s
}

// collect runs a watcher until it has delivered n updates.
func collect(t *testing.T, conn *grpc.ClientConn, n int, opts ...snapshotwatcher.Option) []snapshotwatcher.Update {
	t.Helper()
	w, err := snapshotwatcher.New(conn, append([]snapshotwatcher.Option{snapshotwatcher.WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []snapshotwatcher.Update
	err = w.Run(ctx, func(_ context.Context, u snapshotwatcher.Update) error {
		got = append(got, u)
		if len(got) == n {
			cancel()
		}
		return nil
	})
	if len(got) != n {
		t.Fatalf("got %d updates before %v, want %d", len(got), err, n)
	}
	return got
}

func ids(s *sparkpodsv1.ExecutorSnapshot) []int64 {
	var out []int64
	for _, e := range s.GetExecutors() {
		out = append(out, e.GetExecutorId())
	}
	return out
}

func TestChunkedResetIsOneUpdate(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		send(
			reset(0, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, false, snap("b", 1, 2)),
			reset(7, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, true, snap("a", 3)),
		),
	}}
	u := collect(t, serve(t, s), 1)[0]
	if !u.Reset || u.Revision != 7 || u.Epoch != "e1" || len(u.Snapshots) != 2 || u.Snapshots[0].GetAppId() != "a" {
		t.Fatalf("update = %+v", u)
	}
}

func TestChangesAreAppliedToFullSnapshots(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		send(
			reset(2, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, true, snap("a", 1, 2), snap("b", 1)),
			changes(5, "e1",
				&sparkpodsv1.ApplicationChange{Namespace: "ns", AppId: "a", Revision: 4, Upserted: []*sparkpodsv1.Executor{{ExecutorId: 3}}, RemovedExecutorIds: []int64{1}, FullResync: true},
				&sparkpodsv1.ApplicationChange{Namespace: "ns", AppId: "b", Revision: 5, ApplicationRemoved: true},
			),
		),
	}}
	u := collect(t, serve(t, s), 2)[1]
	if u.Reset || u.Revision != 5 || len(u.Snapshots) != 1 {
		t.Fatalf("update = %+v", u)
	}
	if got := ids(u.Snapshots[0]); len(got) != 2 || got[0] != 2 || got[1] != 3 || u.Snapshots[0].GetRevision() != 4 {
		t.Fatalf("application a = %v at %d, want executors 2 and 3 at 4", got, u.Snapshots[0].GetRevision())
	}
	if len(u.Removed) != 1 || u.Removed[0].AppID != "b" || len(u.FullResync) != 1 || u.FullResync[0].AppID != "a" {
		t.Fatalf("removed %v, full resync %v", u.Removed, u.FullResync)
	}
}

func TestResumesFromTheLastRevision(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		send(
			reset(2, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, true, snap("a", 1), snap("b", 1)),
			&sparkpodsv1.WatchSnapshotsResponse{Revision: 4, Epoch: "e1", Event: &sparkpodsv1.WatchSnapshotsResponse_Heartbeat{Heartbeat: &sparkpodsv1.Heartbeat{}}},
		),
		// The service restarted: another epoch, and application b is gone.
		send(reset(1, "e2", sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED, true, snap("a", 1))),
	}}
	got := collect(t, serve(t, s), 2)
	if req := s.request(1); req.GetStartRevision() != 4 || req.GetEpoch() != "e1" {
		t.Fatalf("second request = %v, want to resume from the heartbeat's revision 4 of e1", req)
	}
	u := got[1]
	if !u.Reset || u.ResetReason != sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED || len(u.Removed) != 1 || u.Removed[0].AppID != "b" {
		t.Fatalf("update after the epoch change = %+v", u)
	}
}

func TestSilentStreamIsReplaced(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		func(stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
			if err := stream.Send(reset(3, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, true)); err != nil {
				return err
			}
			<-stream.Context().Done() // alive, but says nothing: no heartbeat
			return nil
		},
		send(changes(4, "e1", &sparkpodsv1.ApplicationChange{Namespace: "ns", AppId: "a", Revision: 4, Upserted: []*sparkpodsv1.Executor{{ExecutorId: 1}}})),
	}}
	collect(t, serve(t, s), 2, snapshotwatcher.WithHeartbeatInterval(50*time.Millisecond))
	if req := s.request(1); req.GetStartRevision() != 3 || req.GetHeartbeatInterval().AsDuration() != 50*time.Millisecond {
		t.Fatalf("second request = %v", req)
	}
}

func TestBadRequestEndsRun(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
			return status.Error(codes.InvalidArgument, "namespace: bad")
		},
	}}
	w, err := snapshotwatcher.New(serve(t, s), snapshotwatcher.WithNamespace("ns"))
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background(), func(context.Context, snapshotwatcher.Update) error { return nil })
	if status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Fatalf("Run = %v, want the InvalidArgument", err)
	}
}

func TestCallbackErrorEndsRun(t *testing.T) {
	s := &script{steps: []func(grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error{
		send(reset(1, "e1", sparkpodsv1.ResetReason_RESET_REASON_INITIAL, true)),
	}}
	w, err := snapshotwatcher.New(serve(t, s))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := w.Run(context.Background(), func(context.Context, snapshotwatcher.Update) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the callback's error", err)
	}
}

func TestOptionErrors(t *testing.T) {
	conn := serve(t, &script{})
	for name, opt := range map[string]snapshotwatcher.Option{
		"application without namespace": snapshotwatcher.WithApplication("", "a"),
		"negative batch":                snapshotwatcher.WithBatchInterval(-time.Second),
		"zero heartbeat":                snapshotwatcher.WithHeartbeatInterval(0),
		"backoff max below initial":     snapshotwatcher.WithBackoff(time.Second, time.Millisecond),
	} {
		if _, err := snapshotwatcher.New(conn, opt); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
