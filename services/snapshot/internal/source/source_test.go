package source_test

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/snapshottest"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/source"
)

// The tests of this package list and watch a real API server (the local
// control plane, with kwok as the kubelet); `go test -short` skips them.
func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// flakyPods wraps the real pods API so a test can take it away (every list
// and watch fails as if the API server were down) and bring it back with the
// watch's resourceVersion expired, as after a long outage or a compaction.
type flakyPods struct {
	corev1client.PodsGetter

	mu      sync.Mutex
	down    bool
	expired bool
	watches []watch.Interface
	lists   []metav1.ListOptions
}

func (f *flakyPods) Pods(ns string) corev1client.PodInterface {
	return &flakyPodInterface{PodInterface: f.PodsGetter.Pods(ns), f: f}
}

// outage fails every request from now on and ends the open watches.
func (f *flakyPods) outage() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	for _, w := range f.watches {
		w.Stop()
	}
	f.watches = nil
}

// recover serves requests again; a watch that resumes from a resourceVersion
// gets 410 Gone, so the reflector has to list again.
func (f *flakyPods) recover() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.expired = false, true
}

func (f *flakyPods) listOptions() []metav1.ListOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lists)
}

type flakyPodInterface struct {
	corev1client.PodInterface
	f *flakyPods
}

var errDown = apierrors.NewServiceUnavailable("test outage")

func (p *flakyPodInterface) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	p.f.mu.Lock()
	down := p.f.down
	p.f.lists = append(p.f.lists, opts)
	p.f.mu.Unlock()
	if down {
		return nil, errDown
	}
	return p.PodInterface.List(ctx, opts)
}

func (p *flakyPodInterface) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if p.f.down {
		return nil, errDown
	}
	if p.f.expired && opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		p.f.expired = false
		return nil, apierrors.NewResourceExpired("too old resource version: " + opts.ResourceVersion)
	}
	w, err := p.PodInterface.Watch(ctx, opts)
	if err == nil {
		p.f.watches = append(p.f.watches, w)
	}
	return w, err
}

type harness struct {
	ns       string
	client   corev1client.PodsGetter
	store    *snapshotmodel.Store
	source   *source.Source
	registry *prometheus.Registry
}

func start(t *testing.T, pods corev1client.PodsGetter, configure func(*source.Config)) *harness {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	h := &harness{ns: controlplanetest.Namespace(t), client: cp.Client().CoreV1(), registry: prometheus.NewRegistry()}
	if pods == nil {
		pods = h.client
	}
	var err error
	if h.store, err = snapshotmodel.NewStore(snapshotmodel.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := source.Config{
		Pods:       pods,
		Store:      h.store,
		Mapping:    snapshotmodel.Mapping{CheckAllContainers: true},
		Namespaces: []string{h.ns},
		Watch:      true,
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: h.registry,
	}
	if configure != nil {
		configure(&cfg)
	}
	if h.source, err = source.New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.source.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source: %v", err)
		}
	})
	select {
	case <-h.source.Synced():
	case <-time.After(time.Minute):
		t.Fatal("source did not sync")
	}
	return h
}

