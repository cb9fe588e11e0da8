// Package source keeps a snapshotmodel.Store in step with the Kubernetes API
// server: one list+watch of every executor pod in the watched namespaces
// (Spark's watch source, for all applications at once) and a periodic full
// list from the API server's watch cache (Spark's polling source).
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

// store is what the source writes to; *snapshotmodel.Store implements it.
type store interface {
	Update(snapshotmodel.AppKey, *snapshotmodel.Executor) bool
	Relist(scope string, entries []snapshotmodel.Entry, rv uint64) int
	Replace(scope string, entries []snapshotmodel.Entry, rv uint64)
}

// Config configures a Source. Pods, Store and Logger are required.
type Config struct {
	// Pods reads executor pods; a clientset's CoreV1().
	Pods corev1client.PodsGetter
	// Store receives what the source sees.
	Store store
	// Mapping turns pods into executor records.
	Mapping snapshotmodel.Mapping
	// Namespaces to watch; empty watches every namespace with one watch.
	// Otherwise each namespace gets its own list+watch.
	Namespaces []string
	// Watch is Spark's enableApiWatcher: list+watch pods and apply each
	// change as an incremental update.
	Watch bool
	// Poll is Spark's enableApiPolling: every PollInterval, list all executor
	// pods and apply the list as a full replacement.
	Poll bool
	// PollInterval is Spark's apiPollingInterval (30s there). Required when
	// Poll is set.
	PollInterval time.Duration
	// Clock drives the polling timer; nil means the real clock.
	Clock clock.WithTicker
	// Logger receives the source's logs, client-go's reflector included.
	Logger *slog.Logger
	// Registerer receives the source's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Source runs the list+watch and the poller. Construct it with New and start
// it with Run.
type Source struct {
	pods       corev1client.PodsGetter
	store      store
	mapping    snapshotmodel.Mapping
	scopes     []string
	watch      bool
	poll       bool
	interval   time.Duration
	clock      clock.WithTicker
	logger     *slog.Logger
	metrics    *metrics
	synced     chan struct{}
	syncedOnce sync.Once
	unsynced   atomic.Int32
	// seenRV is the newest resourceVersion the source has applied, from a
	// list or a watch event; polls ask the watch cache for a list at least
	// this fresh.
	seenRV atomic.Uint64
}

// New validates cfg and builds a Source. It starts nothing.
func New(cfg Config) (*Source, error) {
	switch {
	case cfg.Pods == nil:
		return nil, errors.New("source: Pods is required")
	case cfg.Store == nil:
		return nil, errors.New("source: Store is required")
	case cfg.Logger == nil:
		return nil, errors.New("source: Logger is required")
	case !cfg.Watch && !cfg.Poll:
		return nil, errors.New("source: enable the watch, the poll, or both; with neither no pod is ever seen")
	case cfg.Poll && cfg.PollInterval <= 0:
		return nil, fmt.Errorf("source: poll interval must be positive, got %v", cfg.PollInterval)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	scopes := cfg.Namespaces
	if len(scopes) == 0 {
		scopes = []string{metav1.NamespaceAll}
	}
	s := &Source{
		pods:     cfg.Pods,
		store:    cfg.Store,
		mapping:  cfg.Mapping,
		scopes:   scopes,
		watch:    cfg.Watch,
		poll:     cfg.Poll,
		interval: cfg.PollInterval,
		clock:    cfg.Clock,
		logger:   cfg.Logger,
		metrics:  newMetrics(cfg.Registerer),
		synced:   make(chan struct{}),
	}
	s.unsynced.Store(int32(len(scopes)))
	return s, nil
}

// Synced is closed once every watched namespace has been listed: by the
// watch's first list, or by the first poll when the watch is off.
func (s *Source) Synced() <-chan struct{} { return s.synced }

// Run lists, watches and polls until ctx is done.
func (s *Source) Run(ctx context.Context) error {
	// client-go logs through klog; keep its reflector logs in our stream.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(s.logger.Handler()))
	g, ctx := errgroup.WithContext(ctx)
	for _, scope := range s.scopes {
		sink := &podSink{scope: scope, source: s}
		if s.watch {
			r := s.reflector(scope, sink)
			g.Go(func() error {
				r.RunWithContext(ctx)
				return nil
			})
		}
	}
	if s.poll {
		g.Go(func() error { return s.pollLoop(ctx) })
	}
	return g.Wait()
}

// reflector builds the list+watch of one scope. The reflector lists (or, on
// API servers that support it, streams the list over a watch), then watches
// from the list's resourceVersion with bookmarks, served by the API server's
// watch cache; when the watch's resourceVersion expires (410 Gone) or the API
// server restarts, it lists again and the sink relists the store.
func (s *Source) reflector(scope string, sink *podSink) *cache.Reflector {
	pods := s.pods.Pods(scope)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = snapshotmodel.ExecutorSelector
			s.metrics.listRequests.WithLabelValues("watch").Inc()
			return pods.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = snapshotmodel.ExecutorSelector
			s.metrics.watchStarts.Inc()
			return pods.Watch(ctx, opts)
		},
	}
	logger := logr.FromSlogHandler(s.logger.Handler())
	name := "executor-pods"
	if scope != "" {
		name += "/" + scope
	}
	return cache.NewReflectorWithOptions(lw, &corev1.Pod{}, sink, cache.ReflectorOptions{
		Name:   name,
		Logger: &logger,
		Clock:  s.clock,
		// One watch serves every application, so come back quickly after an
		// API server restart: 0.2s doubling to at most 10s, with jitter.
		Backoff: &wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 1, Steps: 6, Cap: 10 * time.Second},
	})
}

