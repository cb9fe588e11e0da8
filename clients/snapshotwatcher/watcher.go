// Package snapshotwatcher turns the snapshot service's WatchSnapshots stream
// back into what a Spark scheduler component wants: the full executor
// snapshot of each application that changed. It reconnects with backoff and
// resumes from the last revision it applied, so the caller sees every change
// once, in order, across disconnects; when the service cannot resume (it
// restarted, or the client fell too far behind) the caller gets a reset with
// every watched application's full snapshot instead.
package snapshotwatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// AppKey names an application: its executor pods' namespace and its Spark
// application id.
type AppKey struct {
	Namespace string
	AppID     string
}

func (k AppKey) String() string { return k.Namespace + "/" + k.AppID }

// Update is what the watcher hands the caller after each message that changed
// its view. The messages in it are shared and must not be modified.
type Update struct {
	// Epoch and Revision are the service's position after this update.
	Epoch    string
	Revision int64
	// Reset is true when this update replaces everything the caller holds:
	// Snapshots then holds every watched application and anything not in it
	// is gone. ResetReason says why.
	Reset       bool
	ResetReason sparkpodsv1.ResetReason
	// Snapshots are the full current snapshots of the applications that
	// changed, ordered by namespace and application id.
	Snapshots []*sparkpodsv1.ExecutorSnapshot
	// FullResync lists the applications in Snapshots whose change came from
	// a full re-list (their full_snapshot_time is new): the moment Spark's
	// lifecycle manager checks for missing pods.
	FullResync []AppKey
	// Removed are applications that no longer have any executor.
	Removed []AppKey
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithNamespace watches only the applications in one namespace.
func WithNamespace(namespace string) Option {
	return func(w *Watcher) { w.namespace = namespace }
}

// WithApplication watches one application.
func WithApplication(namespace, appID string) Option {
	return func(w *Watcher) { w.namespace, w.appID = namespace, appID }
}

// WithBatchInterval asks the service to gather changes for d before sending
// them, like Spark's eventProcessingInterval; 0 (the default) sends each
// change at once.
func WithBatchInterval(d time.Duration) Option {
	return func(w *Watcher) { w.batch = d }
}

// WithHeartbeatInterval sets how often the service sends a heartbeat on a
// quiet stream (default 10s). A stream silent for three intervals is taken
// for dead and replaced.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(w *Watcher) { w.heartbeat = d }
}

// WithBackoff sets the reconnect delay: the n-th consecutive failure waits a
// random time up to min(max, initial·2ⁿ). Defaults: 100ms and 10s.
func WithBackoff(initial, max time.Duration) Option {
	return func(w *Watcher) { w.backoffInitial, w.backoffMax = initial, max }
}

// WithLogger logs reconnects; the default discards logs.
func WithLogger(l *slog.Logger) Option {
	return func(w *Watcher) { w.logger = l }
}

// Watcher follows one WatchSnapshots subscription. Run it once.
type Watcher struct {
	client         sparkpodsv1.SnapshotServiceClient
	namespace      string
	appID          string
	batch          time.Duration
	heartbeat      time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	logger         *slog.Logger

	// The view, owned by Run.
	epoch    string
	revision int64
	apps     map[AppKey]*appView
}

// appView is one application as the watcher holds it.
type appView struct {
	snap *sparkpodsv1.ExecutorSnapshot
	byID map[int64]*sparkpodsv1.Executor
}

// New returns a Watcher that calls the snapshot service over conn.
func New(conn grpc.ClientConnInterface, opts ...Option) (*Watcher, error) {
	w := &Watcher{
		client:         sparkpodsv1.NewSnapshotServiceClient(conn),
		heartbeat:      10 * time.Second,
		backoffInitial: 100 * time.Millisecond,
		backoffMax:     10 * time.Second,
		logger:         slog.New(slog.DiscardHandler),
		apps:           map[AppKey]*appView{},
	}
	for _, o := range opts {
		o(w)
	}
	switch {
	case w.appID != "" && w.namespace == "":
		return nil, errors.New("snapshotwatcher: an application needs its namespace")
	case w.batch < 0 || w.heartbeat <= 0:
		return nil, errors.New("snapshotwatcher: intervals must be positive")
	case w.backoffInitial <= 0 || w.backoffMax < w.backoffInitial:
		return nil, errors.New("snapshotwatcher: backoff needs 0 < initial <= max")
	}
	return w, nil
}

