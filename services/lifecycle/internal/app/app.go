// Package app is the lifecycle service's composition root: from one Config
// it builds the event store, the runner with its clients of the snapshot,
// scheduler and pod services, and the gRPC server, and runs them together.
package app

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
	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/runner"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/server"
)

// Config is everything the service needs. Listen, RESTConfig, Logger and
// the three addresses are required.
type Config struct {
	// Listen and MetricsListen are the gRPC and metrics addresses.
	Listen, MetricsListen string
	// Limits bound message sizes, unary call durations and the streams
	// one client may hold; zero values take grpcserver's defaults.
	Limits grpcserver.Limits
	// RESTConfig reaches the API server, where events are kept.
	RESTConfig *rest.Config
	// SnapshotAddr, PodManagerAddr and AllocatorAddr are the snapshot
	// service, the pod manager and the scheduler service (the allocator).
	SnapshotAddr, PodManagerAddr, AllocatorAddr string
	Logger                                      *slog.Logger
	// Clock is for tests; nil is the real clock.
	Clock clock.WithTicker
	// Registry receives every metric; nil makes a new one.
	Registry *prometheus.Registry
	// MaxSegmentBytes and MaxUnacknowledged bound the event store; 0 takes
	// the store's defaults.
	MaxSegmentBytes, MaxUnacknowledged int
	// Namespaces are those whose applications the service manages (and whose
	// recorded events it restores); empty means every namespace.
	Namespaces []string
	// Security is the server's TLS and access control and the credentials
	// of the calls to the other three services. The zero value is refused:
	// set the TLS files, or Insecure for development.
	Security grpcserver.SecurityConfig
}

// App is the running service.
type App struct {
	logger   *slog.Logger
	store    *eventstore.Store
	runner   *runner.Runner
	grpc     *grpcserver.Server
	conns    []*grpc.ClientConn
	restored chan struct{}
	stopping chan struct{}
}

// New builds the service. It opens the listeners (so Addr is known) but
// starts nothing until Run.
func New(cfg Config) (*App, error) {
	switch {
	case cfg.RESTConfig == nil || cfg.Logger == nil:
		return nil, errors.New("app: RESTConfig and Logger are required")
	case cfg.SnapshotAddr == "" || cfg.PodManagerAddr == "" || cfg.AllocatorAddr == "":
		return nil, errors.New("app: the snapshot, pod manager and allocator addresses are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	kube, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	security, err := cfg.Security.Build("lifecycle", cfg.RESTConfig, cfg.Registry, cfg.Logger)
	if err != nil {
		return nil, err
	}
	a := &App{logger: cfg.Logger, restored: make(chan struct{}), stopping: make(chan struct{})}
	dial := func(addr string) (*grpc.ClientConn, error) {
		conn, err := grpc.NewClient(addr, security.Dial...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		a.conns = append(a.conns, conn)
		return conn, nil
	}
	snapshotConn, err := dial(cfg.SnapshotAddr)
	if err != nil {
		return nil, err
	}
	podConn, err := dial(cfg.PodManagerAddr)
	if err != nil {
		return nil, a.close(err)
	}
	schedulerConn, err := dial(cfg.AllocatorAddr)
	if err != nil {
		return nil, a.close(err)
	}

	a.store, err = eventstore.New(eventstore.Config{
		ConfigMaps:        eventstore.KubeConfigMaps(kube),
		Clock:             cfg.Clock,
		Logger:            cfg.Logger.With("component", "eventstore"),
		Registerer:        cfg.Registry,
		MaxSegmentBytes:   cfg.MaxSegmentBytes,
		MaxUnacknowledged: cfg.MaxUnacknowledged,
		Namespaces:        cfg.Namespaces,
	})
	if err != nil {
		return nil, a.close(err)
	}
	watcher, err := snapshotwatcher.New(snapshotConn, snapshotwatcher.WithLogger(cfg.Logger.With("component", "snapshotwatcher")))
	if err != nil {
		return nil, a.close(err)
	}
	scheduler := runner.SchedulerClient(sparkpodsv1.NewSchedulerServiceClient(schedulerConn))
	metrics := runner.NewMetrics()
	if err := metrics.Register(cfg.Registry); err != nil {
		return nil, a.close(err)
	}
	a.runner, err = runner.New(runner.Config{
		Snapshots:  watcher,
		Scheduler:  scheduler,
		Pods:       runner.PodClient(sparkpodsv1.NewPodServiceClient(podConn)),
		Store:      a.store,
		Owners:     runner.KubeOwners(kube),
		Clock:      cfg.Clock,
		Logger:     cfg.Logger.With("component", "runner"),
		Metrics:    metrics,
		Namespaces: cfg.Namespaces,
	})
	if err != nil {
		return nil, a.close(err)
	}
	srv, err := server.New(server.Config{
		Events:       a.store,
		Applications: registeredApps{scheduler},
		Ready:        a.restored,
		Stopping:     a.stopping,
		Clock:        cfg.Clock,
		Logger:       cfg.Logger.With("component", "server"),
		Registerer:   cfg.Registry,
	})
	if err != nil {
		return nil, a.close(err)
	}
	a.grpc, err = grpcserver.New(grpcserver.Config{
		Name:          "lifecycle",
		Listen:        cfg.Listen,
		MetricsListen: cfg.MetricsListen,
		Limits:        cfg.Limits,
		Logger:        cfg.Logger,
		Registry:      cfg.Registry,
		TLS:           security.TLS,
		Guard:         security.Guard,
		Register:      srv.Register,
	})
	if err != nil {
		return nil, a.close(err)
	}
	return a, nil
}

func (a *App) close(err error) error {
	for _, c := range a.conns {
		_ = c.Close()
	}
	return err
}

// Addr is the gRPC address.
func (a *App) Addr() string { return a.grpc.Addr() }

// Run serves until ctx is done, then stops gracefully: health turns
// NOT_SERVING, event streams end with Unavailable so clients resume
// elsewhere, and the listeners close. Health turns SERVING once the recorded
// events are restored and the snapshot stream has delivered its first full
// state.
func (a *App) Run(ctx context.Context) error {
	defer func() { _ = a.close(nil) }()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		began := time.Now()
		if err := a.store.Load(ctx); err != nil {
			return err
		}
		a.logger.Info("recorded executor events restored", "took", time.Since(began).Round(time.Millisecond))
		close(a.restored)
		return a.runner.Run(ctx)
	})
	g.Go(func() error { return a.grpc.Run(ctx) })
	g.Go(func() error {
		for _, ready := range []<-chan struct{}{a.restored, a.runner.Synced()} {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil
			}
		}
		a.logger.Info("events restored and snapshot stream synced; serving")
		a.grpc.SetServing(true)
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		close(a.stopping)
		return nil
	})
	return g.Wait()
}

// registeredApps answers the server's question with the scheduler service.
type registeredApps struct{ scheduler runner.Scheduler }

func (r registeredApps) Registered(ctx context.Context, app eventstore.AppKey) (bool, error) {
	_, err := r.scheduler.Application(ctx, app)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, runner.ErrNotManaged):
		return false, nil
	}
	return false, err
}
