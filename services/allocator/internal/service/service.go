// Package service is the allocator's composition root: it builds the whole
// graph (Kubernetes client and record store, snapshot watcher and pod
// manager client, application manager, SchedulerService, gRPC server with
// health, reflection and metrics) from a Config, and runs it.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/application"
	"github.com/sparkpods/sparkpods/services/allocator/internal/server"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
)

// defaultAPITimeout bounds one Kubernetes API call.
const defaultAPITimeout = 30 * time.Second

// Config describes the allocator.
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
	// REST is the Kubernetes client configuration, for the persisted
	// records and driver pod look-ups. Required.
	REST *rest.Config
	// SnapshotAddr is the snapshot service's address. Required.
	SnapshotAddr string
	// PodManagerAddr is the pod manager's address. Required.
	PodManagerAddr string
	// Namespace holds every application's record when set; empty keeps each
	// record in its application's namespace, owned by the driver pod.
	Namespace string
	// LeaderElection lets several replicas run, one leading.
	LeaderElection LeaderElection
	// Security is the server's TLS and access control and the credentials
	// of the calls to the snapshot service and the pod manager. The zero
	// value is refused: set the TLS files, or Insecure for development.
	Security grpcserver.SecurityConfig
}

// Service is a built allocator, ready to Run.
type Service struct {
	grpc     *grpcserver.Server
	apps     *application.Manager
	elector  *elector // nil without leader election
	conns    []*grpc.ClientConn
	logger   *slog.Logger
	snapshot string
}

// New builds the allocator from cfg. Nothing runs until Run; the client
// connections are lazy, so the other services need not be up yet.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.REST == nil:
		return nil, errors.New("allocator: REST is required")
	case cfg.SnapshotAddr == "":
		return nil, errors.New("allocator: --snapshot-addr is required")
	case cfg.PodManagerAddr == "":
		return nil, errors.New("allocator: --podmanager-addr is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	registry := prometheus.NewRegistry()

	rc := rest.CopyConfig(cfg.REST)
	if rc.Timeout == 0 {
		rc.Timeout = defaultAPITimeout
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("allocator: kubernetes client: %w", err)
	}
	records, err := store.New(store.Config{Client: kube, Namespace: cfg.Namespace})
	if err != nil {
		return nil, fmt.Errorf("allocator: %w", err)
	}
	security, err := cfg.Security.Build("allocator", rc, registry, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("allocator: %w", err)
	}
	snapConn, err := grpc.NewClient(cfg.SnapshotAddr, security.Dial...)
	if err != nil {
		return nil, fmt.Errorf("allocator: snapshot service %s: %w", cfg.SnapshotAddr, err)
	}
	podConn, err := grpc.NewClient(cfg.PodManagerAddr, security.Dial...)
	if err != nil {
		_ = snapConn.Close()
		return nil, fmt.Errorf("allocator: pod manager %s: %w", cfg.PodManagerAddr, err)
	}
	s := &Service{conns: []*grpc.ClientConn{snapConn, podConn}, logger: cfg.Logger, snapshot: cfg.SnapshotAddr}
	if err := s.build(cfg, registry, security, kube, records, snapConn, podConn); err != nil {
		s.close()
		return nil, err
	}
	if cfg.LeaderElection.Enabled {
		if s.elector, err = newElector(cfg.LeaderElection, kube, cfg.Logger); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) build(cfg Config, registry *prometheus.Registry, security grpcserver.Security, kube kubernetes.Interface, records *store.Store, snapConn, podConn *grpc.ClientConn) error {
	watcher, err := snapshotwatcher.New(snapConn, snapshotwatcher.WithLogger(cfg.Logger.With("component", "snapshotwatcher")))
	if err != nil {
		return fmt.Errorf("allocator: %w", err)
	}
	metrics, err := application.NewMetrics(registry)
	if err != nil {
		return fmt.Errorf("allocator: metrics: %w", err)
	}
	s.apps, err = application.NewManager(application.Config{
		Kube:      kube,
		Store:     records,
		Pods:      sparkpodsv1.NewPodServiceClient(podConn),
		Snapshots: watcher,
		Metrics:   metrics,
		Clock:     clock.RealClock{},
		Logger:    cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("allocator: %w", err)
	}
	srv, err := server.New(server.Config{Apps: s.apps, Logger: cfg.Logger})
	if err != nil {
		return fmt.Errorf("allocator: %w", err)
	}
	s.grpc, err = grpcserver.New(grpcserver.Config{
		Name: "allocator", Listen: cfg.Listen, MetricsListen: cfg.MetricsListen, Limits: cfg.Limits,
		Logger: cfg.Logger, Registry: registry, TLS: security.TLS, Guard: security.Guard,
		Register: func(g *grpc.Server) { sparkpodsv1.RegisterSchedulerServiceServer(g, srv) },
	})
	if err != nil {
		return fmt.Errorf("allocator: %w", err)
	}
	return nil
}

// Addr is the gRPC address the service listens on.
func (s *Service) Addr() string { return s.grpc.Addr() }

// MetricsAddr is the /metrics address, or "" when disabled.
func (s *Service) MetricsAddr() string { return s.grpc.MetricsAddr() }

// Run serves until ctx ends. Health turns SERVING only once this replica
// leads, every persisted application is restored and the snapshot stream
// has delivered its first full state; until then the scheduler API answers
// Unavailable. A leader that loses its Lease returns an error, so that the
// process exits.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.grpc.Run(ctx) })
	if s.elector != nil {
		g.Go(func() error { return s.elector.run(ctx, s.apps.Run) })
	} else {
		g.Go(func() error { return s.apps.Run(ctx) })
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-s.apps.Ready():
			s.grpc.SetServing(true)
		}
		return nil
	})
	s.logger.Info("allocator starting: restoring applications and waiting for the snapshot stream", "snapshot", s.snapshot)
	return g.Wait()
}

func (s *Service) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}
