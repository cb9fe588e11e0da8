// Package grpcserver is the server plumbing every sparkpods service shares:
// a gRPC server with health checking, reflection, Prometheus metrics,
// structured request logs and panic recovery, plus an HTTP listener for
// /metrics and pprof, all stopped gracefully when the caller's context ends.
package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/services/internal/access"
)

// Config describes a Server. Name, Listen and Register are required.
type Config struct {
	// Name identifies the service in logs, for example "snapshot".
	Name string
	// Listen is the gRPC address, host:port; port 0 picks a free port.
	Listen string
	// MetricsListen is the address of the HTTP listener serving /metrics and
	// /debug/pprof; empty disables it.
	MetricsListen string
	// Logger receives request logs; nil uses slog.Default().
	Logger *slog.Logger
	// Registry receives the gRPC and process metrics; the service registers
	// its own metrics on it too. Nil creates a new registry.
	Registry *prometheus.Registry
	// Register adds the service implementations to the gRPC server.
	Register func(*grpc.Server)
	// ShutdownTimeout bounds the graceful stop; streams still open after it
	// are cut. Zero means 10 seconds.
	ShutdownTimeout time.Duration
	// TLS, when set, is the server's TLS configuration; nil serves
	// plaintext (development only).
	TLS *tls.Config
	// Guard authenticates and authorizes every call; nil lets every call
	// through (only with plaintext development setups).
	Guard *access.Guard
	// Limits bound what one call and one client may take.
	Limits Limits
}

// Limits bound the resources calls and clients may hold.
type Limits struct {
	// MaxRecvMessageBytes bounds incoming messages; zero means 4 MiB.
	MaxRecvMessageBytes int
	// MaxSendMessageBytes bounds outgoing messages; zero means 16 MiB.
	// Snapshot resets are sent in chunks well below it.
	MaxSendMessageBytes int
	// MaxUnaryDuration is the longest a unary call may run; a longer or
	// missing client deadline is cut to it. Zero means 60 seconds.
	MaxUnaryDuration time.Duration
	// MaxStreamsPerClient bounds the streams one client (identity, or IP
	// address without authentication) holds open; zero means 100.
	MaxStreamsPerClient int
	// MaxConcurrentStreams bounds the streams on one HTTP/2 connection;
	// zero means 1000.
	MaxConcurrentStreams uint32
}

// The defaults of Limits, shared by the flags and by zero-valued fields.
const (
	DefaultMaxRecvMessageBytes  = 4 << 20
	DefaultMaxSendMessageBytes  = 16 << 20
	DefaultMaxUnaryDuration     = time.Minute
	DefaultMaxStreamsPerClient  = 100
	DefaultMaxConcurrentStreams = 1000
)

