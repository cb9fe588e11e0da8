// Package runner drives the lifecycle service: it follows one snapshot
// stream for every application, hands each application's snapshots to its
// own reconcile.Manager, and every processing interval runs a round and
// carries out its Actions in the order the reconcile contract demands:
// events recorded durably first, then pods deleted, then pods labelled.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

// Defaults of Config.
const (
	// DefaultRecheckInterval is how often an application the scheduler does
	// not know is asked about again, and how long to wait after a failed
	// call to the scheduler.
	DefaultRecheckInterval = 10 * time.Second
)

// Config configures a Runner. Snapshots, Scheduler, Pods and Store are
// required.
type Config struct {
	Snapshots Snapshots
	Scheduler Scheduler
	Pods      Pods
	Store     Store
	// Owners finds driver pods to own event segments; nil gives segments no
	// owner.
	Owners Owners
	// Clock ticks rounds; nil is the real clock. Managers read it too.
	Clock clock.WithTicker
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics; nil counts nothing anywhere.
	Metrics *Metrics
	// RecheckInterval; 0 means DefaultRecheckInterval.
	RecheckInterval time.Duration
	// CallTimeout bounds each call to another service or the API server; 0
	// means 30 seconds.
	CallTimeout time.Duration
	// Namespaces are those whose applications the runner manages; empty
	// means every namespace. Snapshots of applications elsewhere are ignored.
	Namespaces []string
}

// Runner is the lifecycle service's engine. Run it once.
type Runner struct {
	conf   Config
	synced chan struct{}

	mu   sync.Mutex
	apps map[eventstore.AppKey]*worker
	// unmanaged holds applications the scheduler did not know, with when to
	// ask again; their snapshots are ignored until then.
	unmanaged map[eventstore.AppKey]time.Time
}

// New validates conf and returns a Runner.
func New(conf Config) (*Runner, error) {
	if conf.Snapshots == nil || conf.Scheduler == nil || conf.Pods == nil || conf.Store == nil {
		return nil, errors.New("runner: Snapshots, Scheduler, Pods and Store are required")
	}
	if conf.Clock == nil {
		conf.Clock = clock.RealClock{}
	}
	if conf.Logger == nil {
		conf.Logger = slog.New(slog.DiscardHandler)
	}
	if conf.Metrics == nil {
		conf.Metrics = NewMetrics()
	}
	if conf.RecheckInterval == 0 {
		conf.RecheckInterval = DefaultRecheckInterval
	}
	if conf.CallTimeout == 0 {
		conf.CallTimeout = 30 * time.Second
	}
	return &Runner{
		conf:      conf,
		synced:    make(chan struct{}),
		apps:      make(map[eventstore.AppKey]*worker),
		unmanaged: make(map[eventstore.AppKey]time.Time),
	}, nil
}

// Synced is closed once the first full state of the snapshot stream has been
// handed to the applications.
func (r *Runner) Synced() <-chan struct{} { return r.synced }

// Run follows the snapshot stream and runs every application's rounds until
// ctx ends. Each application has its own goroutine, so a slow call for one
// application never delays another.
func (r *Runner) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := r.conf.Snapshots.Run(ctx, func(ctx context.Context, u snapshotwatcher.Update) error {
			r.dispatch(ctx, g, u)
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("snapshot stream: %w", err)
	})
	return g.Wait()
}

// dispatch hands each snapshot of an update to its application's worker,
// starting workers for applications seen for the first time.
func (r *Runner) dispatch(ctx context.Context, g *errgroup.Group, u snapshotwatcher.Update) {
	for _, snap := range u.Snapshots {
		if len(r.conf.Namespaces) > 0 && !slices.Contains(r.conf.Namespaces, snap.GetNamespace()) {
			continue
		}
		key := eventstore.AppKey{Namespace: snap.GetNamespace(), AppID: snap.GetAppId()}
		if w := r.worker(ctx, g, key); w != nil {
			w.push(snap)
		}
	}
	if u.Reset {
		select {
		case <-r.synced:
		default:
			r.conf.Logger.InfoContext(ctx, "snapshot stream synced", "applications", len(u.Snapshots), "epoch", u.Epoch, "revision", u.Revision)
			close(r.synced)
		}
	}
}

// worker returns the application's worker, starting it if needed, or nil
// while the application is known not to be managed.
func (r *Runner) worker(ctx context.Context, g *errgroup.Group, key eventstore.AppKey) *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.apps[key]; ok {
		return w
	}
	if until, ok := r.unmanaged[key]; ok && r.conf.Clock.Now().Before(until) {
		return nil
	}
	delete(r.unmanaged, key)
	w := newWorker(r, key)
	r.apps[key] = w
	r.conf.Metrics.applications.Inc()
	g.Go(func() error {
		managed := w.run(ctx)
		r.forget(key, managed)
		return nil
	})
	return w
}

// forget drops an application's worker once it stopped; one that stopped
// because the scheduler does not manage the application is not started
// again before RecheckInterval.
func (r *Runner) forget(key eventstore.AppKey, managed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.apps, key)
	r.conf.Metrics.applications.Dec()
	if !managed {
		r.unmanaged[key] = r.conf.Clock.Now().Add(r.conf.RecheckInterval)
	}
}
