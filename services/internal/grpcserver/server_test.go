package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/access"
)

// stuckTokens is a TokenReview that never answers: it waits for its
// context, as a request to an unreachable API server does.
type stuckTokens struct{}

func (stuckTokens) Create(ctx context.Context, _ *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type schedulerStub struct {
	sparkpodsv1.UnimplementedSchedulerServiceServer
}

// startServer runs a Server built from cfg until the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Name, cfg.Listen = "test", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

// TestUnaryDeadlineBoundsAccessCheck: a TokenReview that hangs ends at
// MaxUnaryDuration, not at the caller's much later deadline.
func TestUnaryDeadlineBoundsAccessCheck(t *testing.T) {
	guard, err := access.New(access.Config{Service: "test", Rules: access.Rules, Tokens: stuckTokens{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	const maxUnary = 200 * time.Millisecond
	srv := startServer(t, Config{
		Register: func(s *grpc.Server) { sparkpodsv1.RegisterSchedulerServiceServer(s, schedulerStub{}) },
		Guard:    guard,
		Limits:   Limits{MaxUnaryDuration: maxUnary},
	})
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer some-token")
	start := time.Now()
	_, err = sparkpodsv1.NewSchedulerServiceClient(conn).GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: "a", AppId: "app"})
	if code := status.Code(err); code != codes.Unavailable {
		t.Fatalf("call with a stuck TokenReview: %v, want Unavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Fatalf("the call took %v; MaxUnaryDuration is %v", elapsed, maxUnary)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the caller's own deadline ended the call")
	}
}
