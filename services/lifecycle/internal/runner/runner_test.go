package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

var app = eventstore.AppKey{Namespace: "spark-jobs", AppID: "spark-app-1"}

// feed plays the snapshot watcher: the test pushes updates.
type feed chan snapshotwatcher.Update

func (f feed) Run(ctx context.Context, fn func(context.Context, snapshotwatcher.Update) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-f:
			if err := fn(ctx, u); err != nil {
				return err
			}
		}
	}
}

// scheduler knows the applications in apps; creationFailures, when set, is
// the allocator's failed-pod-creation counter.
type scheduler struct {
	apps             map[eventstore.AppKey]map[string]string
	creationFailures *atomic.Int64
}

func (s scheduler) FailedPodCreations(_ context.Context, key eventstore.AppKey) (int64, error) {
	if _, ok := s.apps[key]; !ok {
		return 0, ErrNotManaged
	}
	if s.creationFailures == nil {
		return 0, nil
	}
	return s.creationFailures.Load(), nil
}

func (s scheduler) Application(_ context.Context, key eventstore.AppKey) (*sparkpodsv1.Application, error) {
	conf, ok := s.apps[key]
	if !ok {
		return nil, ErrNotManaged
	}
	return &sparkpodsv1.Application{Namespace: key.Namespace, AppId: key.AppID, SparkConf: conf}, nil
}

func (s scheduler) Registered(_ context.Context, key eventstore.AppKey) (map[int64]time.Time, error) {
	if _, ok := s.apps[key]; !ok {
		return nil, ErrNotManaged
	}
	return nil, nil
}

// pods records deletions, and whether each pod's event was recorded before
// the pod was deleted.
type pods struct {
	store *eventstore.Store

	mu                sync.Mutex
	deleted           []int64
	deletedUnrecorded []int64
}

func (p *pods) Delete(_ context.Context, key eventstore.AppKey, refs []reconcile.PodRef) ([]reconcile.PodRef, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recorded := map[int64]bool{}
	for _, ev := range p.store.Read(key, 0, 0).Events {
		recorded[ev.GetExecutorId()] = true
	}
	for _, r := range refs {
		p.deleted = append(p.deleted, r.ExecutorID)
		if !recorded[r.ExecutorID] {
			p.deletedUnrecorded = append(p.deletedUnrecorded, r.ExecutorID)
		}
	}
	return nil, nil
}

func (p *pods) LabelInactive(context.Context, eventstore.AppKey, []reconcile.PodRef) ([]reconcile.PodRef, error) {
	return nil, nil
}

func (p *pods) deletions() (deleted, unrecorded []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.deleted...), append([]int64(nil), p.deletedUnrecorded...)
}

// flakyStore fails to record while failing is set.
type flakyStore struct {
	*eventstore.Store
	failing atomic.Bool
}

func (f *flakyStore) Append(ctx context.Context, key eventstore.AppKey, evs []*sparkpodsv1.ExecutorEvent, st reconcile.State, owner *metav1.OwnerReference) ([]*sparkpodsv1.ExecutorEvent, error) {
	if f.failing.Load() {
		return nil, errors.New("apiserver unavailable")
	}
	return f.Store.Append(ctx, key, evs, st, owner)
}

type fixture struct {
	feed    feed
	clock   *testingclock.FakeClock
	store   *flakyStore
	pods    *pods
	metrics *Metrics
}

func start(t *testing.T, sched scheduler) *fixture {
	t.Helper()
	return startWith(t, sched, nil)
}

