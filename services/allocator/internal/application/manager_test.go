package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/allocatortest"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
)

const (
	testNS    = "spark"
	testApp   = "spark-app-1"
	driverPod = "driver"
)

// harness runs a Manager against fakes: a fake clientset holding the driver
// pod and the records, the fake PodService over bufconn, a hand-fed
// snapshot source and a fake clock.
type harness struct {
	t     *testing.T
	ctx   context.Context
	kube  *fake.Clientset
	store *store.Store
	pods  *allocatortest.PodService
	src   *allocatortest.Source
	clock *testingclock.FakeClock
	mgr   *Manager
	rev   int64

	mu         sync.Mutex
	violations []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: driverPod, Namespace: testNS, UID: "driver-uid"}}))
}

// newHarnessOn is newHarness on an existing fake cluster.
func newHarnessOn(t *testing.T, kube *fake.Clientset) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{
		t:     t,
		ctx:   ctx,
		kube:  kube,
		src:   allocatortest.NewSource(),
		clock: testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	var client sparkpodsv1.PodServiceClient
	h.pods, client = allocatortest.StartPodService(t)
	// Every create must find its ids already persisted.
	h.pods.BeforeCreate(func(req *sparkpodsv1.CreateExecutorPodsRequest) error {
		cm, err := h.kube.CoreV1().ConfigMaps(req.GetNamespace()).Get(context.Background(),
			store.Name(req.GetNamespace(), req.GetAppId()), metav1.GetOptions{})
		if err != nil {
			h.violate(fmt.Sprintf("create before the record exists: %v", err))
			return nil
		}
		hwm, _ := strconv.ParseInt(cm.Data["lastExecutorId"], 10, 64)
		for _, p := range req.GetPods() {
			if p.GetExecutorId() > hwm {
				h.violate(fmt.Sprintf("executor %d created above the persisted high-water mark %d", p.GetExecutorId(), hwm))
			}
		}
		return nil
	})
	var err error
	if h.store, err = store.New(store.Config{Client: h.kube}); err != nil {
		t.Fatal(err)
	}
	metrics, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.mgr, err = NewManager(Config{
		Kube: h.kube, Store: h.store, Pods: client, Snapshots: h.src, Metrics: metrics,
		Clock: h.clock, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.Go(func() error { return h.mgr.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Manager.Run: %v", err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, v := range h.violations {
			t.Error(v)
		}
	})
	return h
}

func (h *harness) violate(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violations = append(h.violations, msg)
}

// reset sends the stream's initial reset: the fake pods as the snapshot.
func (h *harness) reset() {
	h.t.Helper()
	h.rev++
	u := snapshotwatcher.Update{Reset: true, Revision: h.rev}
	if len(h.pods.Pods()) > 0 {
		u.Snapshots = append(u.Snapshots, h.pods.Snapshot(testNS, testApp, h.rev))
	}
	if err := h.src.Send(h.ctx, u); err != nil {
		h.t.Fatal(err)
	}
}

// sync sends the fake pods as the application's new snapshot.
func (h *harness) sync() {
	h.t.Helper()
	h.rev++
	u := snapshotwatcher.Update{Revision: h.rev, Snapshots: []*sparkpodsv1.ExecutorSnapshot{h.pods.Snapshot(testNS, testApp, h.rev)}}
	if err := h.src.Send(h.ctx, u); err != nil {
		h.t.Fatal(err)
	}
}

// eventually polls cond until it returns "".
func (h *harness) eventually(cond func() string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("still waiting: %s", msg)
		}
		<-tick.C
	}
}

func (h *harness) register(conf map[string]string) *App {
	h.t.Helper()
	a, err := h.mgr.Register(h.ctx, Registration{
		Namespace: testNS, AppID: testApp, DriverPodName: driverPod, SparkConf: conf,
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
	})
	if err != nil {
		h.t.Fatalf("Register: %v", err)
	}
	return a
}

