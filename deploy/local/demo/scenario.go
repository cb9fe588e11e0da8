package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// phaseTimeout bounds each phase; on this kind of machine every phase takes
// seconds, so hitting it means something is broken, not slow.
const phaseTimeout = 3 * time.Minute

type scenarioConfig struct {
	Namespace string
	Executors int
	Conns     serviceConns
	Rest      *rest.Config
	Out       io.Writer
	Fancy     bool
}

// scenario plays a Spark driver with dynamic allocation against the
// scheduler API: it registers, ramps its targets up, reports the executors
// that "registered" (those Running), reads lifecycle events, and kills,
// decommissions and releases executors the way Spark's
// ExecutorAllocationManager and scheduler backend do.
type scenario struct {
	scenarioConfig
	kube   kubernetes.Interface
	appID  string
	driver string
	view   *progress

	mu         sync.Mutex
	snapshot   *sparkpodsv1.ExecutorSnapshot
	registered map[int64]time.Time
	losses     map[int64]*sparkpodsv1.ExecutorEvent
}

func newScenario(cfg scenarioConfig) (*scenario, error) {
	kube, err := kubernetes.NewForConfig(cfg.Rest)
	if err != nil {
		return nil, err
	}
	appID := fmt.Sprintf("spark-%d", time.Now().Unix())
	return &scenario{
		scenarioConfig: cfg,
		kube:           kube,
		appID:          appID,
		driver:         appID + "-driver",
		view:           newProgress(cfg.Out, cfg.Fancy),
		registered:     map[int64]time.Time{},
		losses:         map[int64]*sparkpodsv1.ExecutorEvent{},
	}, nil
}

func (s *scenario) say(format string, args ...any) { s.view.log(fmt.Sprintf(format, args...)) }

func (s *scenario) run(ctx context.Context) error {
	if err := s.createDriver(ctx); err != nil {
		return err
	}
	if err := s.register(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.followSnapshots(gctx) })
	g.Go(func() error { return s.followEvents(gctx) })
	g.Go(func() error {
		defer cancel()
		return s.phases(gctx)
	})
	err := g.Wait()
	s.view.finish()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *scenario) phases(ctx context.Context) error {
	peak0, peak1 := s.Executors*2/3, s.Executors/3
	// Dynamic allocation doubles its request while tasks are backlogged.
	s.say("▶ ramp-up: targets double every round, as spark.dynamicAllocation does under a task backlog")
	for t0, t1 := 10, 5; ; t0, t1 = min(2*t0, peak0), min(2*t1, peak1) {
		if err := s.setTargets(ctx, t0, t1); err != nil {
			return err
		}
		if err := s.waitRunning(ctx, fmt.Sprintf("%d + %d executors running", t0, t1), t0, t1); err != nil {
			return err
		}
		if t0 == peak0 && t1 == peak1 {
			break
		}
	}

	s.say("▶ failures: 3 executors of profile 0 are OOM-killed (137), 2 of profile 1 die of a JVM OutOfMemoryError (52)")
	victims0, victims1 := s.running(0)[:3], s.running(1)[:2]
	if err := s.fail(ctx, victims0, "137", "OOMKilled"); err != nil {
		return err
	}
	if err := s.fail(ctx, victims1, "52", "Error"); err != nil {
		return err
	}
	if err := s.waitLosses(ctx, append(slices.Clone(victims0), victims1...)); err != nil {
		return err
	}
	if err := s.waitRunning(ctx, "failed executors replaced", peak0, peak1); err != nil {
		return err
	}

	s.say("▶ decommission: 10 executors of profile 1 are decommissioned (target lowered by 10)")
	decommissioned := s.running(1)[:10]
	if err := s.setTargets(ctx, peak0, peak1-10); err != nil {
		return err
	}
	if _, err := s.Conns.scheduler.DecommissionExecutors(ctx, &sparkpodsv1.DecommissionExecutorsRequest{
		Namespace: s.Namespace, AppId: s.appID, ExecutorIds: decommissioned, GracePeriod: durationpb.New(2 * time.Second),
	}); err != nil {
		return fmt.Errorf("decommission: %w", err)
	}
	if err := s.waitLosses(ctx, decommissioned); err != nil {
		return err
	}
	if err := s.waitRunning(ctx, "decommissioned executors gone", peak0, peak1-10); err != nil {
		return err
	}

	low0, low1 := max(peak0/4, 1), max(peak1/5, 1)
	s.say("▶ ramp-down: the backlog is gone; idle executors are released down to %d + %d", low0, low1)
	if err := s.setTargets(ctx, low0, low1); err != nil {
		return err
	}
	idle := append(s.running(0)[low0:], s.running(1)[low1:]...)
	if _, err := s.Conns.scheduler.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{
		Namespace: s.Namespace, AppId: s.appID, ExecutorIds: idle,
	}); err != nil {
		return fmt.Errorf("kill idle executors: %w", err)
	}
	if err := s.waitRunning(ctx, "ramped down", low0, low1); err != nil {
		return err
	}

	s.say("▶ stop: the application unregisters; its executor pods are deleted")
	if _, err := s.Conns.scheduler.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{
		Namespace: s.Namespace, AppId: s.appID,
	}); err != nil {
		return fmt.Errorf("unregister: %w", err)
	}
	return s.waitUntil(ctx, "every executor pod deleted", func() bool {
		pods, err := s.kube.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{
			LabelSelector: "spark-role=executor,spark-app-selector=" + s.appID,
		})
		return err == nil && len(pods.Items) == 0
	})
}

