package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/promtext"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// stuckStreams is how many streams the stuck client opens on each service: more than the
// 100 a client may hold (--max-streams-per-client's default).
const stuckStreams = 150

// TestStuckClient has a client open many snapshot and event streams and read none of them
// while another application scales up, with exits. The services must refuse the streams
// beyond the per-client bound, reset the snapshot subscribers that fall behind instead of
// waiting for them or buffering without bound, and serve everyone else as usual: the
// application converges, its events all arrive, a new client gets a snapshot at once, and
// the snapshot service's memory stays bounded.
func TestStuckClient(t *testing.T) {
	sz := suiteSize()
	s := startStack(t, controlplanetest.ControlPlane(t), nil)
	a := s.newApp(t, "stuck", nil)
	snapshotMetrics := func() promtext.Metrics { return scrape(t, s.proc(snapshotSvc).MetricsAddr()) }
	base := snapshotMetrics()

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stuck := s.clientOptions(t, "fault-suite-stuck")
	snapshots := sparkpodsv1.NewSnapshotServiceClient(s.conn(t, snapshotSvc, stuck))
	lifecycle := sparkpodsv1.NewLifecycleServiceClient(s.conn(t, lifecycleSvc, stuck))
	snapOpen, snapRefused := openUnread(ctx, t, func(ctx context.Context) (grpc.ClientStream, error) {
		return snapshots.WatchSnapshots(ctx, &sparkpodsv1.WatchSnapshotsRequest{
			Namespace: s.ns, HeartbeatInterval: durationpb.New(100 * time.Millisecond),
		})
	})
	eventsOpen, eventsRefused := openUnread(ctx, t, func(ctx context.Context) (grpc.ClientStream, error) {
		return lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{
			Namespace: s.ns, AppId: a.id, HeartbeatInterval: durationpb.New(100 * time.Millisecond),
		})
	})
	if snapOpen != 100 || eventsOpen != 100 {
		t.Errorf("the stuck client holds %d snapshot and %d event streams; the bound is 100 each", snapOpen, eventsOpen)
	}

	// Memory, sampled all along.
	var peakHeap, peakRSS float64
	sampleDone := make(chan struct{})
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		defer close(sampleDone)
		for pause(sampleCtx, 500*time.Millisecond) == nil {
			m, err := scrapeQuiet(s.proc(snapshotSvc).MetricsAddr())
			if err != nil {
				continue
			}
			peakHeap = max(peakHeap, m.Sum("go_memstats_heap_inuse_bytes"))
			peakRSS = max(peakRSS, m.Sum("process_resident_memory_bytes"))
		}
	}()

	rng := rand.New(rand.NewPCG(1, nameHash("stuck-client")))
	a.startExits(ctx, rng, sz.exits, 200*time.Millisecond)
	began := time.Now()
	a.setTarget(sz.target)
	a.figures = func() []string {
		stopSampling()
		<-sampleDone
		// Someone new is served at once.
		probe := sparkpodsv1.NewSnapshotServiceClient(s.conn(t, snapshotSvc, s.clientOptions(t, "fault-suite-probe")))
		callCtx, cancelCall := context.WithTimeout(ctx, 5*time.Second)
		defer cancelCall()
		asked := time.Now()
		resp, err := probe.GetSnapshot(callCtx, &sparkpodsv1.GetSnapshotRequest{Namespace: s.ns, AppId: a.id})
		if err != nil {
			t.Errorf("a new client's GetSnapshot: %v", err)
		}
		probeLatency := time.Since(asked)
		running := 0
		for _, e := range resp.GetSnapshot().GetExecutors() {
			if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
				running++
			}
		}
		if err == nil && running != a.target {
			t.Errorf("a new client's snapshot holds %d running executors, want %d", running, a.target)
		}
		m := snapshotMetrics()
		baseHeap := base.Sum("go_memstats_heap_inuse_bytes")
		// Generous, but far below what 100 unread streams of a growing snapshot would
		// hold if the service buffered for them.
		if limit := baseHeap + 256<<20; peakHeap > limit {
			t.Errorf("the snapshot service's heap peaked at %.0f MiB (it began at %.0f MiB)", peakHeap/(1<<20), baseHeap/(1<<20))
		}
		return []string{
			fmt.Sprintf("stuck_snapshot_streams=%d refused=%d stuck_event_streams=%d refused=%d", snapOpen, snapRefused, eventsOpen, eventsRefused),
			fmt.Sprintf("snapshot_resets=%.0f lagged_resets=%.0f probe_latency=%.3fs",
				m.Sum("sparkpods_snapshot_resets_total")-base.Sum("sparkpods_snapshot_resets_total"),
				m.Sum("sparkpods_snapshot_resets_total", `reason="subscriber_lagged"`)-base.Sum("sparkpods_snapshot_resets_total", `reason="subscriber_lagged"`),
				probeLatency.Seconds()),
			fmt.Sprintf("heap_base=%.0fMiB heap_peak=%.0fMiB rss_base=%.0fMiB rss_peak=%.0fMiB", baseHeap/(1<<20), peakHeap/(1<<20),
				base.Sum("process_resident_memory_bytes")/(1<<20), peakRSS/(1<<20)),
		}
	}
	a.finish("stuck-client", 1, began, sz.timeout)

	// Once the stuck client goes away, so do its streams.
	baseSubscribers := base.Sum("sparkpods_snapshot_subscribers")
	cancel()
	eventually(t, 30*time.Second, func() string {
		if n := snapshotMetrics().Sum("sparkpods_snapshot_subscribers"); n > baseSubscribers {
			return fmt.Sprintf("%.0f snapshot subscribers, %.0f before the stuck client", n, baseSubscribers)
		}
		return ""
	})
}

// openUnread opens stuckStreams streams with open and reads none of them: it only waits
// for each one's response headers (or its refusal). It returns how many are open and how
// many were refused with ResourceExhausted.
func openUnread(ctx context.Context, t *testing.T, open func(context.Context) (grpc.ClientStream, error)) (opened, refused int) {
	t.Helper()
	for range stuckStreams {
		stream, err := open(ctx)
		if err == nil {
			var md metadata.MD
			md, err = stream.Header()
			// No headers and no error: the stream ended at once, trailers only, and
			// reading is how to learn its status. Reading an open stream is what the
			// stuck client never does.
			if err == nil && md == nil {
				err = stream.RecvMsg(new(emptypb.Empty))
			}
		}
		switch {
		case err == nil:
			opened++
		case status.Code(err) == codes.ResourceExhausted:
			refused++
		default:
			t.Fatalf("open a stream: %v", err)
		}
	}
	return opened, refused
}

// conn dials a service through its forwarder with opts and closes the connection when the
// test ends.
func (s *stack) conn(t *testing.T, name string, opts []grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.front[name].Addr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
