// Package application runs Spark's executor allocation for every registered
// application: it keeps the registrations (persisted through the store
// package), feeds each application's allocator the snapshots of one shared
// snapshot stream, runs its rounds on Spark's schedule, and carries out pod
// writes, kills and decommissions through the pod manager.
//
// # One stream for all applications
//
// The Manager follows a single WatchSnapshots stream of every application
// and fans the snapshots out to the applications it manages, rather than
// opening one stream per application. The snapshot service then keeps one
// subscriber (with one resume point and one reset to recover from) however
// many applications there are, an application registered later gets its
// current snapshot from the Manager's copy at once, without a stream
// start-up, and "synced" is a single event the health check can wait for.
// The cost is receiving the changes of applications this allocator does not
// manage (drivers that allocate for themselves), which are small deltas.
package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

// SnapshotSource is the snapshot stream of every application; the
// snapshotwatcher.Watcher is one. Run calls fn with each update, in order,
// until ctx ends or fn fails.
type SnapshotSource interface {
	Run(ctx context.Context, fn func(context.Context, snapshotwatcher.Update) error) error
}

// Registration is an application to register, as the scheduler API
// received it (validated).
type Registration struct {
	Namespace        string
	AppID            string
	DriverPodName    string
	SparkConf        map[string]string
	ResourceProfiles []*sparkpodsv1.ResourceProfile
}

// Config is what NewManager needs.
type Config struct {
	// Kube reads driver pods and holds the persisted records. Required.
	Kube kubernetes.Interface
	// Store persists the records. Required.
	Store *store.Store
	// Pods is the pod manager. Required.
	Pods PodClient
	// Snapshots is the snapshot stream of every application. Required.
	Snapshots SnapshotSource
	// Metrics receives the allocator's metrics. Required.
	Metrics *Metrics
	// Clock drives rounds and kill timers; nil is the real clock.
	Clock clock.WithTicker
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

// Manager holds the registered applications.
type Manager struct {
	kube      kubernetes.Interface
	store     *store.Store
	pods      PodClient
	snapshots SnapshotSource
	metrics   *Metrics
	clock     clock.WithTicker
	log       *slog.Logger

	// regMu serialises registrations and unregistrations, which make API
	// calls, so that they need not hold mu while they do.
	regMu sync.Mutex

	// mu guards the fields below.
	mu   sync.Mutex
	apps map[Key]*App
	// latest is the newest snapshot of every application in the stream,
	// managed or not, so that a new registration starts from it.
	latest   map[Key]*sparkpodsv1.ExecutorSnapshot
	revision int64
	synced   bool
	restored bool

	// starts hands new applications to Run, which owns their goroutines.
	starts chan *App
	ready  chan struct{}
}

// NewManager returns a Manager; Run brings it to life.
func NewManager(cfg Config) (*Manager, error) {
	switch {
	case cfg.Kube == nil:
		return nil, errors.New("application: a Kubernetes client is required")
	case cfg.Store == nil:
		return nil, errors.New("application: a store is required")
	case cfg.Pods == nil:
		return nil, errors.New("application: a pod manager client is required")
	case cfg.Snapshots == nil:
		return nil, errors.New("application: a snapshot source is required")
	case cfg.Metrics == nil:
		return nil, errors.New("application: metrics are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{
		kube:      cfg.Kube,
		store:     cfg.Store,
		pods:      cfg.Pods,
		snapshots: cfg.Snapshots,
		metrics:   cfg.Metrics,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		apps:      map[Key]*App{},
		latest:    map[Key]*sparkpodsv1.ExecutorSnapshot{},
		starts:    make(chan *App),
		ready:     make(chan struct{}),
	}, nil
}

// Ready is closed once every persisted application is restored and the
// snapshot stream has delivered its first full state.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Run restores the persisted applications, follows the snapshot stream and
// runs every application's loop until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if err := m.restore(ctx, g); err != nil {
		_ = g.Wait()
		return err
	}
	g.Go(func() error {
		err := m.snapshots.Run(ctx, m.dispatch)
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("snapshot stream: %w", err)
	})
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case a := <-m.starts:
				g.Go(func() error { return a.run(ctx) })
			}
		}
	})
	return g.Wait()
}

