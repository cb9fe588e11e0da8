// Package snapshottest helps the snapshot service's tests that run against
// the local control plane: it builds executor pods the way Spark does and
// runs the whole service in the test process. Only tests import it.
package snapshottest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/app"
)

// kwok's annotations (deploy/local/controlplane/kwok.yaml).
const (
	HoldPending = "sparkpods.io/hold-pending"
	ExitCode    = "sparkpods.io/exit-code"
	RunDuration = "sparkpods.io/run-duration"
	ExitReason  = "sparkpods.io/exit-reason"
)

// ExecutorPod is executor id of application appID as Spark names and labels
// it, with the given annotations (kwok's, to choose its fate).
func ExecutorPod(namespace, appID string, id int64, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      fmt.Sprintf("%s-exec-%d", appID, id),
			Labels: map[string]string{
				snapshotmodel.LabelAppID:             appID,
				snapshotmodel.LabelRole:              snapshotmodel.RoleExecutor,
				snapshotmodel.LabelExecutorID:        strconv.FormatInt(id, 10),
				snapshotmodel.LabelResourceProfileID: "0",
			},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:  snapshotmodel.DefaultExecutorContainerName,
				Image: "apache/spark:4.0.0",
				Args:  []string{"executor"},
			}},
		},
	}
}

// Service is a snapshot service running inside the test process.
type Service struct {
	App      *app.App
	Conn     *grpc.ClientConn
	Client   sparkpodsv1.SnapshotServiceClient
	Registry *prometheus.Registry
}

// Start runs the snapshot service against the API server rc reaches, on
// loopback ports, until the test ends, and returns once its health check
// says SERVING. configure may adjust the configuration first.
func Start(t testing.TB, rc *rest.Config, configure func(*app.Config)) *Service {
	t.Helper()
	cfg := app.Config{
		Listen:        "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		RESTConfig:    rc,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registry:      prometheus.NewRegistry(),
		Watch:         true,
		Poll:          true,
		PollInterval:  30 * time.Second,
		Mapping:       snapshotmodel.Mapping{CheckAllContainers: true},
		// These tests are about pods and streams; access control is
		// tested with the services' own processes over mutual TLS.
		Security: grpcserver.SecurityConfig{Insecure: true},
	}
	if configure != nil {
		configure(&cfg)
	}
	a, err := app.New(cfg)
	if err != nil {
		t.Fatalf("start snapshot service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := Dial(a.Addr())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("snapshot service: %v", err)
		}
	})
	WaitServing(t, conn)
	return &Service{App: a, Conn: conn, Client: sparkpodsv1.NewSnapshotServiceClient(conn), Registry: cfg.Registry}
}

// Dial connects to a snapshot service without TLS.
func Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
}

// WaitServing polls the standard health service until the snapshot service
// reports SERVING.
func WaitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	health := healthpb.NewHealthClient(conn)
	Eventually(t, time.Minute, "the snapshot service to report SERVING", func(ctx context.Context) bool {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: sparkpodsv1.SnapshotService_ServiceDesc.ServiceName})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	})
	if err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// testWriter sends the service's logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