// pollLoop is Spark's polling source: a full list every interval, first one
// interval after start. With the watch off, the first poll runs at once,
// because nothing else would fill the store.
func (s *Source) pollLoop(ctx context.Context) error {
	if !s.watch {
		s.pollAll(ctx)
	}
	for {
		t := s.clock.NewTimer(s.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		s.pollAll(ctx)
	}
}

func (s *Source) pollAll(ctx context.Context) {
	for _, scope := range s.scopes {
		if err := s.pollOnce(ctx, scope); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.metrics.polls.WithLabelValues("error").Inc()
			// Spark logs and skips a failed poll; the next one comes one
			// interval later.
			s.logger.Warn("full list of executor pods failed; retrying at the next poll",
				"namespace", scope, "interval", s.interval, "err", err)
			continue
		}
		s.metrics.polls.WithLabelValues("ok").Inc()
	}
}

// pollOnce lists one scope and applies it as a full replacement. The list
// asks for a resourceVersion not older than the newest the source has seen,
// which the API server answers from its watch cache without touching etcd,
// and which can never take the store back in time.
func (s *Source) pollOnce(ctx context.Context, scope string) error {
	opts := metav1.ListOptions{LabelSelector: snapshotmodel.ExecutorSelector}
	if rv := s.seenRV.Load(); rv != 0 {
		opts.ResourceVersion = strconv.FormatUint(rv, 10)
		opts.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
	}
	s.metrics.listRequests.WithLabelValues("poll").Inc()
	list, err := s.pods.Pods(scope).List(ctx, opts)
	if err != nil {
		return err
	}
	entries := make([]snapshotmodel.Entry, 0, len(list.Items))
	for i := range list.Items {
		if en, ok := s.entry(&list.Items[i]); ok {
			entries = append(entries, en)
		}
	}
	rv := snapshotmodel.ParseResourceVersion(list.ResourceVersion)
	s.store.Replace(scope, entries, rv)
	s.seen(rv)
	if !s.watch {
		s.markSynced()
	}
	return nil
}

// entry maps one pod, counting and logging the pods Spark would skip.
func (s *Source) entry(pod *corev1.Pod) (snapshotmodel.Entry, bool) {
	key, e, err := s.mapping.Executor(pod)
	switch {
	case err == nil:
		return snapshotmodel.Entry{App: key, Executor: e}, true
	case errors.Is(err, snapshotmodel.ErrNoExecutorID):
		s.metrics.skipped.WithLabelValues("no_executor_id").Inc()
	case errors.Is(err, snapshotmodel.ErrNoApplication):
		s.metrics.skipped.WithLabelValues("no_application").Inc()
		s.logger.Debug("executor pod skipped", "err", err)
	default:
		s.metrics.skipped.WithLabelValues("invalid_executor_id").Inc()
		s.logger.Warn("executor pod skipped", "err", err)
	}
	return snapshotmodel.Entry{}, false
}

func (s *Source) seen(rv uint64) {
	for {
		cur := s.seenRV.Load()
		if rv <= cur || s.seenRV.CompareAndSwap(cur, rv) {
			return
		}
	}
}

func (s *Source) markSynced() {
	if s.unsynced.Add(-1) == 0 {
		s.syncedOnce.Do(func() { close(s.synced) })
	}
}
