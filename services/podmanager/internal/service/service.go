// Package service is the podmanager's composition root: it builds the whole
// graph (Kubernetes client, fair queue and rate limiter, PodService, gRPC
// server with health, reflection and metrics) from a Config, and runs it.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/fairqueue"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/kubepods"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/server"
)

// Defaults sized for scale-up speed: Spark itself creates pods one POST at a
// time, and client-go's default budget is 5 requests per second.
const (
	DefaultQPS         = 500
	DefaultBurst       = 1000
	DefaultConcurrency = 32
	// defaultAPITimeout bounds one API call when the caller set no deadline.
	defaultAPITimeout = 30 * time.Second
)

// Config describes the podmanager.
type Config struct {
	// Listen is the gRPC address. Required.
	Listen string
	// MetricsListen is the /metrics and pprof address; empty disables it.
	MetricsListen string
	// Limits bound message sizes, unary call durations and the streams
	// one client may hold; zero values take grpcserver's defaults.
	Limits grpcserver.Limits
	// Logger receives the logs; nil uses slog.Default().
	Logger *slog.Logger
	// REST is the Kubernetes client configuration. Required. Its own rate
	// limit is replaced: QPS and Burst below are the podmanager's budget.
	REST *rest.Config
	// QPS and Burst are the client-side rate limit on Kubernetes API calls,
	// shared fairly by all applications. QPS ≤ 0 means no limit.
	QPS   float64
	Burst int
	// Concurrency is how many API calls run at once.
	Concurrency int
	// RequestCacheSize and RequestCacheTTL bound the request-id cache; zero
	// means the server's defaults.
	RequestCacheSize int
	RequestCacheTTL  time.Duration
	// Security is the server's TLS and access control; PodService accepts
	// only its trusted callers. The zero value is refused: set the TLS
	// files, or Insecure for development.
	Security grpcserver.SecurityConfig
}

// Service is a built podmanager, ready to Run.
type Service struct {
	grpc  *grpcserver.Server
	queue *fairqueue.Queue
}

// New builds the podmanager from cfg. Nothing runs until Run.
func New(cfg Config) (*Service, error) {
	if cfg.REST == nil {
		return nil, errors.New("podmanager: REST is required")
	}
	if cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("podmanager: --create-concurrency must be positive, got %d", cfg.Concurrency)
	}
	if cfg.QPS > 0 && cfg.Burst <= 0 {
		return nil, fmt.Errorf("podmanager: --kube-burst must be positive, got %d", cfg.Burst)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	registry := prometheus.NewRegistry()

	rc := rest.CopyConfig(cfg.REST)
	// The fair queue holds the budget; a second limiter in the client would
	// only add an unfair wait behind it.
	rc.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	if rc.Timeout == 0 {
		rc.Timeout = defaultAPITimeout
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("podmanager: kubernetes client: %w", err)
	}
	security, err := cfg.Security.Build("podmanager", rc, registry, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("podmanager: %w", err)
	}
	pods, err := kubepods.New(kubepods.Config{Kube: kube, Registerer: registry})
	if err != nil {
		return nil, fmt.Errorf("podmanager: %w", err)
	}
	qm, err := newQueueMetrics(registry)
	if err != nil {
		return nil, fmt.Errorf("podmanager: metrics: %w", err)
	}
	var limiter fairqueue.Limiter
	if cfg.QPS > 0 {
		limiter = rate.NewLimiter(rate.Limit(cfg.QPS), cfg.Burst)
	}
	queue, err := fairqueue.New(fairqueue.Config{Workers: cfg.Concurrency, Limiter: limiter, Observer: qm.observer()})
	if err != nil {
		return nil, fmt.Errorf("podmanager: %w", err)
	}
	srv, err := server.New(server.Config{
		Pods: pods, Queue: queue, Logger: cfg.Logger, Registerer: registry,
		RequestCacheSize: cfg.RequestCacheSize, RequestCacheTTL: cfg.RequestCacheTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("podmanager: %w", err)
	}
	g, err := grpcserver.New(grpcserver.Config{
		Name: "podmanager", Listen: cfg.Listen, MetricsListen: cfg.MetricsListen, Limits: cfg.Limits,
		Logger: cfg.Logger, Registry: registry, TLS: security.TLS, Guard: security.Guard,
		Register: func(s *grpc.Server) { sparkpodsv1.RegisterPodServiceServer(s, srv) },
	})
	if err != nil {
		return nil, fmt.Errorf("podmanager: %w", err)
	}
	cfg.Logger.Info("podmanager configured", "qps", limitString(cfg.QPS), "burst", cfg.Burst, "concurrency", cfg.Concurrency)
	return &Service{grpc: g, queue: queue}, nil
}

func limitString(qps float64) string {
	if qps <= 0 || math.IsInf(qps, 1) {
		return "unlimited"
	}
	return fmt.Sprint(qps)
}

// Addr is the gRPC address the service listens on.
func (s *Service) Addr() string { return s.grpc.Addr() }

// MetricsAddr is the /metrics address, or "" when disabled.
func (s *Service) MetricsAddr() string { return s.grpc.MetricsAddr() }

// Run serves until ctx ends, then stops gracefully: the gRPC server first,
// letting accepted calls finish their API calls, then the queue's workers.
func (s *Service) Run(ctx context.Context) error {
	// The queue outlives ctx until the server has stopped: requests the
	// server accepted are still served during its graceful stop.
	queueCtx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	defer stopQueue()
	var g errgroup.Group
	g.Go(func() error {
		defer stopQueue()
		return s.grpc.Run(ctx)
	})
	g.Go(func() error { return s.queue.Run(queueCtx) })
	s.grpc.SetServing(true)
	return g.Wait()
}
