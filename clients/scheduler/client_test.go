package scheduler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/clients/transport"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

var fast = scheduler.WithBackoff(time.Millisecond, 10*time.Millisecond)

// collect ranges over app's events after 0 until it has n, and returns
// their sequences.
func collect(t *testing.T, app *scheduler.Application, n int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []int64
	for ev, err := range app.Events(ctx, 0) {
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if got = append(got, ev.GetSequence()); len(got) == n {
			break
		}
	}
	return got
}

func TestEventsResumeAfterTheLastYieldedAndDropRepeats(t *testing.T) {
	life := &fakeLifecycle{steps: []watchStep{
		send(status.Error(codes.Unavailable, "connection lost"), event(1), event(2), event(3)),
		// At-least-once: a restarted service may send again what the
		// client has seen.
		send(status.Error(codes.Internal, "restarting"), event(2), event(3), event(4)),
		func(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpcStream) error {
			for seq := req.GetAfterSequence() + 1; seq <= 6; seq++ {
				if err := stream.Send(event(seq)); err != nil {
					return err
				}
			}
			<-stream.Context().Done()
			return nil
		},
	}}
	app := serve(t, nil, life, fast).Application("ns", "app")
	if got, want := collect(t, app, 6), []int64{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("sequences %v, want %v", got, want)
	}
	var after []int64
	for _, req := range life.requests()[:3] {
		after = append(after, req.GetAfterSequence())
		if req.GetNamespace() != "ns" || req.GetAppId() != "app" || req.GetHeartbeatInterval().AsDuration() != 10*time.Second {
			t.Fatalf("request %v", req)
		}
	}
	if want := []int64{0, 3, 4}; !slices.Equal(after, want) {
		t.Fatalf("streams resumed after %v, want %v", after, want)
	}
	if acks := life.acknowledged(); len(acks) != 0 {
		t.Fatalf("acknowledged %v without WithAcknowledgeInterval", acks)
	}
}

func TestEventsEndOnErrorsRetryingCannotCure(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.InvalidArgument, codes.OutOfRange} {
		t.Run(code.String(), func(t *testing.T) {
			life := &fakeLifecycle{steps: []watchStep{
				send(status.Error(codes.Unavailable, "not ready")),
				send(status.Error(code, "scripted"), event(1)),
			}}
			app := serve(t, nil, life, fast).Application("ns", "app")
			var got []int64
			var last error
			for ev, err := range app.Events(context.Background(), 0) {
				if err != nil {
					last = err
					continue // the iteration must end by itself
				}
				got = append(got, ev.GetSequence())
			}
			if status.Code(last) != code || !slices.Equal(got, []int64{1}) {
				t.Fatalf("events %v, error %v; want event 1 and %v", got, last, code)
			}
			if n := len(life.requests()); n != 2 {
				t.Fatalf("%d watch calls, want 2 (one retry of Unavailable, none of %v)", n, code)
			}
		})
	}
}

func TestSilentEventStreamIsReplaced(t *testing.T) {
	life := &fakeLifecycle{steps: []watchStep{
		send(nil, event(1)), // then silent: no heartbeat
		send(nil, event(2)),
	}}
	app := serve(t, nil, life, fast, scheduler.WithHeartbeatInterval(100*time.Millisecond)).Application("ns", "app")
	if got := collect(t, app, 2); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("sequences %v", got)
	}
	if req := life.requests()[1]; req.GetAfterSequence() != 1 || req.GetHeartbeatInterval().AsDuration() != 100*time.Millisecond {
		t.Fatalf("second request %v", req)
	}
}