// restore re-creates every persisted application, retrying the list until
// it succeeds or ctx ends, and starts their loops in g.
func (m *Manager) restore(ctx context.Context, g *errgroup.Group) error {
	var (
		records []*store.Record
		bad     []error
		err     error
	)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		if records, bad, err = m.store.List(ctx); err == nil {
			break
		}
		m.log.Warn("listing persisted applications failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.clock.After(delay):
		}
	}
	for _, err := range bad {
		m.log.Error("skipping a persisted application that cannot be read", "err", err)
	}
	existing, err := m.existingExecutors(ctx, records)
	if err != nil {
		return err
	}
	for _, rec := range records {
		settings, err := ParseSettings(rec.Application.GetSparkConf())
		if err != nil {
			m.log.Error("skipping a persisted application whose configuration is invalid",
				"namespace", rec.Application.GetNamespace(), "appId", rec.Application.GetAppId(), "err", err)
			continue
		}
		key := Key{rec.Application.GetNamespace(), rec.Application.GetAppId()}
		a, err := m.newApp(rec, settings, existing[key])
		if err != nil {
			return err
		}
		m.log.Info("restoring application", "namespace", a.key.Namespace, "appId", a.key.AppID,
			"targets", rec.Targets, "lastExecutorId", rec.LastExecutorID, "executorPods", len(existing[key]))
		m.mu.Lock()
		m.apps[a.key] = a
		m.mu.Unlock()
		g.Go(func() error { return a.run(ctx) })
	}
	m.mu.Lock()
	m.restored = true
	m.metrics.applications.Set(float64(len(m.apps)))
	m.mu.Unlock()
	return nil
}

// existingExecutors lists, with consistent reads from the API server (one
// paginated list per namespace, retried until it succeeds or ctx ends), the
// executor pods of the applications in records: id → resource profile, by
// application. A restored allocator waits for these rather than trusting a
// first snapshot that may lag behind the cluster.
func (m *Manager) existingExecutors(ctx context.Context, records []*store.Record) (map[Key]map[int64]int32, error) {
	apps := map[Key]bool{}
	namespaces := map[string]bool{}
	for _, rec := range records {
		apps[Key{rec.Application.GetNamespace(), rec.Application.GetAppId()}] = true
		namespaces[rec.Application.GetNamespace()] = true
	}
	out := map[Key]map[int64]int32{}
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
			err := m.listExecutors(ctx, ns, apps, out)
			if err == nil {
				break
			}
			m.log.Warn("listing the executor pods of restored applications failed; retrying", "namespace", ns, "err", err, "in", delay)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-m.clock.After(delay):
			}
		}
	}
	return out, nil
}

// listExecutors adds to out the executor pods in ns of the applications in
// apps.
func (m *Manager) listExecutors(ctx context.Context, ns string, apps map[Key]bool, out map[Key]map[int64]int32) error {
	opts := metav1.ListOptions{LabelSelector: podspec.LabelRole + "=" + podspec.RoleExecutor, Limit: 500}
	for {
		list, err := m.kube.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			pod := &list.Items[i]
			key := Key{ns, pod.Labels[podspec.LabelAppID]}
			id, err := strconv.ParseInt(pod.Labels[podspec.LabelExecutorID], 10, 64)
			if !apps[key] || err != nil || pod.DeletionTimestamp != nil {
				continue
			}
			rp, _ := strconv.ParseInt(pod.Labels[podspec.LabelResourceProfileID], 10, 32)
			if out[key] == nil {
				out[key] = map[int64]int32{}
			}
			out[key][id] = int32(rp)
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return nil
		}
	}
}

func (m *Manager) newApp(rec *store.Record, settings Settings, existing map[int64]int32) (*App, error) {
	return newApp(appConfig{
		record:   rec,
		existing: existing,
		settings: settings,
		pods:     m.pods,
		store:    m.store,
		clock:    m.clock,
		log:      m.log,
		metrics:  m.metrics,
	})
}

// dispatch applies one update of the snapshot stream and hands each
// managed application its new snapshot.
func (m *Manager) dispatch(_ context.Context, u snapshotwatcher.Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	kind := "changes"
	if u.Reset {
		kind = "reset"
		m.latest = make(map[Key]*sparkpodsv1.ExecutorSnapshot, len(u.Snapshots))
	}
	m.metrics.snapshotUpdates.WithLabelValues(kind).Inc()
	m.revision = u.Revision
	for _, s := range u.Snapshots {
		k := Key{s.GetNamespace(), s.GetAppId()}
		m.latest[k] = s
		if a := m.apps[k]; a != nil && !u.Reset {
			a.offer(s)
		}
	}
	for _, rk := range u.Removed {
		k := Key(rk)
		delete(m.latest, k)
		if a := m.apps[k]; a != nil && !u.Reset {
			a.offer(m.snapshotOf(k))
		}
	}
	if u.Reset {
		// After a reset an application not in it has no executor pods.
		for k, a := range m.apps {
			a.offer(m.snapshotOf(k))
		}
	}
	if !m.synced && m.restored {
		m.synced = true
		close(m.ready)
		m.log.Info("snapshot stream synced; serving", "applications", len(m.apps), "revision", u.Revision)
	}
	return nil
}

// snapshotOf returns the latest snapshot of k, or an empty one. m.mu must be
// held.
func (m *Manager) snapshotOf(k Key) *sparkpodsv1.ExecutorSnapshot {
	if s := m.latest[k]; s != nil {
		return s
	}
	return &sparkpodsv1.ExecutorSnapshot{Namespace: k.Namespace, AppId: k.AppID}
}

