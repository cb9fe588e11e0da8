package scheduler_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/clients/transport"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// watchStep is what the fake lifecycle service does on one
// WatchExecutorEvents call.
type watchStep func(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpcStream) error

type grpcStream = grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]

// fakeLifecycle is a scripted LifecycleService: the n-th watch runs the n-th
// step (later ones wait for the client to leave); requests and
// acknowledgements are recorded.
type fakeLifecycle struct {
	sparkpodsv1.UnimplementedLifecycleServiceServer
	steps []watchStep

	mu      sync.Mutex
	watches []*sparkpodsv1.WatchExecutorEventsRequest
	acks    []int64
	ackSeen chan struct{} // gets a value per acknowledgement, if not nil
}

func (f *fakeLifecycle) WatchExecutorEvents(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
	f.mu.Lock()
	n := len(f.watches)
	f.watches = append(f.watches, proto.Clone(req).(*sparkpodsv1.WatchExecutorEventsRequest))
	f.mu.Unlock()
	if n >= len(f.steps) {
		<-stream.Context().Done()
		return nil
	}
	return f.steps[n](req, stream)
}

func (f *fakeLifecycle) AcknowledgeExecutorEvents(_ context.Context, req *sparkpodsv1.AcknowledgeExecutorEventsRequest) (*sparkpodsv1.AcknowledgeExecutorEventsResponse, error) {
	f.mu.Lock()
	f.acks = append(f.acks, req.GetSequence())
	f.mu.Unlock()
	if f.ackSeen != nil {
		f.ackSeen <- struct{}{}
	}
	return &sparkpodsv1.AcknowledgeExecutorEventsResponse{AcknowledgedSequence: req.GetSequence()}, nil
}

func (f *fakeLifecycle) requests() []*sparkpodsv1.WatchExecutorEventsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sparkpodsv1.WatchExecutorEventsRequest(nil), f.watches...)
}

func (f *fakeLifecycle) acknowledged() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.acks...)
}

// fakeScheduler is a SchedulerService whose calls fail with the codes in
// fail, one per call, before they succeed; calls are counted per method.
type fakeScheduler struct {
	sparkpodsv1.UnimplementedSchedulerServiceServer

	mu    sync.Mutex
	fail  map[string][]codes.Code
	calls map[string]int
	block bool // calls wait for their deadline
}

func (f *fakeScheduler) answer(ctx context.Context, method string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	var code codes.Code
	if len(f.fail[method]) > 0 {
		code = f.fail[method][0]
		f.fail[method] = f.fail[method][1:]
	}
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	if code != codes.OK {
		return status.Errorf(code, "%s: scripted failure", method)
	}
	return nil
}

func (f *fakeScheduler) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeScheduler) SetExecutorTargets(ctx context.Context, req *sparkpodsv1.SetExecutorTargetsRequest) (*sparkpodsv1.SetExecutorTargetsResponse, error) {
	if err := f.answer(ctx, "SetExecutorTargets"); err != nil {
		return nil, err
	}
	resp := &sparkpodsv1.SetExecutorTargetsResponse{}
	for _, t := range req.GetTargets() {
		resp.Profiles = append(resp.Profiles, &sparkpodsv1.ProfileAllocation{ResourceProfileId: t.GetResourceProfileId(), Target: t.GetTotalExecutors()})
	}
	return resp, nil
}

func (f *fakeScheduler) KillExecutors(ctx context.Context, req *sparkpodsv1.KillExecutorsRequest) (*sparkpodsv1.KillExecutorsResponse, error) {
	if err := f.answer(ctx, "KillExecutors"); err != nil {
		return nil, err
	}
	return &sparkpodsv1.KillExecutorsResponse{AcceptedExecutorIds: req.GetExecutorIds()}, nil
}

func (f *fakeScheduler) UnregisterApplication(ctx context.Context, _ *sparkpodsv1.UnregisterApplicationRequest) (*sparkpodsv1.UnregisterApplicationResponse, error) {
	if err := f.answer(ctx, "UnregisterApplication"); err != nil {
		return nil, err
	}
	return &sparkpodsv1.UnregisterApplicationResponse{DeletedPods: 3}, nil
}

// serve runs the fakes on a real gRPC server on a loopback TCP port and
// returns a Client dialled to it.
func serve(t *testing.T, sched *fakeScheduler, life *fakeLifecycle, opts ...scheduler.Option) *scheduler.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if sched == nil {
		sched = &fakeScheduler{}
	}
	if life == nil {
		life = &fakeLifecycle{}
	}
	sparkpodsv1.RegisterSchedulerServiceServer(srv, sched)
	sparkpodsv1.RegisterLifecycleServiceServer(srv, life)
	go func() { _ = srv.Serve(lis) }()
	opts = append([]scheduler.Option{scheduler.WithTransport(transport.ClientOptions{Insecure: true})}, opts...)
	c, err := scheduler.Dial(lis.Addr().String(), lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		srv.Stop()
	})
	return c
}

func event(seq int64) *sparkpodsv1.WatchExecutorEventsResponse {
	return &sparkpodsv1.WatchExecutorEventsResponse{Message: &sparkpodsv1.WatchExecutorEventsResponse_Event{Event: &sparkpodsv1.ExecutorEvent{
		Sequence: seq, Namespace: "ns", AppId: "app", ExecutorId: seq,
		Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
	}}}
}

func heartbeat(last int64) *sparkpodsv1.WatchExecutorEventsResponse {
	return &sparkpodsv1.WatchExecutorEventsResponse{Message: &sparkpodsv1.WatchExecutorEventsResponse_Heartbeat{
		Heartbeat: &sparkpodsv1.EventsHeartbeat{LastSequence: last},
	}}
}

// send sends msgs and then ends the stream with err, or, when err is nil,
// keeps it open until the client leaves.
func send(err error, msgs ...*sparkpodsv1.WatchExecutorEventsResponse) watchStep {
	return func(_ *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
		for _, m := range msgs {
			if serr := stream.Send(m); serr != nil {
				return serr
			}
		}
		if err != nil {
			return err
		}
		<-stream.Context().Done()
		return nil
	}
}
