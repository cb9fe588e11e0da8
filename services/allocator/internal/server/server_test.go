package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/allocatortest"
	"github.com/sparkpods/sparkpods/services/allocator/internal/application"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
)

const (
	ns  = "spark"
	app = "spark-app-1"
)

// fixture is a real SchedulerService on bufconn, backed by a real
// application manager with fake dependencies.
type fixture struct {
	client sparkpodsv1.SchedulerServiceClient
	pods   *allocatortest.PodService
	src    *allocatortest.Source
	ctx    context.Context
}

func newFixture(t *testing.T, synced bool) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kube := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "driver", Namespace: ns, UID: "uid-1"}})
	records, err := store.New(store.Config{Client: kube})
	if err != nil {
		t.Fatal(err)
	}
	pods, podClient := allocatortest.StartPodService(t)
	src := allocatortest.NewSource()
	metrics, err := application.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	mgr, err := application.NewManager(application.Config{
		Kube: kube, Store: records, Pods: podClient, Snapshots: src, Metrics: metrics,
		Clock: testingclock.NewFakeClock(time.Now()), Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Apps: mgr, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	sparkpodsv1.RegisterSchedulerServiceServer(gs, srv)
	var g errgroup.Group
	g.Go(func() error { return gs.Serve(lis) })
	g.Go(func() error { return mgr.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		gs.Stop()
		_ = g.Wait()
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f := &fixture{client: sparkpodsv1.NewSchedulerServiceClient(conn), pods: pods, src: src, ctx: ctx}
	if synced {
		if err := src.Send(ctx, snapshotwatcher.Update{Reset: true, Revision: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func registerRequest() *sparkpodsv1.RegisterApplicationRequest {
	return &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: app, DriverPodName: "driver",
		SparkConf: map[string]string{
			"spark.kubernetes.container.image": "spark:4.2.0",
			"spark.driver.host":                "driver-svc.spark.svc",
			"spark.executor.instances":         "0",
		},
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
	}
}

func wantCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("got %v, want %v containing %q", err, code, contains)
	}
}

func TestUnavailableUntilSynced(t *testing.T) {
	f := newFixture(t, false)
	_, err := f.client.RegisterApplication(f.ctx, registerRequest())
	wantCode(t, err, codes.Unavailable, "starting")
}

func TestSchedulerAPI(t *testing.T) {
	f := newFixture(t, true)
	ctx := f.ctx
	resp, err := f.client.RegisterApplication(ctx, registerRequest())
	if err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
	if resp.GetApplication().GetRegisterTime() == nil || resp.GetApplication().GetAppId() != app {
		t.Fatalf("registration %v", resp.GetApplication())
	}
	if _, err := f.client.RegisterApplication(ctx, registerRequest()); err != nil {
		t.Fatalf("RegisterApplication again: %v", err)
	}
	changed := registerRequest()
	changed.SparkConf["spark.kubernetes.allocation.batch.size"] = "5"
	_, err = f.client.RegisterApplication(ctx, changed)
	wantCode(t, err, codes.FailedPrecondition, "different configuration")

	set, err := f.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: app,
		Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 0, TotalExecutors: 2}, {ResourceProfileId: 1, TotalExecutors: 1}}})
	if err != nil {
		t.Fatalf("SetExecutorTargets: %v", err)
	}
	if len(set.GetProfiles()) != 2 || set.GetProfiles()[0].GetTarget() != 2 || set.GetProfiles()[1].GetTarget() != 1 {
		t.Fatalf("profiles after SetExecutorTargets: %v", set.GetProfiles())
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.pods.Pods()) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("pods %v, want 3", f.pods.Pods())
		}
		runtimeYield()
	}
	_, err = f.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: app,
		Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 4, TotalExecutors: 1}}})
	wantCode(t, err, codes.InvalidArgument, "resource profile 4 is not registered")

	got, err := f.client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: app})
	if err != nil || len(got.GetProfiles()) != 2 {
		t.Fatalf("GetApplication: %v, %v", got, err)
	}
	if _, err := f.client.ReportRegisteredExecutors(ctx, &sparkpodsv1.ReportRegisteredExecutorsRequest{Namespace: ns, AppId: app,
		Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 1}}}); err != nil {
		t.Fatalf("ReportRegisteredExecutors: %v", err)
	}
	list, err := f.client.ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: ns, AppId: app})
	if err != nil || len(list.GetRegisteredExecutors()) != 1 {
		t.Fatalf("ListExecutors: %v, %v", list, err)
	}
	kill, err := f.client.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1, 500}})
	if err != nil || len(kill.GetAcceptedExecutorIds()) != 1 {
		t.Fatalf("KillExecutors: %v, %v", kill, err)
	}
	dec, err := f.client.DecommissionExecutors(ctx, &sparkpodsv1.DecommissionExecutorsRequest{Namespace: ns, AppId: app,
		ExecutorIds: []int64{1}, GracePeriod: durationpb.New(time.Minute)})
	if err != nil || len(dec.GetAcceptedExecutorIds()) != 1 {
		t.Fatalf("DecommissionExecutors: %v, %v", dec, err)
	}
	del, err := f.client.IsExecutorDeleted(ctx, &sparkpodsv1.IsExecutorDeletedRequest{Namespace: ns, AppId: app, ExecutorId: 1})
	if err != nil || del.GetDeleted() {
		t.Fatalf("IsExecutorDeleted: %v, %v", del, err)
	}
	un, err := f.client.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{Namespace: ns, AppId: app})
	if err != nil || un.GetDeletedPods() != 3 {
		t.Fatalf("UnregisterApplication: %v, %v", un, err)
	}
	_, err = f.client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: app})
	wantCode(t, err, codes.NotFound, "not registered")
}

