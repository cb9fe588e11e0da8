package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

var (
	appA = snapshotmodel.AppKey{Namespace: "ns-a", AppID: "spark-a"}
	appB = snapshotmodel.AppKey{Namespace: "ns-b", AppID: "spark-b"}
)

// fixture is a real Server on an in-memory connection, with the real
// generated client.
type fixture struct {
	store    *snapshotmodel.Store
	client   sparkpodsv1.SnapshotServiceClient
	ready    chan struct{}
	stopping chan struct{}
	rv       uint64
}

type fixtureOptions struct {
	history       int
	maxPerMessage int
	notReady      bool
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	store, err := snapshotmodel.NewStore(snapshotmodel.StoreConfig{HistoryLimit: o.history, Epoch: "epoch-1"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, ready: make(chan struct{}), stopping: make(chan struct{})}
	if !o.notReady {
		close(f.ready)
	}
	srv, err := New(Config{
		Store:                  store,
		Ready:                  f.ready,
		Stopping:               f.stopping,
		Logger:                 slog.New(slog.DiscardHandler),
		MaxExecutorsPerMessage: o.maxPerMessage,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///snapshot",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		g.Stop()
	})
	f.client = sparkpodsv1.NewSnapshotServiceClient(conn)
	return f
}

// put records executor id of app in state s, as a watch event would.
func (f *fixture) put(app snapshotmodel.AppKey, id int64, s snapshotmodel.State) {
	f.rv++
	f.store.Update(app, &snapshotmodel.Executor{ID: id, State: s, ResourceVersion: f.rv, PodName: app.AppID + "-exec"})
}

func (f *fixture) watch(t *testing.T, req *sparkpodsv1.WatchSnapshotsRequest) grpc.ServerStreamingClient[sparkpodsv1.WatchSnapshotsResponse] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := f.client.WatchSnapshots(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func recv(t *testing.T, stream grpc.ServerStreamingClient[sparkpodsv1.WatchSnapshotsResponse]) *sparkpodsv1.WatchSnapshotsResponse {
	t.Helper()
	msg, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return msg
}

// recvNonHeartbeat skips heartbeats.
func recvNonHeartbeat(t *testing.T, stream grpc.ServerStreamingClient[sparkpodsv1.WatchSnapshotsResponse]) *sparkpodsv1.WatchSnapshotsResponse {
	t.Helper()
	for {
		if msg := recv(t, stream); msg.GetHeartbeat() == nil {
			return msg
		}
	}
}

func requireCode(t *testing.T, err error, want codes.Code, wantInMessage string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want || !strings.Contains(st.Message(), wantInMessage) {
		t.Fatalf("err = %v, want %v containing %q", err, want, wantInMessage)
	}
}

func TestGetSnapshot(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.put(appA, 2, snapshotmodel.StateRunning)
	f.put(appA, 1, snapshotmodel.StatePending)
	ctx := context.Background()

	resp, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: appA.Namespace, AppId: appA.AppID})
	if err != nil {
		t.Fatal(err)
	}
	snap := resp.GetSnapshot()
	if resp.GetEpoch() != "epoch-1" || snap.GetRevision() != 2 || len(snap.GetExecutors()) != 2 ||
		snap.GetExecutors()[0].GetExecutorId() != 1 || snap.GetExecutors()[1].GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
		t.Fatalf("snapshot = %v", resp)
	}

	resp, err = f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "ns-a", AppId: "spark-unknown"})
	if err != nil {
		t.Fatalf("unknown application: %v", err)
	}
	if s := resp.GetSnapshot(); s.GetRevision() != 0 || len(s.GetExecutors()) != 0 || s.GetAppId() != "spark-unknown" {
		t.Fatalf("unknown application snapshot = %v, want empty at revision 0", s)
	}
}

