// Package server implements sparkpods.v1.SchedulerService: it validates each
// request, hands it to the application manager, and turns the outcome into
// a response or a gRPC status (status.go is the only place that does).
package server

import (
	"context"
	"errors"
	"log/slog"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/application"
	"github.com/sparkpods/sparkpods/services/internal/access"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// Config is what New needs.
type Config struct {
	// Apps holds the registered applications. Required.
	Apps *application.Manager
	// Logger receives the errors masked from callers; nil is slog.Default().
	Logger *slog.Logger
}

// Server is the SchedulerService implementation.
type Server struct {
	sparkpodsv1.UnimplementedSchedulerServiceServer
	apps *application.Manager
	log  *slog.Logger
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Apps == nil {
		return nil, errors.New("server: an application manager is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{apps: cfg.Apps, log: cfg.Logger}, nil
}

// app validates the application a request names and returns it.
func (s *Server) app(namespace, appID string) (*application.App, error) {
	k, err := validateApp(namespace, appID)
	if err != nil {
		return nil, err
	}
	return s.apps.Get(k)
}

// RegisterApplication registers an application, idempotently.
func (s *Server) RegisterApplication(ctx context.Context, req *sparkpodsv1.RegisterApplicationRequest) (*sparkpodsv1.RegisterApplicationResponse, error) {
	reg, err := validateRegister(req)
	if err != nil {
		return nil, toStatus(s.log, "RegisterApplication", err)
	}
	a, err := s.apps.Register(ctx, reg)
	if err != nil {
		return nil, toStatus(s.log, "RegisterApplication", err)
	}
	return &sparkpodsv1.RegisterApplicationResponse{Application: s.shown(ctx, a.Application())}, nil
}

// UnregisterApplication stops managing an application, deleting its
// executor pods unless deleteOnTermination is false.
func (s *Server) UnregisterApplication(ctx context.Context, req *sparkpodsv1.UnregisterApplicationRequest) (*sparkpodsv1.UnregisterApplicationResponse, error) {
	k, err := validateApp(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "UnregisterApplication", err)
	}
	n, err := s.apps.Unregister(ctx, k)
	if err != nil {
		return nil, toStatus(s.log, "UnregisterApplication", err)
	}
	return &sparkpodsv1.UnregisterApplicationResponse{DeletedPods: int32(n)}, nil
}

// GetApplication returns an application and its allocation state.
func (s *Server) GetApplication(ctx context.Context, req *sparkpodsv1.GetApplicationRequest) (*sparkpodsv1.GetApplicationResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "GetApplication", err)
	}
	return &sparkpodsv1.GetApplicationResponse{Application: s.shown(ctx, a.Application()), Profiles: a.Profiles()}, nil
}

// shown is app as the caller may see it: the trusted sparkpods services
// get the whole configuration; everyone else (a viewer with only "get" on
// the application, too) gets it redacted as Spark's UI shows it, so that
// spark.authenticate.secret and other credentials are never handed out.
func (s *Server) shown(ctx context.Context, app *sparkpodsv1.Application) *sparkpodsv1.Application {
	if id, ok := access.IdentityFrom(ctx); ok && id.Trusted {
		return app
	}
	redacted, err := sparkconf.Conf(app.GetSparkConf()).Redacted()
	if err != nil {
		s.log.Warn("application's redaction pattern is invalid", "namespace", app.GetNamespace(), "app", app.GetAppId(), "err", err)
	}
	app.SparkConf = redacted
	return app
}

// SetExecutorTargets sets per-profile targets.
func (s *Server) SetExecutorTargets(ctx context.Context, req *sparkpodsv1.SetExecutorTargetsRequest) (*sparkpodsv1.SetExecutorTargetsResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "SetExecutorTargets", err)
	}
	targets, err := validateTargets(req.GetTargets())
	if err != nil {
		return nil, toStatus(s.log, "SetExecutorTargets", err)
	}
	if err := a.SetTargets(ctx, targets); err != nil {
		return nil, toStatus(s.log, "SetExecutorTargets", err)
	}
	return &sparkpodsv1.SetExecutorTargetsResponse{Profiles: a.Profiles()}, nil
}

// KillExecutors kills executors after the application's delete grace
// period; it returns at once.
func (s *Server) KillExecutors(ctx context.Context, req *sparkpodsv1.KillExecutorsRequest) (*sparkpodsv1.KillExecutorsResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "KillExecutors", err)
	}
	if err := validateExecutorIDs("executor_ids", req.GetExecutorIds()); err != nil {
		return nil, toStatus(s.log, "KillExecutors", err)
	}
	accepted, err := a.Kill(ctx, req.GetExecutorIds(), a.DeleteGracePeriod())
	if err != nil {
		return nil, toStatus(s.log, "KillExecutors", err)
	}
	return &sparkpodsv1.KillExecutorsResponse{AcceptedExecutorIds: accepted}, nil
}

// DecommissionExecutors labels executors for decommission and kills those
// still running after the grace period; it returns at once.
func (s *Server) DecommissionExecutors(ctx context.Context, req *sparkpodsv1.DecommissionExecutorsRequest) (*sparkpodsv1.DecommissionExecutorsResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "DecommissionExecutors", err)
	}
	if err := validateExecutorIDs("executor_ids", req.GetExecutorIds()); err != nil {
		return nil, toStatus(s.log, "DecommissionExecutors", err)
	}
	grace, set, err := validateGrace(req)
	if err != nil {
		return nil, toStatus(s.log, "DecommissionExecutors", err)
	}
	if !set {
		grace = a.DeleteGracePeriod()
	}
	accepted, err := a.Kill(ctx, req.GetExecutorIds(), grace)
	if err != nil {
		return nil, toStatus(s.log, "DecommissionExecutors", err)
	}
	return &sparkpodsv1.DecommissionExecutorsResponse{AcceptedExecutorIds: accepted}, nil
}

// ReportRegisteredExecutors replaces the registered executor set.
func (s *Server) ReportRegisteredExecutors(_ context.Context, req *sparkpodsv1.ReportRegisteredExecutorsRequest) (*sparkpodsv1.ReportRegisteredExecutorsResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "ReportRegisteredExecutors", err)
	}
	if err := validateRegistered(req.GetExecutors()); err != nil {
		return nil, toStatus(s.log, "ReportRegisteredExecutors", err)
	}
	n := a.ReportRegistered(req.GetExecutors())
	return &sparkpodsv1.ReportRegisteredExecutorsResponse{RegisteredCount: int32(n)}, nil
}

// ListExecutors lists the executors and the allocator's view.
func (s *Server) ListExecutors(_ context.Context, req *sparkpodsv1.ListExecutorsRequest) (*sparkpodsv1.ListExecutorsResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "ListExecutors", err)
	}
	return a.ListExecutors(), nil
}

// IsExecutorDeleted is Spark's isDeleted.
func (s *Server) IsExecutorDeleted(_ context.Context, req *sparkpodsv1.IsExecutorDeletedRequest) (*sparkpodsv1.IsExecutorDeletedResponse, error) {
	a, err := s.app(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return nil, toStatus(s.log, "IsExecutorDeleted", err)
	}
	if err := validateExecutorIDs("executor_id", []int64{req.GetExecutorId()}); err != nil {
		return nil, toStatus(s.log, "IsExecutorDeleted", err)
	}
	return &sparkpodsv1.IsExecutorDeletedResponse{Deleted: a.IsDeleted(req.GetExecutorId())}, nil
}