func TestRequestErrors(t *testing.T) {
	f := newFixture(t, true)
	ctx := f.ctx
	bad := func(mutate func(*sparkpodsv1.RegisterApplicationRequest)) *sparkpodsv1.RegisterApplicationRequest {
		r := registerRequest()
		mutate(r)
		return r
	}
	tests := []struct {
		name     string
		call     func() error
		code     codes.Code
		contains string
	}{
		{"no namespace", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) { r.Namespace = "" }))
			return err
		}, codes.InvalidArgument, "namespace"},
		{"app id not a label", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) { r.AppId = "Spark_App" }))
			return err
		}, codes.InvalidArgument, "app_id"},
		{"batch delay too small", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) {
				r.SparkConf["spark.kubernetes.allocation.batch.delay"] = "50ms"
			}))
			return err
		}, codes.InvalidArgument, "spark.kubernetes.allocation.batch.delay"},
		{"bad instances", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) {
				r.SparkConf["spark.executor.instances"] = "-1"
			}))
			return err
		}, codes.InvalidArgument, "spark.executor.instances"},
		{"no image", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) {
				delete(r.SparkConf, "spark.kubernetes.container.image")
			}))
			return err
		}, codes.InvalidArgument, "spark.kubernetes.executor.container.image"},
		{"namespace mismatch", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) {
				r.SparkConf["spark.kubernetes.namespace"] = "other"
			}))
			return err
		}, codes.InvalidArgument, "spark.kubernetes.namespace"},
		{"duplicate profile", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) {
				r.ResourceProfiles = append(r.ResourceProfiles, &sparkpodsv1.ResourceProfile{Id: 1})
			}))
			return err
		}, codes.InvalidArgument, "listed twice"},
		{"missing driver pod", func() error {
			_, err := f.client.RegisterApplication(ctx, bad(func(r *sparkpodsv1.RegisterApplicationRequest) { r.DriverPodName = "gone" }))
			return err
		}, codes.FailedPrecondition, "No pod was found named gone"},
		{"unknown application", func() error {
			_, err := f.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: "nope"})
			return err
		}, codes.NotFound, "not registered"},
		{"negative target", func() error {
			_, err := f.client.RegisterApplication(ctx, registerRequest())
			if err != nil {
				return err
			}
			_, err = f.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: app,
				Targets: []*sparkpodsv1.ExecutorTarget{{TotalExecutors: -1}}})
			return err
		}, codes.InvalidArgument, "total_executors"},
		{"absurd target", func() error {
			_, err := f.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: app,
				Targets: []*sparkpodsv1.ExecutorTarget{{TotalExecutors: 1 << 30}}})
			return err
		}, codes.InvalidArgument, "total_executors"},
		{"bad executor id", func() error {
			_, err := f.client.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{0}})
			return err
		}, codes.InvalidArgument, "executor_ids"},
		{"negative grace", func() error {
			_, err := f.client.DecommissionExecutors(ctx, &sparkpodsv1.DecommissionExecutorsRequest{Namespace: ns, AppId: app,
				ExecutorIds: []int64{1}, GracePeriod: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "grace_period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), tt.code, tt.contains) })
	}
}

func TestToStatusMasksDependencies(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	secret := errors.New(`pods "x" is forbidden: User "system:serviceaccount:spark:allocator" cannot get resource`)
	tests := []struct {
		err  error
		code codes.Code
	}{
		{&application.DependencyError{Service: "kubernetes", Op: "get the driver pod", Err: secret}, codes.Unavailable},
		{fmt.Errorf("wrapped: %w", secret), codes.Internal},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{application.ErrNotFound, codes.NotFound},
	}
	for _, tt := range tests {
		st, _ := status.FromError(toStatus(log, "Test", tt.err))
		if st.Code() != tt.code {
			t.Errorf("toStatus(%v) = %v, want %v", tt.err, st.Code(), tt.code)
		}
		if strings.Contains(st.Message(), "serviceaccount") {
			t.Errorf("toStatus(%v) leaks the cause: %q", tt.err, st.Message())
		}
	}
}

// runtimeYield waits a little without time.Sleep, for polling loops.
func runtimeYield() {
	<-time.After(time.Millisecond)
}