func TestInvalidRequests(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"get without namespace", func() error {
			_, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{AppId: "spark-a"})
			return err
		}, "namespace"},
		{"get with upper-case namespace", func() error {
			_, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "Spark", AppId: "spark-a"})
			return err
		}, "namespace"},
		{"get without app id", func() error {
			_, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "ns"})
			return err
		}, "app_id"},
		{"get with an app id no label can hold", func() error {
			_, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "ns", AppId: "spark/a"})
			return err
		}, "app_id"},
		{"list with negative page size", func() error {
			_, err := f.client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"list with a made-up token", func() error {
			_, err := f.client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{PageToken: "bm90IGEgdG9rZW4"})
			return err
		}, "page_token"},
		{"watch app without namespace", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{AppId: "spark-a"})
		}, "namespace"},
		{"watch from a negative revision", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{StartRevision: -3})
		}, "start_revision"},
		{"watch from a revision without epoch", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 3})
		}, "epoch"},
		{"watch with a negative batch interval", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{BatchInterval: durationpb.New(-time.Second)})
		}, "batch_interval"},
		{"watch with a batch interval over a minute", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{BatchInterval: durationpb.New(2 * time.Minute)})
		}, "batch_interval"},
		{"watch with a too frequent heartbeat", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{HeartbeatInterval: durationpb.New(time.Millisecond)})
		}, "heartbeat_interval"},
		{"watch with a malformed duration", func() error {
			return firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{HeartbeatInterval: &durationpb.Duration{Seconds: 1, Nanos: -5}})
		}, "heartbeat_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			requireCode(t, err, codes.InvalidArgument, tt.field+": ")
			st, _ := status.FromError(err)
			var found bool
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == tt.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("no BadRequest detail for %s in %v", tt.field, st.Details())
			}
		})
	}
}

func firstWatchError(f *fixture, req *sparkpodsv1.WatchSnapshotsRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := f.client.WatchSnapshots(ctx, req)
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}

func TestNotReadyIsUnavailable(t *testing.T) {
	f := newFixture(t, fixtureOptions{notReady: true})
	ctx := context.Background()
	_, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "ns", AppId: "a"})
	requireCode(t, err, codes.Unavailable, "first list")
	_, err = f.client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{})
	requireCode(t, err, codes.Unavailable, "first list")
	requireCode(t, firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{}), codes.Unavailable, "first list")
	close(f.ready)
	if _, err := f.client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: "ns", AppId: "a"}); err != nil {
		t.Fatalf("after sync: %v", err)
	}
}

func TestListApplicationsPages(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	keys := []snapshotmodel.AppKey{{Namespace: "a", AppID: "x"}, {Namespace: "a", AppID: "y"}, {Namespace: "b", AppID: "x"}}
	for _, k := range keys {
		f.put(k, 1, snapshotmodel.StateFailed)
	}
	ctx := context.Background()
	var got []string
	req := &sparkpodsv1.ListApplicationsRequest{PageSize: 2}
	for {
		resp, err := f.client.ListApplications(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetApplications() {
			if a.GetCounts().GetFailed() != 1 {
				t.Fatalf("counts of %s = %v", a.GetAppId(), a.GetCounts())
			}
			got = append(got, a.GetNamespace()+"/"+a.GetAppId())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if strings.Join(got, ",") != "a/x,a/y,b/x" {
		t.Fatalf("pages = %v", got)
	}
	first, err := f.client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{Namespace: "b", PageToken: first.GetNextPageToken()})
	requireCode(t, err, codes.InvalidArgument, "keep the namespace the same")
}

func TestWatchStartsWithResetThenSendsChangesInOrder(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.put(appA, 1, snapshotmodel.StatePending)
	f.put(appB, 1, snapshotmodel.StatePending)
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{})

	msg := recvNonHeartbeat(t, stream)
	reset := msg.GetReset_()
	if reset == nil || reset.GetReason() != sparkpodsv1.ResetReason_RESET_REASON_INITIAL || !reset.GetLastChunk() ||
		msg.GetRevision() != 2 || msg.GetEpoch() != "epoch-1" || len(reset.GetSnapshots()) != 2 {
		t.Fatalf("first message = %v", msg)
	}

	f.put(appA, 1, snapshotmodel.StateRunning)
	f.put(appB, 1, snapshotmodel.StateFailed)
	var seen []string
	for len(seen) < 2 {
		msg = recvNonHeartbeat(t, stream)
		for _, c := range msg.GetChanges().GetChanges() {
			seen = append(seen, c.GetAppId()+":"+c.GetUpserted()[0].GetState().String())
			if c.GetRevision() > msg.GetRevision() {
				t.Fatalf("change at revision %d in a message at %d", c.GetRevision(), msg.GetRevision())
			}
		}
	}
	if want := "spark-a:EXECUTOR_STATE_RUNNING,spark-b:EXECUTOR_STATE_FAILED"; strings.Join(seen, ",") != want {
		t.Fatalf("changes = %v, want %s", seen, want)
	}
}

func TestWatchOneApplication(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.put(appA, 1, snapshotmodel.StatePending)
	f.put(appB, 1, snapshotmodel.StatePending)
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{Namespace: appB.Namespace, AppId: appB.AppID})
	reset := recvNonHeartbeat(t, stream).GetReset_()
	if len(reset.GetSnapshots()) != 1 || reset.GetSnapshots()[0].GetAppId() != appB.AppID {
		t.Fatalf("reset = %v", reset)
	}
	f.put(appA, 1, snapshotmodel.StateRunning) // not watched
	f.put(appB, 1, snapshotmodel.StateRunning)
	msg := recvNonHeartbeat(t, stream)
	changes := msg.GetChanges().GetChanges()
	if len(changes) != 1 || changes[0].GetAppId() != appB.AppID || msg.GetRevision() != 4 {
		t.Fatalf("message = %v", msg)
	}
}