func (h *harness) create(t *testing.T, app string, id int64, annotations map[string]string, labels ...string) {
	t.Helper()
	pod := snapshottest.ExecutorPod(h.ns, app, id, annotations)
	for i := 0; i+1 < len(labels); i += 2 {
		pod.Labels[labels[i]] = labels[i+1]
	}
	if _, err := h.client.Pods(h.ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) states(app string) map[int64]snapshotmodel.State {
	out := map[int64]snapshotmodel.State{}
	for _, e := range h.store.Snapshot(snapshotmodel.AppKey{Namespace: h.ns, AppID: app}).Executors {
		out[e.ID] = e.State
	}
	return out
}

func (h *harness) waitStates(t *testing.T, app string, want map[int64]snapshotmodel.State) {
	t.Helper()
	snapshottest.Eventually(t, time.Minute, "the store to hold "+app+" executors in the expected states", func(context.Context) bool {
		return maps.Equal(h.states(app), want)
	})
}

// TestRelistAfterOutageLosesAndRepeatsNothing takes the API server away,
// changes executors meanwhile, and brings it back with the watch's
// resourceVersion expired (410 Gone). The source relists: every change made
// during the outage is applied exactly once, the pod deleted meanwhile
// becomes Deleted (the watch half never removes), and executors that did not
// change get no new revision.
func TestRelistAfterOutageLosesAndRepeatsNothing(t *testing.T) {
	flaky := &flakyPods{PodsGetter: controlplanetest.ControlPlane(t).Client().CoreV1()}
	h := start(t, flaky, nil)
	const app = "spark-outage"
	hold := map[string]string{snapshottest.HoldPending: "true"}
	for id := int64(1); id <= 4; id++ {
		h.create(t, app, id, hold)
	}
	h.waitStates(t, app, map[int64]snapshotmodel.State{1: snapshotmodel.StatePending, 2: snapshotmodel.StatePending, 3: snapshotmodel.StatePending, 4: snapshotmodel.StatePending})
	// Let kwok finish with the pods (they are scheduled, then held).
	snapshottest.Eventually(t, time.Minute, "all four pods scheduled", func(context.Context) bool {
		for _, e := range h.store.Snapshot(snapshotmodel.AppKey{Namespace: h.ns, AppID: app}).Executors {
			if e.NodeName == "" {
				return false
			}
		}
		return true
	})
	before := h.store.Stats().Revision
	unchanged := map[int64]*snapshotmodel.Executor{}
	for _, e := range h.store.Snapshot(snapshotmodel.AppKey{Namespace: h.ns, AppID: app}).Executors {
		unchanged[e.ID] = e
	}

	flaky.outage()
	ctx := context.Background()
	pods := h.client.Pods(h.ns)
	if err := pods.Delete(ctx, app+"-exec-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Patch(ctx, app+"-exec-2", types.MergePatchType, []byte(`{"metadata":{"annotations":{"sparkpods.io/hold-pending":"false"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	h.create(t, app, 5, hold)
	if err := pods.Delete(ctx, app+"-exec-5", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	h.create(t, app, 6, hold)
	snapshottest.Eventually(t, time.Minute, "executor 2 running and executor 1 gone in the API server", func(ctx context.Context) bool {
		p, err := pods.Get(ctx, app+"-exec-2", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return false
		}
		_, err = pods.Get(ctx, app+"-exec-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if h.store.Stats().Revision != before {
		t.Fatal("the store changed during the outage")
	}

	flaky.recover()
	h.waitStates(t, app, map[int64]snapshotmodel.State{
		1: snapshotmodel.StateDeleted, 2: snapshotmodel.StateRunning, 3: snapshotmodel.StatePending, 4: snapshotmodel.StatePending, 6: snapshotmodel.StatePending,
	})
	changes, err := h.store.ChangesSince(before, nil)
	if err != nil {
		t.Fatal(err)
	}
	var changed []int64
	for _, ac := range changes.Apps {
		for _, e := range ac.Upserted {
			changed = append(changed, e.ID)
		}
	}
	if !slices.Equal(changed, []int64{1, 2, 6}) {
		t.Fatalf("the relist changed executors %v, want exactly 1, 2 and 6", changed)
	}
	for _, e := range h.store.Snapshot(snapshotmodel.AppKey{Namespace: h.ns, AppID: app}).Executors {
		if (e.ID == 3 || e.ID == 4) && e != unchanged[e.ID] {
			t.Fatalf("executor %d was replaced although its pod did not change", e.ID)
		}
	}
	if got := h.metric(t, "sparkpods_snapshot_relists_total", ""); got != 2 {
		t.Fatalf("relists = %v, want 2 (start and after the outage)", got)
	}
}

// TestPollingIsSparksFullReplacement runs the polling half alone: the first
// list comes at once (nothing else would fill the store), each one sets the
// full snapshot time, and a deleted pod simply disappears.
func TestPollingIsSparksFullReplacement(t *testing.T) {
	h := start(t, nil, func(c *source.Config) {
		c.Watch = false
		c.Poll = true
		c.PollInterval = 200 * time.Millisecond
	})
	const app = "spark-polled"
	key := snapshotmodel.AppKey{Namespace: h.ns, AppID: app}
	h.create(t, app, 1, map[string]string{snapshottest.HoldPending: "true"})
	h.create(t, app, 2, map[string]string{snapshottest.HoldPending: "true"})
	h.waitStates(t, app, map[int64]snapshotmodel.State{1: snapshotmodel.StatePending, 2: snapshotmodel.StatePending})
	first := h.store.Snapshot(key).FullSnapshotTime
	if first == 0 {
		t.Fatal("a polled snapshot has no full snapshot time")
	}
	if err := h.client.Pods(h.ns).Delete(context.Background(), app+"-exec-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	h.waitStates(t, app, map[int64]snapshotmodel.State{2: snapshotmodel.StatePending})
	if h.store.Snapshot(key).FullSnapshotTime <= first {
		t.Fatal("the full snapshot time did not move")
	}
}

// TestPollReadsFromTheWatchCache checks the periodic list asks for a
// resourceVersion not older than what the watch has seen, which the API
// server serves from its watch cache.
func TestPollReadsFromTheWatchCache(t *testing.T) {
	flaky := &flakyPods{PodsGetter: controlplanetest.ControlPlane(t).Client().CoreV1()}
	h := start(t, flaky, func(c *source.Config) {
		c.Poll = true
		c.PollInterval = 200 * time.Millisecond
	})
	h.create(t, "spark-cached", 1, nil)
	snapshottest.Eventually(t, time.Minute, "a poll", func(context.Context) bool {
		return h.metric(t, "sparkpods_snapshot_polls_total", "ok") >= 2
	})
	var polls int
	for _, o := range flaky.listOptions() {
		if o.ResourceVersionMatch == metav1.ResourceVersionMatchNotOlderThan && o.ResourceVersion != "" && o.Limit == 0 {
			polls++
		}
	}
	if polls == 0 {
		t.Fatalf("no list asked for resourceVersion NotOlderThan what was seen: %+v", flaky.listOptions())
	}
	if got := h.store.Snapshot(snapshotmodel.AppKey{Namespace: h.ns, AppID: "spark-cached"}).FullSnapshotTime; got == 0 {
		t.Fatal("polls with the watch on did not set the full snapshot time")
	}
}

// TestWhichPodsAreExecutors checks the selector and Spark's id rules against
// the API server: inactive pods, pods without an id or with the EXECID
// placeholder and pods with a non-numeric id stay out.
func TestWhichPodsAreExecutors(t *testing.T) {
	h := start(t, nil, nil)
	const app = "spark-filtered"
	hold := map[string]string{snapshottest.HoldPending: "true"}
	h.create(t, app, 1, hold)
	h.create(t, app, 2, hold, snapshotmodel.LabelInactive, "true")
	h.create(t, app, 3, hold, snapshotmodel.LabelExecutorID, snapshotmodel.ExecutorIDPlaceholder)
	h.create(t, app, 4, hold, snapshotmodel.LabelExecutorID, "four")
	h.create(t, app, 5, hold, snapshotmodel.LabelInactive, "false")
	snapshottest.Eventually(t, time.Minute, "the skipped pods to be counted", func(context.Context) bool {
		return h.metric(t, "sparkpods_snapshot_skipped_pods_total", "invalid_executor_id") >= 1 &&
			h.metric(t, "sparkpods_snapshot_skipped_pods_total", "no_executor_id") >= 1
	})
	h.waitStates(t, app, map[int64]snapshotmodel.State{1: snapshotmodel.StatePending, 5: snapshotmodel.StatePending})
}

func TestConfigErrors(t *testing.T) {
	base := source.Config{Pods: &flakyPods{}, Store: &snapshotmodel.Store{}, Logger: slog.New(slog.DiscardHandler), Watch: true}
	for name, mutate := range map[string]func(*source.Config){
		"no pods":          func(c *source.Config) { c.Pods = nil },
		"no store":         func(c *source.Config) { c.Store = nil },
		"nothing enabled":  func(c *source.Config) { c.Watch = false },
		"no poll interval": func(c *source.Config) { c.Poll = true },
	} {
		cfg := base
		mutate(&cfg)
		if _, err := source.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := source.New(base); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// metric reads a counter of the source's registry; label is the value of its
// only label, or "" for a counter without labels.
func (h *harness) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || labelIs(m, label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}
