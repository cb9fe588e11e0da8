// Package server implements sparkpods.v1.LifecycleService over the event
// store: it streams, lists and acknowledges each application's recorded
// executor events. It never produces events; the runner does.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

// Events is the event store as the server reads and acknowledges it.
type Events interface {
	Read(app eventstore.AppKey, after int64, limit int) eventstore.Page
	Acknowledge(ctx context.Context, app eventstore.AppKey, seq int64) (int64, error)
}

// Applications tells whether an application with no recorded events is one
// the service manages (registered with the scheduler service), so that a
// mistyped application id is NotFound rather than a silent, empty stream.
type Applications interface {
	// Registered reports whether the application is registered; an error
	// means the answer is unknown.
	Registered(ctx context.Context, app eventstore.AppKey) (bool, error)
}

// Config configures a Server. Events and Applications are required.
type Config struct {
	Events       Events
	Applications Applications
	// Ready is closed once the store is restored; until then calls are
	// Unavailable. Nil means ready.
	Ready <-chan struct{}
	// Stopping is closed when the service shuts down; open streams then end
	// with Unavailable so clients resume elsewhere. Nil never closes.
	Stopping <-chan struct{}
	// Clock ticks heartbeats and stamps them; nil is the real clock.
	Clock      clock.WithTicker
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Server implements sparkpodsv1.LifecycleServiceServer.
type Server struct {
	sparkpodsv1.UnimplementedLifecycleServiceServer
	events   Events
	apps     Applications
	ready    <-chan struct{}
	stopping <-chan struct{}
	clock    clock.WithTicker
	logger   *slog.Logger
	watchers prometheus.Gauge
}

// replayPage is how many recorded events a stream reads at a time.
const replayPage = 500

// New validates conf and returns a Server.
func New(conf Config) (*Server, error) {
	if conf.Events == nil || conf.Applications == nil {
		return nil, errors.New("server: Events and Applications are required")
	}
	if conf.Ready == nil {
		ready := make(chan struct{})
		close(ready)
		conf.Ready = ready
	}
	if conf.Clock == nil {
		conf.Clock = clock.RealClock{}
	}
	if conf.Logger == nil {
		conf.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		events: conf.Events, apps: conf.Applications, ready: conf.Ready, stopping: conf.Stopping,
		clock: conf.Clock, logger: conf.Logger,
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sparkpods", Subsystem: "lifecycle", Name: "event_watchers",
			Help: "Open WatchExecutorEvents streams.",
		}),
	}
	if conf.Registerer != nil {
		if err := conf.Registerer.Register(s.watchers); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { sparkpodsv1.RegisterLifecycleServiceServer(g, s) }

func (s *Server) checkReady() error {
	select {
	case <-s.ready:
		return nil
	default:
		return errNotReady
	}
}

// known checks that app exists: it has recorded events, or it is registered.
func (s *Server) known(ctx context.Context, app eventstore.AppKey, page eventstore.Page) error {
	if page.Last > 0 {
		return nil
	}
	ok, err := s.apps.Registered(ctx, app)
	if err != nil {
		return fmt.Errorf("%w: look up %s: %w", errUnavailable, app, err)
	}
	if !ok {
		return &notFoundError{app: app}
	}
	return nil
}

// WatchExecutorEvents implements sparkpodsv1.LifecycleServiceServer.
func (s *Server) WatchExecutorEvents(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
	ctx := stream.Context()
	return s.toStatus(ctx, s.watch(ctx, req, stream))
}

func (s *Server) watch(ctx context.Context, req *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
	w, err := validateWatch(req)
	if err != nil {
		return err
	}
	if err := s.checkReady(); err != nil {
		return err
	}
	page := s.events.Read(w.app, w.after, replayPage)
	if err := s.known(ctx, w.app, page); err != nil {
		return err
	}
	if w.after > page.Last {
		return &outOfRangeError{field: "after_sequence", requested: w.after, last: page.Last, application: w.app}
	}
	s.watchers.Inc()
	defer s.watchers.Dec()

	ticker := s.clock.NewTicker(w.heartbeat)
	defer ticker.Stop()
	cursor := w.after
	// The first heartbeat follows the replay at once, so a client learns the
	// last sequence without waiting a whole interval.
	replayed := false
	heartbeatDue := false
	for {
		for _, ev := range page.Events {
			if err := stream.Send(&sparkpodsv1.WatchExecutorEventsResponse{
				Message: &sparkpodsv1.WatchExecutorEventsResponse_Event{Event: ev},
			}); err != nil {
				return err
			}
			cursor = ev.GetSequence()
			heartbeatDue = false
		}
		if len(page.Events) == replayPage {
			page = s.events.Read(w.app, cursor, replayPage)
			continue
		}
		if !replayed || heartbeatDue {
			replayed = true
			if err := stream.Send(&sparkpodsv1.WatchExecutorEventsResponse{
				Message: &sparkpodsv1.WatchExecutorEventsResponse_Heartbeat{Heartbeat: &sparkpodsv1.EventsHeartbeat{
					Time:         timestamppb.New(s.clock.Now()),
					LastSequence: page.Last,
				}},
			}); err != nil {
				return err
			}
			heartbeatDue = false
		}
		select {
		case <-page.Changed:
		case <-ticker.C():
			heartbeatDue = true
		case <-s.stopping:
			return errStopping
		case <-ctx.Done():
			return ctx.Err()
		}
		page = s.events.Read(w.app, cursor, replayPage)
	}
}

// ListExecutorEvents implements sparkpodsv1.LifecycleServiceServer.
func (s *Server) ListExecutorEvents(ctx context.Context, req *sparkpodsv1.ListExecutorEventsRequest) (*sparkpodsv1.ListExecutorEventsResponse, error) {
	resp, err := s.list(ctx, req)
	return resp, s.toStatus(ctx, err)
}

func (s *Server) list(ctx context.Context, req *sparkpodsv1.ListExecutorEventsRequest) (*sparkpodsv1.ListExecutorEventsResponse, error) {
	l, err := validateList(req)
	if err != nil {
		return nil, err
	}
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	page := s.events.Read(l.app, l.after, l.pageSize)
	if err := s.known(ctx, l.app, page); err != nil {
		return nil, err
	}
	return &sparkpodsv1.ListExecutorEventsResponse{Events: page.Events, LastSequence: page.Last}, nil
}

// AcknowledgeExecutorEvents implements sparkpodsv1.LifecycleServiceServer.
func (s *Server) AcknowledgeExecutorEvents(ctx context.Context, req *sparkpodsv1.AcknowledgeExecutorEventsRequest) (*sparkpodsv1.AcknowledgeExecutorEventsResponse, error) {
	resp, err := s.acknowledge(ctx, req)
	return resp, s.toStatus(ctx, err)
}

func (s *Server) acknowledge(ctx context.Context, req *sparkpodsv1.AcknowledgeExecutorEventsRequest) (*sparkpodsv1.AcknowledgeExecutorEventsResponse, error) {
	app, seq, err := validateAcknowledge(req)
	if err != nil {
		return nil, err
	}
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	page := s.events.Read(app, 0, 1)
	if err := s.known(ctx, app, page); err != nil {
		return nil, err
	}
	acked, err := s.events.Acknowledge(ctx, app, seq)
	if err != nil {
		return nil, err
	}
	return &sparkpodsv1.AcknowledgeExecutorEventsResponse{AcknowledgedSequence: acked}, nil
}