func TestWatchResetIsChunked(t *testing.T) {
	f := newFixture(t, fixtureOptions{maxPerMessage: 2})
	for id := int64(1); id <= 3; id++ {
		f.put(appA, id, snapshotmodel.StateRunning)
	}
	f.put(appB, 1, snapshotmodel.StateRunning)
	f.put(snapshotmodel.AppKey{Namespace: "ns-c", AppID: "spark-c"}, 1, snapshotmodel.StateRunning)
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{})

	first := recvNonHeartbeat(t, stream)
	second := recvNonHeartbeat(t, stream)
	if r := first.GetReset_(); r.GetLastChunk() || first.GetRevision() != 0 || len(r.GetSnapshots()) != 1 || len(r.GetSnapshots()[0].GetExecutors()) != 3 {
		t.Fatalf("first chunk = %v", first)
	}
	if r := second.GetReset_(); !r.GetLastChunk() || second.GetRevision() != 5 || len(r.GetSnapshots()) != 2 {
		t.Fatalf("last chunk = %v", second)
	}
}

func TestWatchResumesFromRevision(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.put(appA, 1, snapshotmodel.StatePending) // 1
	f.put(appA, 2, snapshotmodel.StatePending) // 2
	f.put(appA, 1, snapshotmodel.StateRunning) // 3
	f.put(appA, 3, snapshotmodel.StatePending) // 4

	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 2, Epoch: "epoch-1"})
	msg := recvNonHeartbeat(t, stream)
	changes := msg.GetChanges().GetChanges()
	if msg.GetRevision() != 4 || len(changes) != 1 || len(changes[0].GetUpserted()) != 2 {
		t.Fatalf("resumed stream started with %v, want executors 1 and 3 at revision 4", msg)
	}
	if ids := []int64{changes[0].GetUpserted()[0].GetExecutorId(), changes[0].GetUpserted()[1].GetExecutorId()}; ids[0] != 1 || ids[1] != 3 {
		t.Fatalf("upserted %v", ids)
	}

	// Up to date: a heartbeat first, no reset.
	stream = f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 4, Epoch: "epoch-1", HeartbeatInterval: durationpb.New(100 * time.Millisecond)})
	if msg := recv(t, stream); msg.GetHeartbeat() == nil || msg.GetRevision() != 4 {
		t.Fatalf("up-to-date resume started with %v, want a heartbeat at 4", msg)
	}
}

func TestWatchResetReasons(t *testing.T) {
	f := newFixture(t, fixtureOptions{history: 2})
	for i := range 5 {
		f.put(appA, int64(i), snapshotmodel.StateRunning)
	}
	tests := []struct {
		name string
		req  *sparkpodsv1.WatchSnapshotsRequest
		want sparkpodsv1.ResetReason
	}{
		{"no revision", &sparkpodsv1.WatchSnapshotsRequest{}, sparkpodsv1.ResetReason_RESET_REASON_INITIAL},
		{"another epoch", &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 4, Epoch: "epoch-0"}, sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED},
		{"revision older than the history", &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 2, Epoch: "epoch-1"}, sparkpodsv1.ResetReason_RESET_REASON_REVISION_TOO_OLD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := recvNonHeartbeat(t, f.watch(t, tt.req))
			if msg.GetReset_().GetReason() != tt.want || msg.GetRevision() != 5 || len(msg.GetReset_().GetSnapshots()[0].GetExecutors()) != 5 {
				t.Fatalf("first message = %v, want a %v reset at 5", msg, tt.want)
			}
		})
	}
	requireCode(t, firstWatchError(f, &sparkpodsv1.WatchSnapshotsRequest{StartRevision: 9, Epoch: "epoch-1"}),
		codes.InvalidArgument, "start_revision: 9 is ahead of revision 5")
}

