package snapshotwatcher_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Example follows the executors of the applications in one namespace. The
// stream breaks after the second message; the watcher reconnects on its own,
// resumes after the last revision it applied, and the caller only ever sees
// full snapshots.
func Example() {
	conn, stop := dialScriptedService()
	defer stop()

	w, err := snapshotwatcher.New(conn,
		snapshotwatcher.WithNamespace("spark-jobs"),
		snapshotwatcher.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := 0
	err = w.Run(ctx, func(ctx context.Context, u snapshotwatcher.Update) error {
		fmt.Printf("revision %d (reset %v)\n", u.Revision, u.Reset)
		for _, snap := range u.Snapshots {
			for _, e := range snap.GetExecutors() {
				fmt.Printf("  %s/%s executor %d: %v", snap.GetNamespace(), snap.GetAppId(), e.GetExecutorId(), e.GetState())
				if t := e.GetTermination(); t != nil {
					fmt.Printf(" (exit code %d, %s)", t.GetExitCode(), t.GetReason())
				}
				fmt.Println()
			}
		}
		if updates++; updates == 3 {
			cancel()
		}
		return nil
	})
	fmt.Println("stopped:", err)
	// Output:
	// revision 1 (reset true)
	//   spark-jobs/spark-app-1 executor 1: EXECUTOR_STATE_PENDING
	// revision 2 (reset false)
	//   spark-jobs/spark-app-1 executor 1: EXECUTOR_STATE_RUNNING
	//   spark-jobs/spark-app-1 executor 2: EXECUTOR_STATE_PENDING
	// revision 3 (reset false)
	//   spark-jobs/spark-app-1 executor 1: EXECUTOR_STATE_FAILED (exit code 137, Error)
	//   spark-jobs/spark-app-1 executor 2: EXECUTOR_STATE_PENDING
	// stopped: context canceled
}

// scriptedService stands in for the snapshot service: its first stream sends
// a reset and one change and then breaks; a stream that resumes from revision
// 2 of its epoch gets the third change.
type scriptedService struct {
	sparkpodsv1.UnimplementedSnapshotServiceServer
}

func (scriptedService) WatchSnapshots(req *sparkpodsv1.WatchSnapshotsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
	const epoch = "example"
	exec := func(id int64, s sparkpodsv1.ExecutorState) *sparkpodsv1.Executor {
		return &sparkpodsv1.Executor{ExecutorId: id, State: s, PodName: fmt.Sprintf("spark-app-1-exec-%d", id)}
	}
	change := func(rev int64, execs ...*sparkpodsv1.Executor) *sparkpodsv1.WatchSnapshotsResponse {
		return &sparkpodsv1.WatchSnapshotsResponse{Revision: rev, Epoch: epoch, Event: &sparkpodsv1.WatchSnapshotsResponse_Changes{
			Changes: &sparkpodsv1.SnapshotChanges{Changes: []*sparkpodsv1.ApplicationChange{{
				Namespace: "spark-jobs", AppId: "spark-app-1", Revision: rev, Upserted: execs,
			}}},
		}}
	}
	if req.GetStartRevision() == 2 && req.GetEpoch() == epoch {
		failed := exec(1, sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED)
		failed.Termination = &sparkpodsv1.ContainerTermination{ExitCode: 137, Reason: "Error"}
		if err := stream.Send(change(3, failed)); err != nil {
			return err
		}
		<-stream.Context().Done()
		return nil
	}
	reset := &sparkpodsv1.WatchSnapshotsResponse{Revision: 1, Epoch: epoch, Event: &sparkpodsv1.WatchSnapshotsResponse_Reset_{
		Reset_: &sparkpodsv1.SnapshotReset{
			Reason:    sparkpodsv1.ResetReason_RESET_REASON_INITIAL,
			LastChunk: true,
			Snapshots: []*sparkpodsv1.ExecutorSnapshot{{
				Namespace: "spark-jobs", AppId: "spark-app-1", Revision: 1,
				Executors: []*sparkpodsv1.Executor{exec(1, sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING)},
			}},
		},
	}}
	for _, msg := range []*sparkpodsv1.WatchSnapshotsResponse{reset, change(2,
		exec(1, sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING), exec(2, sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING))} {
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "connection lost")
}

// dialScriptedService serves scriptedService in memory and dials it; stop
// closes both.
func dialScriptedService() (conn *grpc.ClientConn, stop func()) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sparkpodsv1.RegisterSnapshotServiceServer(srv, scriptedService{})
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///scripted",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	return conn, func() {
		_ = conn.Close()
		srv.Stop()
	}
}