// Run watches until ctx ends or fn fails. fn is called from Run's goroutine,
// one update at a time, in revision order; while it runs the stream is not
// read, so a slow fn only makes the service coalesce what it sends. Run
// returns fn's error, an error the service will keep returning (a bad
// request), or ctx's error.
func (w *Watcher) Run(ctx context.Context, fn func(context.Context, Update) error) error {
	failures := 0
	for {
		progressed, err := w.follow(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var cbErr callbackError
		if errors.As(err, &cbErr) {
			return cbErr.err
		}
		if permanent(err) {
			return fmt.Errorf("snapshotwatcher: %w", err)
		}
		if progressed {
			failures = 0
		}
		delay := w.backoff(failures)
		failures++
		w.logger.Warn("snapshot stream ended; reconnecting", "err", err, "in", delay,
			"epoch", w.epoch, "revision", w.revision)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// permanent reports errors that retrying the same request cannot cure.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// backoff is "full jitter": a random delay up to the capped exponential.
func (w *Watcher) backoff(failures int) time.Duration {
	ceiling := w.backoffMax
	if failures < 30 {
		ceiling = min(w.backoffMax, w.backoffInitial<<failures)
	}
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// follow runs one stream until it fails. progressed reports whether any
// message arrived, which resets the backoff.
func (w *Watcher) follow(ctx context.Context, fn func(context.Context, Update) error) (progressed bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req := &sparkpodsv1.WatchSnapshotsRequest{
		Namespace:         w.namespace,
		AppId:             w.appID,
		StartRevision:     w.revision,
		Epoch:             w.epoch,
		HeartbeatInterval: durationpb.New(w.heartbeat),
	}
	if w.batch > 0 {
		req.BatchInterval = durationpb.New(w.batch)
	}
	stream, err := w.client.WatchSnapshots(ctx, req, grpc.MaxCallRecvMsgSize(64<<20))
	if err != nil {
		return false, err
	}
	// A stream that stays silent past three heartbeats (plus the batch
	// interval) is dead even if TCP has not noticed.
	silence := 3*w.heartbeat + w.batch
	errSilent := fmt.Errorf("no message for %v", silence)
	watchdog := time.AfterFunc(silence, func() { cancel(errSilent) })
	defer watchdog.Stop()

	var resetting []*sparkpodsv1.ExecutorSnapshot
	inReset := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errSilent) {
				err = cause
			}
			return progressed, err
		}
		progressed = true
		watchdog.Reset(silence)
		var u *Update
		switch ev := msg.GetEvent().(type) {
		case *sparkpodsv1.WatchSnapshotsResponse_Reset_:
			inReset = true
			resetting = append(resetting, ev.Reset_.GetSnapshots()...)
			if !ev.Reset_.GetLastChunk() {
				continue
			}
			u = w.applyReset(msg, ev.Reset_.GetReason(), resetting)
			resetting, inReset = nil, false
		case *sparkpodsv1.WatchSnapshotsResponse_Changes:
			if inReset {
				return progressed, errors.New("protocol error: changes in the middle of a reset")
			}
			u = w.applyChanges(msg, ev.Changes.GetChanges())
		case *sparkpodsv1.WatchSnapshotsResponse_Heartbeat:
			if !inReset {
				w.epoch, w.revision = msg.GetEpoch(), msg.GetRevision()
			}
			continue
		default:
			continue // a newer server's event this client does not know
		}
		if err := fn(ctx, *u); err != nil {
			return progressed, callbackError{err}
		}
	}
}

func (w *Watcher) applyReset(msg *sparkpodsv1.WatchSnapshotsResponse, reason sparkpodsv1.ResetReason, snaps []*sparkpodsv1.ExecutorSnapshot) *Update {
	u := &Update{Epoch: msg.GetEpoch(), Revision: msg.GetRevision(), Reset: true, ResetReason: reason}
	old := w.apps
	w.apps = make(map[AppKey]*appView, len(snaps))
	for _, s := range snaps {
		key := AppKey{s.GetNamespace(), s.GetAppId()}
		v := &appView{snap: s, byID: make(map[int64]*sparkpodsv1.Executor, len(s.GetExecutors()))}
		for _, e := range s.GetExecutors() {
			v.byID[e.GetExecutorId()] = e
		}
		w.apps[key] = v
		u.Snapshots = append(u.Snapshots, s)
	}
	for key := range old {
		if _, ok := w.apps[key]; !ok {
			u.Removed = append(u.Removed, key)
		}
	}
	sortKeys(u.Removed)
	sortSnapshots(u.Snapshots)
	w.epoch, w.revision = msg.GetEpoch(), msg.GetRevision()
	return u
}

func (w *Watcher) applyChanges(msg *sparkpodsv1.WatchSnapshotsResponse, changes []*sparkpodsv1.ApplicationChange) *Update {
	u := &Update{Epoch: msg.GetEpoch(), Revision: msg.GetRevision()}
	for _, c := range changes {
		key := AppKey{c.GetNamespace(), c.GetAppId()}
		if c.GetApplicationRemoved() {
			if _, ok := w.apps[key]; ok {
				delete(w.apps, key)
				u.Removed = append(u.Removed, key)
			}
			continue
		}
		v := w.apps[key]
		if v == nil {
			v = &appView{byID: map[int64]*sparkpodsv1.Executor{}}
			w.apps[key] = v
		}
		for _, e := range c.GetUpserted() {
			v.byID[e.GetExecutorId()] = e
		}
		for _, id := range c.GetRemovedExecutorIds() {
			delete(v.byID, id)
		}
		execs := make([]*sparkpodsv1.Executor, 0, len(v.byID))
		for _, e := range v.byID {
			execs = append(execs, e)
		}
		slices.SortFunc(execs, func(a, b *sparkpodsv1.Executor) int {
			return cmp.Compare(a.GetExecutorId(), b.GetExecutorId())
		})
		v.snap = &sparkpodsv1.ExecutorSnapshot{
			Namespace:        key.Namespace,
			AppId:            key.AppID,
			Revision:         c.GetRevision(),
			Executors:        execs,
			FullSnapshotTime: c.GetFullSnapshotTime(),
		}
		u.Snapshots = append(u.Snapshots, v.snap)
		if c.GetFullResync() {
			u.FullResync = append(u.FullResync, key)
		}
	}
	sortKeys(u.Removed)
	sortKeys(u.FullResync)
	sortSnapshots(u.Snapshots)
	w.epoch, w.revision = msg.GetEpoch(), msg.GetRevision()
	return u
}

func sortSnapshots(s []*sparkpodsv1.ExecutorSnapshot) {
	slices.SortFunc(s, func(a, b *sparkpodsv1.ExecutorSnapshot) int {
		return compareKeys(AppKey{a.GetNamespace(), a.GetAppId()}, AppKey{b.GetNamespace(), b.GetAppId()})
	})
}

func sortKeys(k []AppKey) { slices.SortFunc(k, compareKeys) }

func compareKeys(a, b AppKey) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.AppID, b.AppID))
}
