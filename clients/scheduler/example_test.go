package scheduler_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/clients/transport"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Example registers an application, asks for four executors and follows
// why executors end. The event stream breaks after the first event and the
// service sends it again when the client resumes; the caller sees each
// event once.
func Example() {
	addr, stop := serveExample()
	defer stop()

	// In a cluster: Dial("sparkpods-allocator.sparkpods:50052",
	// "sparkpods-lifecycle.sparkpods:50053") over TLS, as in ExampleDial.
	// The stand-in service here speaks plaintext.
	c, err := scheduler.Dial(addr, addr,
		scheduler.WithTransport(transport.ClientOptions{Insecure: true}),
		scheduler.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx := context.Background()

	app, err := c.Register(ctx, scheduler.AppSpec{
		Namespace:     "spark-jobs",
		AppID:         "spark-1234",
		DriverPodName: "spark-1234-driver",
		SparkConf: map[string]string{
			"spark.kubernetes.container.image": "apache/spark:4.0.0",
			"spark.driver.host":                "spark-1234-driver-svc.spark-jobs.svc",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	profiles, err := app.SetTargets(ctx, map[int32]int32{0: 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: profile %d wants %d executors\n", app, profiles[0].GetResourceProfileId(), profiles[0].GetTarget())

	for ev, err := range app.Events(ctx, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("event %d: executor %d lost, exit code %d\n", ev.GetSequence(), ev.GetExecutorId(), ev.GetExit().GetExitCode())
		if ev.GetSequence() == 2 {
			break
		}
	}
	// Output:
	// spark-jobs/spark-1234: profile 0 wants 4 executors
	// event 1: executor 3 lost, exit code 137
	// event 2: executor 1 lost, exit code 52
}

// ExampleDial connects over TLS as the pod's ServiceAccount and picks up an
// application a previous run of the scheduler registered, resuming its
// events after the sequence that run persisted.
func ExampleDial() {
	c, err := scheduler.Dial("sparkpods-allocator.sparkpods:50052", "sparkpods-lifecycle.sparkpods:50053",
		scheduler.WithTransport(transport.ClientOptions{
			// The CA bundle that signs the services' certificates, mounted
			// from a ConfigMap, and the pod's projected token.
			Files:     transport.Files{CAFile: "/etc/sparkpods/ca.crt"},
			TokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
		}),
		scheduler.WithCallTimeout(10*time.Second),
		scheduler.WithAcknowledgeInterval(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	app := c.Application("spark-jobs", "spark-1234")
	var persisted int64 = 41 // read from the scheduler's own store
	for ev, err := range app.Events(ctx, persisted) {
		if status.Code(err) == codes.NotFound {
			log.Printf("%s is gone", app)
			return
		}
		if err != nil {
			log.Print(err)
			return
		}
		fmt.Println(ev.GetExecutorId(), ev.GetExit().GetMessage())
	}
}

// exampleService stands in for the allocator and the lifecycle service.
type exampleService struct {
	sparkpodsv1.UnimplementedSchedulerServiceServer
	sparkpodsv1.UnimplementedLifecycleServiceServer
}

func (exampleService) RegisterApplication(_ context.Context, req *sparkpodsv1.RegisterApplicationRequest) (*sparkpodsv1.RegisterApplicationResponse, error) {
	return &sparkpodsv1.RegisterApplicationResponse{Application: &sparkpodsv1.Application{Namespace: req.GetNamespace(), AppId: req.GetAppId()}}, nil
}

func (exampleService) SetExecutorTargets(_ context.Context, req *sparkpodsv1.SetExecutorTargetsRequest) (*sparkpodsv1.SetExecutorTargetsResponse, error) {
	resp := &sparkpodsv1.SetExecutorTargetsResponse{}
	for _, t := range req.GetTargets() {
		resp.Profiles = append(resp.Profiles, &sparkpodsv1.ProfileAllocation{ResourceProfileId: t.GetResourceProfileId(), Target: t.GetTotalExecutors()})
	}
	return resp, nil
}

// WatchExecutorEvents sends event 1 and breaks the first stream; later
// streams send everything recorded, event 1 included.
func (exampleService) WatchExecutorEvents(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
	lost := func(seq, id int64, code int32) *sparkpodsv1.WatchExecutorEventsResponse {
		return &sparkpodsv1.WatchExecutorEventsResponse{Message: &sparkpodsv1.WatchExecutorEventsResponse_Event{Event: &sparkpodsv1.ExecutorEvent{
			Sequence: seq, ExecutorId: id, Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
			Exit: &sparkpodsv1.ExecutorExit{ExitCode: code, ExitCausedByApp: true},
		}}}
	}
	if req.GetAfterSequence() == 0 {
		if err := stream.Send(lost(1, 3, 137)); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "connection lost")
	}
	for _, m := range []*sparkpodsv1.WatchExecutorEventsResponse{lost(1, 3, 137), lost(2, 1, 52)} {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

// serveExample serves exampleService on a loopback port; stop ends it.
func serveExample() (addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	sparkpodsv1.RegisterSchedulerServiceServer(srv, exampleService{})
	sparkpodsv1.RegisterLifecycleServiceServer(srv, exampleService{})
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), srv.Stop
}