// startWith starts a runner whose Config edit changes.
func startWith(t *testing.T, sched scheduler, edit func(*Config)) *fixture {
	t.Helper()
	clk := testingclock.NewFakeClock(time.UnixMilli(1_700_000_000_000))
	es, err := eventstore.New(eventstore.Config{ConfigMaps: eventstore.KubeConfigMaps(fake.NewClientset()), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{feed: make(feed), clock: clk, store: &flakyStore{Store: es}, pods: &pods{store: es}, metrics: NewMetrics()}
	conf := Config{Snapshots: f.feed, Scheduler: sched, Pods: f.pods, Store: f.store, Clock: clk, Metrics: f.metrics}
	if edit != nil {
		edit(&conf)
	}
	r, err := New(conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

func (f *fixture) send(execs ...*sparkpodsv1.Executor) {
	f.feed <- snapshotwatcher.Update{Reset: true, Snapshots: []*sparkpodsv1.ExecutorSnapshot{{
		Namespace: app.Namespace, AppId: app.AppID, Executors: execs,
	}}}
}

// tickUntil moves the fake clock one processing interval at a time until
// cond holds; cond says what it still waits for. After each step it polls
// cond a little while in real time, for the worker to run its round.
func (f *fixture) tickUntil(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for time.Now().Before(deadline) {
		f.clock.Step(time.Second)
		for range 20 {
			if cond() == "" {
				return
			}
			<-poll.C
		}
	}
	t.Fatalf("still waiting: %s", cond())
}

// rounds steps the clock until the application's worker ran n more rounds.
func (f *fixture) rounds(t *testing.T, n int) {
	t.Helper()
	want := value(f.metrics.rounds) + float64(n)
	f.tickUntil(t, func() string {
		if got := value(f.metrics.rounds); got < want {
			return fmt.Sprintf("%v rounds, want %v", got, want)
		}
		return ""
	})
}

func failed(id int64, code int32) *sparkpodsv1.Executor {
	return &sparkpodsv1.Executor{
		ExecutorId: id, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, PodName: "exec", Phase: "Failed",
		Termination: &sparkpodsv1.ContainerTermination{ContainerName: reconcile.DefaultSparkContainerName, ExitCode: code},
	}
}

func TestFailedExecutorIsRecordedBeforeItsPodIsDeleted(t *testing.T) {
	f := start(t, scheduler{apps: map[eventstore.AppKey]map[string]string{app: nil}})
	f.send(failed(1, 137))
	f.tickUntil(t, func() string {
		if deleted, _ := f.pods.deletions(); len(deleted) == 0 {
			return "pod not deleted"
		}
		return ""
	})
	_, unrecorded := f.pods.deletions()
	if len(unrecorded) > 0 {
		t.Fatalf("pods of executors %v deleted before their events were recorded", unrecorded)
	}
	evs := f.store.Read(app, 0, 0).Events
	if len(evs) != 1 || evs[0].GetExit().GetExitCode() != 137 || evs[0].GetSequence() != 1 {
		t.Fatalf("events %v, want executor 1 removed with exit code 137", evs)
	}
}

func TestPodsStayWhileTheirEventsCannotBeRecorded(t *testing.T) {
	f := start(t, scheduler{apps: map[eventstore.AppKey]map[string]string{app: nil}})
	f.store.failing.Store(true)
	f.send(failed(1, 52))
	f.rounds(t, 5)
	if deleted, _ := f.pods.deletions(); len(deleted) > 0 {
		t.Fatalf("deleted %v while recording failed", deleted)
	}
	f.store.failing.Store(false)
	f.send(failed(1, 52)) // the pod still shows failed
	f.tickUntil(t, func() string {
		if deleted, _ := f.pods.deletions(); len(deleted) == 0 {
			return "pod not deleted after recording recovered"
		}
		return ""
	})
	if evs := f.store.Read(app, 0, 0).Events; len(evs) != 1 {
		t.Fatalf("events %v, want exactly one", evs)
	}
}

func TestExecutorsOfUnmanagedApplicationsAreLeftAlone(t *testing.T) {
	f := start(t, scheduler{})
	f.send(failed(1, 1))
	// The worker asks the scheduler, learns the application is not managed,
	// and stops.
	f.tickUntil(t, func() string {
		if n := value(f.metrics.applications); n != 0 {
			return fmt.Sprintf("%v workers running", n)
		}
		return ""
	})
	f.rounds(t, 0)
	if deleted, _ := f.pods.deletions(); len(deleted) > 0 {
		t.Fatalf("deleted %v of an unmanaged application", deleted)
	}
	if evs := f.store.Read(app, 0, 0).Events; len(evs) > 0 {
		t.Fatalf("recorded %v for an unmanaged application", evs)
	}
}

func TestApplicationsOutsideTheNamespacesAreLeftAlone(t *testing.T) {
	f := startWith(t, scheduler{apps: map[eventstore.AppKey]map[string]string{app: nil}},
		func(c *Config) { c.Namespaces = []string{"spark-other"} })
	f.send(failed(1, 137))
	f.send(failed(1, 137)) // returns once the first update was dispatched
	for range 5 {
		f.clock.Step(time.Second)
	}
	if n := value(f.metrics.applications); n != 0 {
		t.Fatalf("%v workers for an application outside the namespaces", n)
	}
	if deleted, _ := f.pods.deletions(); len(deleted) > 0 {
		t.Fatalf("deleted %v of an application outside the namespaces", deleted)
	}
	if evs := f.store.Read(app, 0, 0).Events; len(evs) > 0 {
		t.Fatalf("recorded %v for an application outside the namespaces", evs)
	}
}

// TestFailedPodCreationsCountTowardsTheFailureLimit checks Spark 4.2's rule
// that pod creations that fail count as executor failures: with
// spark.executor.maxNumFailures=10, two failed executors and five failed
// creations stay within the limit, and when the allocator's counter restarts
// (an allocator restart) its new failures are counted, passing it.
func TestFailedPodCreationsCountTowardsTheFailureLimit(t *testing.T) {
	var creations atomic.Int64
	f := start(t, scheduler{
		apps:             map[eventstore.AppKey]map[string]string{app: {"spark.executor.maxNumFailures": "10"}},
		creationFailures: &creations,
	})
	f.send(failed(1, 1), failed(2, 1))
	f.tickUntil(t, func() string {
		if n := len(f.store.Read(app, 0, 0).Events); n < 2 {
			return fmt.Sprintf("%d events, want the 2 removals", n)
		}
		return ""
	})
	limit := func() *sparkpodsv1.ExecutorEvent {
		for _, ev := range f.store.Read(app, 0, 0).Events {
			if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED {
				return ev
			}
		}
		return nil
	}
	creations.Store(5)
	f.rounds(t, 12) // well past the poll interval: the worker has read 5
	if ev := limit(); ev != nil {
		t.Fatalf("limit reported at %d failures; 7 is within the limit of 10", ev.GetFailedExecutors())
	}
	creations.Store(4) // the allocator restarted: 4 new failures since
	f.tickUntil(t, func() string {
		if limit() == nil {
			return "no FAILURE_LIMIT_EXCEEDED event"
		}
		return ""
	})
	// 2 executors + 5 creations + 4 after the restart.
	if ev := limit(); ev.GetFailedExecutors() != 11 || ev.GetMaxFailures() != 10 {
		t.Fatalf("limit event counts %d failures of max %d, want 11 of 10", ev.GetFailedExecutors(), ev.GetMaxFailures())
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	return out.GetCounter().GetValue() + out.GetGauge().GetValue()
}