func TestWatchHeartbeats(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.put(appA, 1, snapshotmodel.StateRunning)
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{HeartbeatInterval: durationpb.New(100 * time.Millisecond)})
	recv(t, stream) // reset
	for range 2 {
		msg := recv(t, stream)
		if msg.GetHeartbeat().GetTime() == nil || msg.GetRevision() != 1 {
			t.Fatalf("got %v, want a heartbeat at revision 1", msg)
		}
	}
}

func TestWatchBatchIntervalGathersChanges(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{BatchInterval: durationpb.New(300 * time.Millisecond)})
	recv(t, stream) // empty reset
	f.put(appA, 1, snapshotmodel.StatePending)
	f.put(appA, 1, snapshotmodel.StateRunning)
	f.put(appB, 1, snapshotmodel.StatePending)
	msg := recvNonHeartbeat(t, stream)
	changes := msg.GetChanges().GetChanges()
	if msg.GetRevision() != 3 || len(changes) != 2 || changes[0].GetUpserted()[0].GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
		t.Fatalf("batched message = %v, want A running and B pending at revision 3", msg)
	}
}

func TestWatchEndsWhenServiceStops(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	stream := f.watch(t, &sparkpodsv1.WatchSnapshotsRequest{})
	recv(t, stream)
	close(f.stopping)
	for {
		_, err := stream.Recv()
		if err != nil {
			requireCode(t, err, codes.Unavailable, "shutting down")
			return
		}
	}
}

// blockingStream is a WatchSnapshots server stream whose Send blocks until
// the test lets it through, as a client that stopped reading would make it.
type blockingStream struct {
	grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]
	ctx  context.Context
	gate chan struct{}
	sent chan *sparkpodsv1.WatchSnapshotsResponse
}

func (s *blockingStream) Context() context.Context { return s.ctx }

func (s *blockingStream) Send(m *sparkpodsv1.WatchSnapshotsResponse) error {
	select {
	case <-s.gate:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	s.sent <- m
	return nil
}

func TestStuckWatcherIsResetNotBuffered(t *testing.T) {
	f := newFixture(t, fixtureOptions{history: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := &blockingStream{ctx: ctx, gate: make(chan struct{}), sent: make(chan *sparkpodsv1.WatchSnapshotsResponse, 100)}
	p, err := validateWatchSnapshots(&sparkpodsv1.WatchSnapshotsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: f.store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{server: srv, stream: stream, params: p, epoch: f.store.Epoch()}
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()

	stream.gate <- struct{}{} // the initial reset goes through
	if r := (<-stream.sent).GetReset_(); r.GetReason() != sparkpodsv1.ResetReason_RESET_REASON_INITIAL {
		t.Fatalf("first message = %v", r)
	}
	// The store keeps going while the watcher is stuck in Send: ten changes,
	// more than the history of four holds.
	f.put(appA, 1, snapshotmodel.StatePending)
	for i := range 10 {
		f.put(appA, int64(i), snapshotmodel.StateRunning)
	}
	// The stuck Send (the first change) completes; then the watcher finds its
	// revision gone from the history and sends a reset instead of a backlog.
	close(stream.gate)
	var got []*sparkpodsv1.WatchSnapshotsResponse
	for {
		msg := <-stream.sent
		got = append(got, msg)
		if r := msg.GetReset_(); r != nil {
			if r.GetReason() != sparkpodsv1.ResetReason_RESET_REASON_SUBSCRIBER_LAGGED || msg.GetRevision() != 11 || len(r.GetSnapshots()[0].GetExecutors()) != 10 {
				t.Fatalf("reset = %v", msg)
			}
			break
		}
		if len(got) > 3 {
			t.Fatalf("no lagged reset after %d messages: %v", len(got), got)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
}