// createDriver makes the driver pod the executors are owned by.
func (s *scenario) createDriver(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace}}
	if _, err := s.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", s.Namespace, err)
	}
	driver := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.driver, Labels: map[string]string{
			"spark-role": "driver", "spark-app-selector": s.appID, "spark-app-name": "sparkpods-demo",
		}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "spark-kubernetes-driver", Image: "apache/spark:4.0.0"}},
		},
	}
	if _, err := s.kube.CoreV1().Pods(s.Namespace).Create(ctx, driver, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create driver pod: %w", err)
	}
	s.say("driver pod %s/%s created for application %s", s.Namespace, s.driver, s.appID)
	return nil
}

func (s *scenario) register(ctx context.Context) error {
	conf := map[string]string{
		"spark.app.id":                                         s.appID,
		"spark.app.name":                                       "sparkpods-demo",
		"spark.kubernetes.namespace":                           s.Namespace,
		"spark.kubernetes.driver.pod.name":                     s.driver,
		"spark.kubernetes.container.image":                     "apache/spark:4.0.0",
		"spark.executor.cores":                                 "1",
		"spark.executor.memory":                                "2g",
		"spark.dynamicAllocation.enabled":                      "true",
		"spark.dynamicAllocation.minExecutors":                 "0",
		"spark.dynamicAllocation.initialExecutors":             "0",
		"spark.dynamicAllocation.maxExecutors":                 fmt.Sprint(s.Executors),
		"spark.kubernetes.executor.decommissionLabel":          "spark-exec-decommissioning",
		"spark.kubernetes.dynamicAllocation.deleteGracePeriod": "2s",
	}
	_, err := s.Conns.scheduler.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: s.Namespace, AppId: s.appID, DriverPodName: s.driver, SparkConf: conf,
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{
			{Id: 0},
			{Id: 1, ExecutorCores: 2, ExecutorMemoryMib: 4096},
		},
	})
	if err != nil {
		return fmt.Errorf("register application: %w", err)
	}
	s.say("registered with the allocator: profile 0 = 1 core / 2g, profile 1 = 2 cores / 4g")
	return nil
}

func (s *scenario) setTargets(ctx context.Context, t0, t1 int) error {
	_, err := s.Conns.scheduler.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
		Namespace: s.Namespace, AppId: s.appID,
		Targets: []*sparkpodsv1.ExecutorTarget{
			{ResourceProfileId: 0, TotalExecutors: int32(t0)},
			{ResourceProfileId: 1, TotalExecutors: int32(t1)},
		},
	})
	if err != nil {
		return fmt.Errorf("set targets %d/%d: %w", t0, t1, err)
	}
	s.view.setTargets(t0, t1)
	return nil
}

