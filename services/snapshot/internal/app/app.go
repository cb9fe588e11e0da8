// Package app is the snapshot service's composition root: it builds the
// store, the Kubernetes source, the gRPC server and their metrics from one
// Config, and runs them together.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/server"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/source"
)

// Config is everything the service needs. RESTConfig, Logger and Listen are
// required.
type Config struct {
	// Listen and MetricsListen are the gRPC and metrics addresses.
	Listen, MetricsListen string
	// Limits bound message sizes, unary call durations and the streams
	// one client may hold; zero values take grpcserver's defaults.
	Limits grpcserver.Limits
	// RESTConfig reaches the API server.
	RESTConfig *rest.Config
	Logger     *slog.Logger
	// Clock is for tests; nil means the real clock.
	Clock clock.WithTicker
	// Registry receives every metric; nil makes a new one.
	Registry *prometheus.Registry
	// Namespaces to watch; empty means all.
	Namespaces []string
	// Watch and Poll are Spark's enableApiWatcher and enableApiPolling;
	// PollInterval is apiPollingInterval.
	Watch, Poll  bool
	PollInterval time.Duration
	// Mapping holds the service-wide defaults of the pod → state mapping.
	Mapping snapshotmodel.Mapping
	// HistoryLimit is how many changes the store keeps for resuming
	// watchers; 0 means snapshotmodel.DefaultHistoryLimit.
	HistoryLimit int
	// MaxExecutorsPerMessage bounds one stream message; 0 means
	// server.DefaultMaxExecutorsPerMessage.
	MaxExecutorsPerMessage int
	// Security is the server's TLS and access control. The zero value is
	// refused: set the TLS files, or Insecure for development.
	Security grpcserver.SecurityConfig
}

// App is the running service.
type App struct {
	logger   *slog.Logger
	store    *snapshotmodel.Store
	source   *source.Source
	grpc     *grpcserver.Server
	stopping chan struct{}
}

// New builds the service. It opens the listeners (so Addr is known) but
// starts nothing until Run.
func New(cfg Config) (*App, error) {
	switch {
	case cfg.RESTConfig == nil:
		return nil, errors.New("app: RESTConfig is required")
	case cfg.Logger == nil:
		return nil, errors.New("app: Logger is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}

	// Protobuf is the cheapest encoding for pods, to decode and to send.
	rc := rest.CopyConfig(cfg.RESTConfig)
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}

	security, err := cfg.Security.Build("snapshot", cfg.RESTConfig, cfg.Registry, cfg.Logger)
	if err != nil {
		return nil, err
	}
	store, err := snapshotmodel.NewStore(snapshotmodel.StoreConfig{Clock: cfg.Clock, HistoryLimit: cfg.HistoryLimit})
	if err != nil {
		return nil, err
	}
	src, err := source.New(source.Config{
		Pods:         client.CoreV1(),
		Store:        store,
		Mapping:      cfg.Mapping,
		Namespaces:   cfg.Namespaces,
		Watch:        cfg.Watch,
		Poll:         cfg.Poll,
		PollInterval: cfg.PollInterval,
		Clock:        cfg.Clock,
		Logger:       cfg.Logger.With("component", "source"),
		Registerer:   cfg.Registry,
	})
	if err != nil {
		return nil, err
	}
	stopping := make(chan struct{})
	srv, err := server.New(server.Config{
		Store:                  store,
		Ready:                  src.Synced(),
		Stopping:               stopping,
		Clock:                  cfg.Clock,
		Logger:                 cfg.Logger.With("component", "server"),
		Registerer:             cfg.Registry,
		MaxExecutorsPerMessage: cfg.MaxExecutorsPerMessage,
	})
	if err != nil {
		return nil, err
	}
	g, err := grpcserver.New(grpcserver.Config{
		Name:          "snapshot",
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
		return nil, err
	}
	cfg.Logger.Info("snapshot service configured", "epoch", store.Epoch(), "namespaces", cfg.Namespaces,
		"watch", cfg.Watch, "poll", cfg.Poll, "pollInterval", cfg.PollInterval)
	return &App{logger: cfg.Logger, store: store, source: src, grpc: g, stopping: stopping}, nil
}

// Addr is the gRPC address.
func (a *App) Addr() string { return a.grpc.Addr() }

// MetricsAddr is the metrics address, "" when there is none.
func (a *App) MetricsAddr() string { return a.grpc.MetricsAddr() }

// Store is the service's store, for in-process measurements.
func (a *App) Store() *snapshotmodel.Store { return a.store }

// Run serves until ctx is done, then stops gracefully: health turns
// NOT_SERVING, watch streams end with Unavailable so clients reconnect
// elsewhere, and the listeners close. Health turns SERVING once the first
// list of executor pods is in the store.
func (a *App) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.source.Run(ctx) })
	g.Go(func() error { return a.grpc.Run(ctx) })
	g.Go(func() error {
		select {
		case <-a.source.Synced():
			a.logger.Info("executor pods listed; serving")
			a.grpc.SetServing(true)
		case <-ctx.Done():
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		close(a.stopping)
		return nil
	})
	return g.Wait()
}