func TestEventsAcknowledgeWhatTheCallerProcessed(t *testing.T) {
	life := &fakeLifecycle{
		steps:   []watchStep{send(nil, event(1), event(2), heartbeat(2))},
		ackSeen: make(chan struct{}, 16),
	}
	app := serve(t, nil, life, fast, scheduler.WithAcknowledgeInterval(time.Nanosecond)).Application("ns", "app")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for _, err := range app.Events(ctx, 0) {
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.After(30 * time.Second)
	for acks := life.acknowledged(); len(acks) == 0 || acks[len(acks)-1] != 2; acks = life.acknowledged() {
		select {
		case <-life.ackSeen:
		case <-deadline:
			t.Fatalf("acknowledged %v, want up to 2", acks)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("events ended with %v, want the context's error", err)
	}
	if acks := life.acknowledged(); !slices.IsSorted(acks) || slices.Max(acks) != 2 {
		t.Fatalf("acknowledged %v", acks)
	}
}

func TestUnaryCallsRetryUnavailableOnly(t *testing.T) {
	sched := &fakeScheduler{fail: map[string][]codes.Code{
		"SetExecutorTargets": {codes.Unavailable, codes.Unavailable},
		"KillExecutors":      {codes.FailedPrecondition},
	}}
	app := serve(t, sched, nil, fast).Application("ns", "app")
	ctx := context.Background()

	profiles, err := app.SetTargets(ctx, map[int32]int32{1: 2, 0: 4})
	if err != nil || len(profiles) != 2 || profiles[0].GetTarget() != 4 || profiles[1].GetTarget() != 2 {
		t.Fatalf("SetTargets = %v, %v", profiles, err)
	}
	if n := sched.count("SetExecutorTargets"); n != 3 {
		t.Fatalf("SetExecutorTargets called %d times, want 3", n)
	}

	if _, err := app.Kill(ctx, []int64{7}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Kill = %v, want the FailedPrecondition", err)
	}
	if n := sched.count("KillExecutors"); n != 1 {
		t.Fatalf("KillExecutors called %d times, want 1", n)
	}
}

func TestUnregisterRetryFindingTheApplicationGoneSucceeds(t *testing.T) {
	sched := &fakeScheduler{fail: map[string][]codes.Code{"UnregisterApplication": {codes.Unavailable, codes.NotFound}}}
	app := serve(t, sched, nil, fast).Application("ns", "app")
	if n, err := app.Unregister(context.Background()); err != nil || n != 0 {
		t.Fatalf("Unregister = %d, %v; want 0, nil", n, err)
	}
	sched.mu.Lock()
	sched.fail = map[string][]codes.Code{"UnregisterApplication": {codes.NotFound}}
	sched.mu.Unlock()
	if _, err := app.Unregister(context.Background()); status.Code(err) != codes.NotFound {
		t.Fatalf("Unregister of an unknown application = %v, want NotFound", err)
	}
}

func TestUnaryCallsGiveUpAfterMaxAttempts(t *testing.T) {
	sched := &fakeScheduler{fail: map[string][]codes.Code{"KillExecutors": {codes.Unavailable, codes.Unavailable, codes.Unavailable}}}
	app := serve(t, sched, nil, fast, scheduler.WithMaxAttempts(2)).Application("ns", "app")
	if _, err := app.Kill(context.Background(), []int64{7}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Kill = %v, want Unavailable", err)
	}
	if n := sched.count("KillExecutors"); n != 2 {
		t.Fatalf("KillExecutors called %d times, want 2", n)
	}
}

func TestUnaryCallTimeoutIsNotRetried(t *testing.T) {
	sched := &fakeScheduler{block: true}
	app := serve(t, sched, nil, fast, scheduler.WithCallTimeout(100*time.Millisecond)).Application("ns", "app")
	if _, err := app.SetTargets(context.Background(), map[int32]int32{0: 1}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SetTargets = %v, want DeadlineExceeded", err)
	}
	if n := sched.count("SetExecutorTargets"); n != 1 {
		t.Fatalf("SetExecutorTargets called %d times, want 1", n)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for name, opt := range map[string]scheduler.Option{
		"zero timeout":       scheduler.WithCallTimeout(0),
		"no attempts":        scheduler.WithMaxAttempts(0),
		"backoff max < init": scheduler.WithBackoff(time.Second, time.Millisecond),
		"heartbeat too fast": scheduler.WithHeartbeatInterval(time.Millisecond),
		"negative ack":       scheduler.WithAcknowledgeInterval(-time.Second),
		"nil logger":         scheduler.WithLogger(nil),
	} {
		if _, err := scheduler.Dial("localhost:1", "localhost:2", opt); err == nil {
			t.Errorf("%s: Dial succeeded", name)
		}
	}
	if _, err := scheduler.Dial("", "localhost:2"); err == nil {
		t.Error("Dial without an allocator address succeeded")
	}
	if _, err := scheduler.New(nil, nil); err == nil {
		t.Error("New without connections succeeded")
	}
}

// TestDialNeedsATransport checks that Dial has no plaintext default: with
// neither WithTransport nor transport credentials it fails naming
// WithTransport, and WithTransport's own mistakes are reported.
func TestDialNeedsATransport(t *testing.T) {
	_, err := scheduler.Dial("localhost:1", "localhost:2")
	if err == nil || !strings.Contains(err.Error(), "WithTransport") {
		t.Fatalf("Dial without a transport = %v, want an error naming WithTransport", err)
	}
	_, err = scheduler.Dial("localhost:1", "localhost:2", scheduler.WithTransport(transport.ClientOptions{}))
	if err == nil || !strings.Contains(err.Error(), "--tls-ca-file is required") {
		t.Fatalf("Dial with TLS but no CA file = %v, want an error saying the CA file is required", err)
	}
	c, err := scheduler.Dial("localhost:1", "localhost:2", scheduler.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatalf("Dial with transport credentials in WithDialOptions: %v", err)
	}
	_ = c.Close()
}
