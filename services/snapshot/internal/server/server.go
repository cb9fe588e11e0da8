// Package server is the gRPC face of the snapshot service: GetSnapshot,
// ListApplications and WatchSnapshots over a snapshotmodel.Store.
package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

// store is what the server reads; *snapshotmodel.Store implements it.
type store interface {
	Epoch() string
	Snapshot(snapshotmodel.AppKey) *snapshotmodel.Snapshot
	Snapshots(snapshotmodel.Filter) (int64, []*snapshotmodel.Snapshot, <-chan struct{})
	ChangesSince(int64, snapshotmodel.Filter) (snapshotmodel.Changes, error)
	Applications(namespace string, after snapshotmodel.AppKey, limit int) ([]snapshotmodel.Summary, bool)
	Stats() snapshotmodel.Stats
}

// DefaultMaxExecutorsPerMessage bounds the executors one stream message
// carries (about 200 bytes each on the wire), so that a reset of a large
// cluster or a slow watcher's backlog never makes one huge message.
const DefaultMaxExecutorsPerMessage = 2000

// Config configures a Server. Store and Logger are required.
type Config struct {
	Store store
	// Ready is closed once the store holds a complete first list of pods;
	// until then every call fails with Unavailable. Nil means ready.
	Ready <-chan struct{}
	// Stopping is closed when the service shuts down: open watch streams then
	// end with Unavailable, so the graceful stop does not wait for them.
	Stopping <-chan struct{}
	// Clock drives heartbeats and batching; nil means the real clock.
	Clock  clock.Clock
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxExecutorsPerMessage bounds one stream message; 0 means
	// DefaultMaxExecutorsPerMessage.
	MaxExecutorsPerMessage int
}

// Server implements sparkpods.v1.SnapshotService.
type Server struct {
	sparkpodsv1.UnimplementedSnapshotServiceServer

	store       store
	ready       <-chan struct{}
	stopping    <-chan struct{}
	clock       clock.Clock
	logger      *slog.Logger
	metrics     *metrics
	maxPerChunk int
}

// New validates cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Store is required")
	}
	if cfg.Logger == nil {
		return nil, errors.New("server: Logger is required")
	}
	if cfg.MaxExecutorsPerMessage < 0 {
		return nil, errors.New("server: MaxExecutorsPerMessage must not be negative")
	}
	if cfg.MaxExecutorsPerMessage == 0 {
		cfg.MaxExecutorsPerMessage = DefaultMaxExecutorsPerMessage
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Ready == nil {
		ready := make(chan struct{})
		close(ready)
		cfg.Ready = ready
	}
	return &Server{
		store:       cfg.Store,
		ready:       cfg.Ready,
		stopping:    cfg.Stopping,
		clock:       cfg.Clock,
		logger:      cfg.Logger,
		metrics:     newMetrics(cfg.Registerer, cfg.Store),
		maxPerChunk: cfg.MaxExecutorsPerMessage,
	}, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { sparkpodsv1.RegisterSnapshotServiceServer(g, s) }

func (s *Server) checkReady() error {
	select {
	case <-s.ready:
		return nil
	default:
		return errNotSynced
	}
}

// GetSnapshot returns one application's snapshot; an unknown application
// gets an empty snapshot at revision 0.
func (s *Server) GetSnapshot(ctx context.Context, req *sparkpodsv1.GetSnapshotRequest) (*sparkpodsv1.GetSnapshotResponse, error) {
	key, err := validateGetSnapshot(req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.checkReady(); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &sparkpodsv1.GetSnapshotResponse{
		Snapshot: snapshotProto(s.store.Snapshot(key)),
		Epoch:    s.store.Epoch(),
	}, nil
}

// ListApplications pages through the applications that have executors.
func (s *Server) ListApplications(ctx context.Context, req *sparkpodsv1.ListApplicationsRequest) (*sparkpodsv1.ListApplicationsResponse, error) {
	p, err := validateListApplications(req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.checkReady(); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	apps, more := s.store.Applications(p.namespace, p.after, p.limit)
	resp := &sparkpodsv1.ListApplicationsResponse{
		Applications: make([]*sparkpodsv1.ApplicationSummary, len(apps)),
		Epoch:        s.store.Epoch(),
	}
	for i := range apps {
		resp.Applications[i] = summaryProto(&apps[i])
	}
	if more {
		resp.NextPageToken = encodePageToken(p.namespace, apps[len(apps)-1].App)
	}
	return resp, nil
}

// WatchSnapshots streams a reset and then changes; see watch.go.
func (s *Server) WatchSnapshots(req *sparkpodsv1.WatchSnapshotsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]) error {
	ctx := stream.Context()
	p, err := validateWatchSnapshots(req)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if err := s.checkReady(); err != nil {
		return s.toStatus(ctx, err)
	}
	s.metrics.subscribers.Inc()
	defer s.metrics.subscribers.Dec()
	w := &watcher{server: s, stream: stream, params: p, filter: p.filter(), epoch: s.store.Epoch()}
	return s.toStatus(ctx, w.run(ctx))
}