// isReady reports whether the Manager serves requests.
func (m *Manager) isReady() bool {
	select {
	case <-m.ready:
		return true
	default:
		return false
	}
}

// Get returns a registered application.
func (m *Manager) Get(k Key) (*App, error) {
	if !m.isReady() {
		return nil, ErrNotReady
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.apps[k]; a != nil {
		return a, nil
	}
	return nil, ErrNotFound
}

// Register registers an application, or returns the existing registration
// when it was registered with the same configuration. A registration with
// a different configuration is a *PreconditionError. A new application gets
// Spark's initial target on the default profile.
func (m *Manager) Register(ctx context.Context, r Registration) (*App, error) {
	if !m.isReady() {
		return nil, ErrNotReady
	}
	settings, err := ParseSettings(r.SparkConf)
	if err != nil {
		return nil, err
	}
	k := Key{r.Namespace, r.AppID}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	m.mu.Lock()
	existing := m.apps[k]
	m.mu.Unlock()
	if existing != nil {
		if sameRegistration(existing.reg, r) {
			return existing, nil
		}
		return nil, &PreconditionError{msg: fmt.Sprintf(
			"application %s is registered with a different configuration; unregister it first", k)}
	}

	uid, err := m.driverPodUID(ctx, r)
	if err != nil {
		return nil, err
	}
	rec := newRecord(r, uid, m.clock.Now(), settings.InitialExecutors)
	if err := m.store.Create(ctx, rec); err != nil {
		return nil, &DependencyError{Service: "kubernetes", Op: "persist the registration", Err: err}
	}
	a, err := m.newApp(rec, settings, nil)
	if err != nil {
		return nil, err
	}
	a.log.Info("registering application", "driverPod", r.DriverPodName, "initialExecutors", settings.InitialExecutors,
		"lastExecutorId", rec.LastExecutorID)
	select {
	case m.starts <- a:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m.mu.Lock()
	m.apps[k] = a
	if m.synced {
		a.offer(m.snapshotOf(k))
	}
	n := len(m.apps)
	m.mu.Unlock()
	m.metrics.applications.Set(float64(n))
	a.trigger()
	return a, nil
}

// driverPodUID looks the driver pod up, as Spark's allocator does when it
// starts, and returns its UID ("" without a driver pod).
func (m *Manager) driverPodUID(ctx context.Context, r Registration) (string, error) {
	if r.DriverPodName == "" {
		return "", nil
	}
	pod, err := m.kube.CoreV1().Pods(r.Namespace).Get(ctx, r.DriverPodName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", &PreconditionError{msg: fmt.Sprintf(
			"No pod was found named %s in the cluster in the namespace %s (this was supposed to be the driver pod.).",
			r.DriverPodName, r.Namespace)}
	}
	if err != nil {
		return "", &DependencyError{Service: "kubernetes", Op: "get the driver pod", Err: err}
	}
	return string(pod.UID), nil
}

// Unregister stops managing an application with Spark's stop semantics:
// unless spark.kubernetes.executor.deleteOnTermination is false, every
// executor pod of the application is deleted. It returns how many pod
// deletions were requested. If the deletion fails, the application stays
// registered (but stopped) so that the call can be retried.
func (m *Manager) Unregister(ctx context.Context, k Key) (int, error) {
	a, err := m.Get(k)
	if err != nil {
		return 0, err
	}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if err := a.shutdown(ctx); err != nil {
		return 0, err
	}
	decision := a.alloc.Stop()
	deleted := 0
	if decision.DeleteAllExecutorPods {
		if deleted, err = a.deletePods(ctx, nil, sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_UNSPECIFIED); err != nil {
			return 0, err
		}
		m.metrics.podsDeleted.WithLabelValues("unregister").Add(float64(deleted))
	}
	if err := m.store.Delete(ctx, k.Namespace, k.AppID); err != nil {
		return 0, &DependencyError{Service: "kubernetes", Op: "delete the persisted registration", Err: err}
	}
	m.mu.Lock()
	delete(m.apps, k)
	n := len(m.apps)
	m.mu.Unlock()
	m.metrics.applications.Set(float64(n))
	m.metrics.forget(k)
	a.log.Info("unregistered application", "deletedPods", deleted)
	return deleted, nil
}

// sameRegistration reports whether r registers what reg holds.
func sameRegistration(reg *sparkpodsv1.Application, r Registration) bool {
	if reg.GetDriverPodName() != r.DriverPodName || !maps.Equal(reg.GetSparkConf(), r.SparkConf) {
		return false
	}
	if len(reg.GetResourceProfiles()) != len(r.ResourceProfiles) {
		return false
	}
	for i, p := range reg.GetResourceProfiles() {
		if !proto.Equal(p, r.ResourceProfiles[i]) {
			return false
		}
	}
	return true
}

func typesUID(s string) types.UID { return types.UID(s) }