func (l *Limits) defaults() {
	if l.MaxRecvMessageBytes == 0 {
		l.MaxRecvMessageBytes = DefaultMaxRecvMessageBytes
	}
	if l.MaxSendMessageBytes == 0 {
		l.MaxSendMessageBytes = DefaultMaxSendMessageBytes
	}
	if l.MaxUnaryDuration == 0 {
		l.MaxUnaryDuration = DefaultMaxUnaryDuration
	}
	if l.MaxStreamsPerClient == 0 {
		l.MaxStreamsPerClient = DefaultMaxStreamsPerClient
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
}

// Server is a gRPC server and its metrics listener. Construct it with New and
// run it with Run.
type Server struct {
	name            string
	logger          *slog.Logger
	registry        *prometheus.Registry
	grpc            *grpc.Server
	health          *health.Server
	listener        net.Listener
	metrics         *http.Server
	metricsListener net.Listener
	shutdownTimeout time.Duration
	tls             bool
}

// New validates cfg, opens the listeners (so Addr is known before Run) and
// builds the server. Every service starts NOT_SERVING; call SetServing once
// it is ready to answer.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("grpcserver: Name is required")
	}
	if cfg.Listen == "" {
		return nil, errors.New("grpcserver: Listen is required")
	}
	if cfg.Register == nil {
		return nil, errors.New("grpcserver: Register is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	cfg.Limits.defaults()

	serverMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
	))
	if err := cfg.Registry.Register(serverMetrics); err != nil {
		return nil, fmt.Errorf("grpcserver: register gRPC metrics: %w", err)
	}
	// A caller may pass a registry that already has the process collectors.
	_ = cfg.Registry.Register(collectors.NewGoCollector())
	_ = cfg.Registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	logger := cfg.Logger.With("service", cfg.Name)
	recoveryOpt := recovery.WithRecoveryHandler(func(p any) error {
		logger.Error("panic in gRPC handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.Canceled, codes.NotFound, codes.InvalidArgument, codes.AlreadyExists:
				return logging.LevelDebug
			case codes.Unknown, codes.Internal, codes.DataLoss, codes.Unimplemented:
				return logging.LevelError
			default:
				return logging.LevelWarn
			}
		}),
	}

	// Interceptor order: metrics outermost, then logging, then recovery so a
	// panic anywhere below is turned into an Internal status that is logged
	// and counted; then the unary deadline, so that it bounds the access
	// check's TokenReview and SubjectAccessReview too; then access (refusals
	// are logged and counted too), and the stream limit last, so a stream
	// is charged to an authenticated identity.
	unary := []grpc.UnaryServerInterceptor{
		serverMetrics.UnaryServerInterceptor(),
		logging.UnaryServerInterceptor(slogAdapter(logger), logOpts...),
		recovery.UnaryServerInterceptor(recoveryOpt),
		unaryDeadline(cfg.Limits.MaxUnaryDuration),
	}
	stream := []grpc.StreamServerInterceptor{
		serverMetrics.StreamServerInterceptor(),
		logging.StreamServerInterceptor(slogAdapter(logger), logOpts...),
		recovery.StreamServerInterceptor(recoveryOpt),
	}
	if cfg.Guard != nil {
		unary = append(unary, cfg.Guard.UnaryInterceptor())
		stream = append(stream, cfg.Guard.StreamInterceptor())
	}
	stream = append(stream, newStreamLimiter(cfg.Limits.MaxStreamsPerClient).interceptor())
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.Limits.MaxRecvMessageBytes),
		grpc.MaxSendMsgSize(cfg.Limits.MaxSendMessageBytes),
		grpc.MaxConcurrentStreams(cfg.Limits.MaxConcurrentStreams),
		// Long-lived watch streams: let clients ping every 10s, and find dead
		// peers within a minute.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	srv := grpc.NewServer(opts...)
	cfg.Register(srv)
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	for name := range srv.GetServiceInfo() {
		healthServer.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(srv, healthServer)
	reflection.Register(srv)
	serverMetrics.InitializeMetrics(srv)

	s := &Server{
		name:            cfg.Name,
		logger:          logger,
		registry:        cfg.Registry,
		grpc:            srv,
		health:          healthServer,
		shutdownTimeout: cfg.ShutdownTimeout,
		tls:             cfg.TLS != nil,
	}
	var err error
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("grpcserver: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.MetricsListen != "" {
		if s.metricsListener, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			_ = s.listener.Close()
			return nil, fmt.Errorf("grpcserver: metrics listen on %s: %w", cfg.MetricsListen, err)
		}
		s.metrics = &http.Server{Handler: s.httpMux(cfg.Registry), ReadHeaderTimeout: 10 * time.Second}
	}
	return s, nil
}

// httpMux serves /metrics, pprof, and the plain HTTP probes /healthz (the
// process is alive) and /readyz (the gRPC health service says SERVING):
// kubelet's gRPC probes cannot speak TLS, so deployments probe these.
func (s *Server) httpMux(registry *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Addr is the address the gRPC server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// MetricsAddr is the address of the metrics listener, or "" when disabled.
func (s *Server) MetricsAddr() string {
	if s.metricsListener == nil {
		return ""
	}
	return s.metricsListener.Addr().String()
}

// Registry is where the service registers its own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// SetServing marks every service on the server SERVING (or NOT_SERVING) in
// the standard health service.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		if name == healthpb.Health_ServiceDesc.ServiceName {
			continue
		}
		s.health.SetServingStatus(name, st)
	}
}

// Run serves until ctx is done, then stops gracefully: health turns
// NOT_SERVING, new calls are refused, and open calls get ShutdownTimeout to
// finish before they are cut. It returns nil after a stop caused by ctx.
func (s *Server) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	s.logger.Info("serving gRPC", "addr", s.Addr(), "metrics", s.MetricsAddr(), "tls", s.tls)
	g.Go(func() error {
		if err := s.grpc.Serve(s.listener); err != nil {
			return fmt.Errorf("grpc serve: %w", err)
		}
		return nil
	})
	if s.metrics != nil {
		g.Go(func() error {
			if err := s.metrics.Serve(s.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics serve: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		s.stop()
		return nil
	})
	return g.Wait()
}

func (s *Server) stop() {
	s.logger.Info("stopping gRPC server")
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.logger.Warn("graceful stop timed out; closing open streams", "timeout", s.shutdownTimeout)
		s.grpc.Stop()
		<-done
	}
	if s.metrics != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.metrics.Shutdown(shutdownCtx)
	}
}

// slogAdapter lets the logging interceptor write through slog.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