func (h *harness) wantCreates(want ...[]int64) {
	h.t.Helper()
	h.eventually(func() string {
		got := h.pods.Creates()
		if !slices.EqualFunc(got, want, slices.Equal) {
			return fmt.Sprintf("creates %v, want %v", got, want)
		}
		return ""
	})
}

func (h *harness) record() map[string]string {
	h.t.Helper()
	cm, err := h.kube.CoreV1().ConfigMaps(testNS).Get(h.ctx, store.Name(testNS, testApp), metav1.GetOptions{})
	if err != nil {
		h.t.Fatalf("record: %v", err)
	}
	return cm.Data
}

func TestNotReadyUntilSynced(t *testing.T) {
	h := newHarness(t)
	if _, err := h.mgr.Register(h.ctx, Registration{Namespace: testNS, AppID: testApp}); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Register before the first snapshot: %v, want ErrNotReady", err)
	}
	if _, err := h.mgr.Get(Key{testNS, testApp}); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Get before the first snapshot: %v, want ErrNotReady", err)
	}
	h.reset()
	<-h.mgr.Ready()
	if _, err := h.mgr.Get(Key{testNS, testApp}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown application: %v, want ErrNotFound", err)
	}
}

func TestRegisterAppliesInitialTargetAndPersistsFirst(t *testing.T) {
	h := newHarness(t)
	h.reset()
	// Without dynamic allocation or spark.executor.instances, Spark starts
	// with 2 executors.
	a := h.register(map[string]string{})
	h.wantCreates([]int64{1, 2})
	if got := h.record()["lastExecutorId"]; got != "2" {
		t.Fatalf("persisted high-water mark %s, want 2", got)
	}
	cm, _ := h.kube.CoreV1().ConfigMaps(testNS).Get(h.ctx, store.Name(testNS, testApp), metav1.GetOptions{})
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != "driver-uid" {
		t.Fatalf("owner references %v, want the driver pod", cm.OwnerReferences)
	}
	if got := a.Application().GetAppId(); got != testApp {
		t.Fatalf("Application().AppId = %q", got)
	}
}

func TestInitialTarget(t *testing.T) {
	tests := []struct {
		conf map[string]string
		want int32
	}{
		{map[string]string{}, 2},
		{map[string]string{"spark.executor.instances": "5"}, 5},
		{map[string]string{"spark.dynamicAllocation.enabled": "true"}, 0},
		{map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "3"}, 3},
		{map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "3",
			"spark.dynamicAllocation.initialExecutors": "7", "spark.executor.instances": "4"}, 7},
		{map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "3",
			"spark.executor.instances": "9"}, 9},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.conf), func(t *testing.T) {
			s, err := ParseSettings(tt.conf)
			if err != nil {
				t.Fatal(err)
			}
			if s.InitialExecutors != tt.want {
				t.Fatalf("InitialExecutors = %d, want %d", s.InitialExecutors, tt.want)
			}
		})
	}
}

func TestTargetsTakeEffectAtOnceWhenNothingIsOutstanding(t *testing.T) {
	h := newHarness(t)
	h.reset()
	a := h.register(map[string]string{"spark.executor.instances": "0", "sparkpods.allocation.roundOnSnapshot": "false"})
	if err := a.SetTargets(h.ctx, map[int32]int32{0: 3}); err != nil {
		t.Fatal(err)
	}
	// No clock tick: the target triggers the round.
	h.wantCreates([]int64{1, 2, 3})
	h.sync()
	// Three pending pods are outstanding now, so a new target waits for the
	// next tick, as in Spark.
	if err := a.SetTargets(h.ctx, map[int32]int32{0: 5, 1: 1}); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(time.Second)
	h.wantCreates([]int64{1, 2, 3}, []int64{4, 5}, []int64{6})
	if got := h.record()["targets.json"]; got != `{"0":5,"1":1}` {
		t.Fatalf("persisted targets %s", got)
	}
	if err := a.SetTargets(h.ctx, map[int32]int32{3: 1}); err == nil {
		t.Fatal("SetTargets of an unregistered profile succeeded")
	}
}