// fail makes kwok end the executors' containers with exitCode, as a kubelet
// would after an OOM kill or a JVM crash.
func (s *scenario) fail(ctx context.Context, ids []int64, exitCode, reason string) error {
	_, err := s.Conns.pods.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: s.Namespace, AppId: s.appID, ExecutorIds: ids,
		Annotations: map[string]string{controlplane.AnnotationExitCode: exitCode, controlplane.AnnotationExitReason: reason},
	})
	if err != nil {
		return fmt.Errorf("make executors %v exit with %s: %w", ids, exitCode, err)
	}
	return nil
}

// followSnapshots keeps the latest snapshot for the progress view and
// reports Running executors as registered, as executors register with a
// real driver once their JVM is up.
func (s *scenario) followSnapshots(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var reported int
	for {
		resp, err := s.Conns.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: s.Namespace, AppId: s.appID})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read snapshot: %w", err)
		}
		s.mu.Lock()
		s.snapshot = resp.GetSnapshot()
		live := map[int64]bool{}
		for _, e := range s.snapshot.GetExecutors() {
			if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
				live[e.GetExecutorId()] = true
				if _, ok := s.registered[e.GetExecutorId()]; !ok {
					s.registered[e.GetExecutorId()] = time.Now()
				}
			}
		}
		for id := range s.registered {
			if !live[id] {
				delete(s.registered, id)
			}
		}
		report := make([]*sparkpodsv1.RegisteredExecutor, 0, len(s.registered))
		for id, at := range s.registered {
			report = append(report, &sparkpodsv1.RegisteredExecutor{ExecutorId: id, RegisterTime: timestamppb.New(at)})
		}
		s.view.update(s.snapshot)
		s.mu.Unlock()
		if len(report) != reported || len(report) > 0 {
			if _, err := s.Conns.scheduler.ReportRegisteredExecutors(ctx, &sparkpodsv1.ReportRegisteredExecutorsRequest{
				Namespace: s.Namespace, AppId: s.appID, Executors: report,
			}); err != nil && ctx.Err() == nil {
				return fmt.Errorf("report registered executors: %w", err)
			}
			reported = len(report)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// followEvents prints each executor loss with Spark's reason.
func (s *scenario) followEvents(ctx context.Context) error {
	stream, err := s.Conns.lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: s.Namespace, AppId: s.appID})
	if err != nil {
		return fmt.Errorf("watch executor events: %w", err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("executor events: %w", err)
		}
		ev := msg.GetEvent()
		if ev == nil {
			continue
		}
		s.mu.Lock()
		s.losses[ev.GetExecutorId()] = ev
		s.mu.Unlock()
		s.say("  ✖ executor %d lost (%s, exit code %d, caused by app: %t): %s", ev.GetExecutorId(),
			strings.TrimPrefix(ev.GetState().String(), "EXECUTOR_STATE_"), ev.GetExit().GetExitCode(),
			ev.GetExit().GetExitCausedByApp(), firstLine(ev.GetExit().GetMessage()))
	}
}

func firstLine(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// running lists the ids of the profile's Running executors, lowest first.
func (s *scenario) running(profile int32) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for _, e := range s.snapshot.GetExecutors() {
		if e.GetResourceProfileId() == profile && e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
			ids = append(ids, e.GetExecutorId())
		}
	}
	return ids
}

func (s *scenario) waitRunning(ctx context.Context, what string, t0, t1 int) error {
	return s.waitUntil(ctx, what, func() bool {
		return len(s.running(0)) == t0 && len(s.running(1)) == t1
	})
}

func (s *scenario) waitLosses(ctx context.Context, ids []int64) error {
	return s.waitUntil(ctx, fmt.Sprintf("loss events for executors %v", ids), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, id := range ids {
			if s.losses[id] == nil {
				return false
			}
		}
		return true
	})
}

func (s *scenario) waitUntil(ctx context.Context, what string, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	for !done() {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s within %s", errPhase, what, phaseTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.say("  ✔ %s (%s)", what, time.Since(started).Round(100*time.Millisecond))
	return nil
}