func TestRoundOnSnapshotRequestsTheNextBatchWithoutATick(t *testing.T) {
	h := newHarness(t)
	h.reset()
	a := h.register(map[string]string{"spark.executor.instances": "0", "spark.kubernetes.allocation.batch.size": "2"})
	if err := a.SetTargets(h.ctx, map[int32]int32{0: 5}); err != nil {
		t.Fatal(err)
	}
	h.wantCreates([]int64{1, 2})
	// Each snapshot that shows the last batch lets the next one go, without
	// the clock moving; the batch size still applies.
	h.sync()
	h.wantCreates([]int64{1, 2}, []int64{3, 4})
	h.sync()
	h.wantCreates([]int64{1, 2}, []int64{3, 4}, []int64{5})
}

func TestRestoreResumesFromPersistedState(t *testing.T) {
	// A previous allocator registered the application, issued ids up to 7
	// and created the pods of 6 and 7.
	kube := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: driverPod, Namespace: testNS, UID: "driver-uid"}})
	st, err := store.New(store.Config{Client: kube})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecord(Registration{Namespace: testNS, AppID: testApp, DriverPodName: driverPod,
		SparkConf: map[string]string{}}, "driver-uid", time.Now(), 4)
	rec.LastExecutorID = 7
	if err := st.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}

	h := newHarnessOn(t, kube)
	if _, err := h.pods.CreateExecutorPods(h.ctx, &sparkpodsv1.CreateExecutorPodsRequest{Namespace: testNS, AppId: testApp,
		Pods: []*sparkpodsv1.ExecutorPodRequest{{ExecutorId: 6}, {ExecutorId: 7}}}); err != nil {
		t.Fatal(err)
	}
	h.pods.SetState(sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING, 6, 7)
	h.reset()
	<-h.mgr.Ready()
	a, err := h.mgr.Get(Key{testNS, testApp})
	if err != nil {
		t.Fatalf("restored application: %v", err)
	}
	// The target is 4 with 2 running: ids continue after the high-water
	// mark.
	h.wantCreates([]int64{6, 7}, []int64{8, 9})
	if got := a.Profiles()[0].GetTarget(); got != 4 {
		t.Fatalf("restored target %d, want 4", got)
	}
}

func TestRegisterIsIdempotent(t *testing.T) {
	h := newHarness(t)
	h.reset()
	conf := map[string]string{"spark.executor.instances": "0"}
	a := h.register(conf)
	b := h.register(conf)
	if a != b {
		t.Fatal("registering again returned another application")
	}
	_, err := h.mgr.Register(h.ctx, Registration{Namespace: testNS, AppID: testApp, DriverPodName: driverPod,
		SparkConf: map[string]string{"spark.executor.instances": "1"}})
	var pe *PreconditionError
	if !errors.As(err, &pe) {
		t.Fatalf("registering with another configuration: %v, want a PreconditionError", err)
	}
	_, err = h.mgr.Register(h.ctx, Registration{Namespace: testNS, AppID: "other", DriverPodName: "missing"})
	if !errors.As(err, &pe) {
		t.Fatalf("registering with a missing driver pod: %v, want a PreconditionError", err)
	}
}

func TestKillLabelsThenDeletesRunningPodsAfterGrace(t *testing.T) {
	h := newHarness(t)
	h.reset()
	a := h.register(map[string]string{
		"spark.kubernetes.executor.decommissionLabel":      "decom",
		"spark.kubernetes.executor.decommissionLabelValue": "yes",
	})
	h.wantCreates([]int64{1, 2})
	h.pods.SetState(sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING, 1, 2)
	h.sync()
	accepted, err := a.Kill(h.ctx, []int64{2, 99, 2}, a.DeleteGracePeriod())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(accepted, []int64{2}) {
		t.Fatalf("accepted %v, want [2]", accepted)
	}
	h.eventually(func() string {
		if got := h.pods.Pods()[2].Labels["decom"]; got != "yes" {
			return "executor 2 is not labelled"
		}
		return ""
	})
	if len(h.pods.Deletes()) != 0 {
		t.Fatal("a pod was deleted before the grace period")
	}
	h.eventually(func() string {
		// The kill timer may not wait yet when the clock moves; move it
		// until the pod goes.
		h.clock.Step(a.DeleteGracePeriod())
		if _, ok := h.pods.Pods()[2]; ok {
			return "executor 2's pod is not deleted"
		}
		return ""
	})
	d := h.pods.Deletes()
	if len(d) != 1 || d[0].GetPhase() != sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_RUNNING || !slices.Equal(d[0].GetExecutorIds(), []int64{2}) {
		t.Fatalf("deletes %v, want one of executor 2 in phase Running", d)
	}
}

func TestUnregisterDeletesEveryPodAndTheRecord(t *testing.T) {
	for _, deleteOnTermination := range []bool{true, false} {
		t.Run(fmt.Sprint("deleteOnTermination=", deleteOnTermination), func(t *testing.T) {
			h := newHarness(t)
			h.reset()
			h.register(map[string]string{"spark.kubernetes.executor.deleteOnTermination": strconv.FormatBool(deleteOnTermination)})
			h.wantCreates([]int64{1, 2})
			n, err := h.mgr.Unregister(h.ctx, Key{testNS, testApp})
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if deleteOnTermination {
				want = 2
			}
			if n != want || len(h.pods.Pods()) != 2-want {
				t.Fatalf("Unregister deleted %d pods (%d left), want %d", n, len(h.pods.Pods()), want)
			}
			if _, err := h.mgr.Get(Key{testNS, testApp}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after Unregister: %v", err)
			}
			if _, err := h.kube.CoreV1().ConfigMaps(testNS).Get(h.ctx, store.Name(testNS, testApp), metav1.GetOptions{}); err == nil {
				t.Fatal("the record survived Unregister")
			}
		})
	}
}

func TestReportedExecutorsAndListing(t *testing.T) {
	h := newHarness(t)
	h.reset()
	a := h.register(map[string]string{"spark.executor.instances": "3"})
	h.wantCreates([]int64{1, 2, 3})
	h.pods.SetState(sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING, 1)
	h.sync()
	if n := a.ReportRegistered([]*sparkpodsv1.RegisteredExecutor{{ExecutorId: 1}}); n != 1 {
		t.Fatalf("ReportRegistered = %d", n)
	}
	h.eventually(func() string {
		h.clock.Step(time.Second) // the round that reads the snapshot
		l := a.ListExecutors()
		if l.GetCounts().GetRunning() != 1 || l.GetCounts().GetPending() != 2 || len(l.GetExecutors()) != 3 ||
			len(l.GetRegisteredExecutors()) != 1 || l.GetSnapshotRevision() != h.rev {
			return fmt.Sprintf("listing %v", l)
		}
		return ""
	})
}

func TestOfferFoldsOldSnapshots(t *testing.T) {
	a := &App{runNow: make(chan struct{}, 1)}
	snap := func(rev int64, ids ...int64) *sparkpodsv1.ExecutorSnapshot {
		s := &sparkpodsv1.ExecutorSnapshot{Revision: rev}
		for _, id := range ids {
			s.Executors = append(s.Executors, &sparkpodsv1.Executor{ExecutorId: id})
		}
		return s
	}
	for i := range int64(maxPendingSnapshots + 1) {
		a.offer(snap(i+1, i+1))
	}
	if len(a.pending) != 2 {
		t.Fatalf("%d pending snapshots, want 2", len(a.pending))
	}
	var seen []int64
	for _, e := range a.pending[0].GetExecutors() {
		seen = append(seen, e.GetExecutorId())
	}
	if !slices.Equal(seen, []int64{1, 2, 3, 4, 5, 6, 7, 8}) || a.pending[1].GetRevision() != maxPendingSnapshots+1 {
		t.Fatalf("folded %v, last revision %d", seen, a.pending[1].GetRevision())
	}
}
