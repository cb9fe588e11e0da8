package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sparkpods/sparkpods/clients/driversim"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// phaseTimeout bounds each phase; on this kind of machine every phase takes
// seconds, so hitting it means something is broken, not slow.
const phaseTimeout = 3 * time.Minute

// Profile 1 executors have two cores, so they run two tasks each.
const profile1Cores = 2

type scenarioConfig struct {
	Namespace string
	Executors int
	Conns     serviceConns
	Rest      *rest.Config
	Out       io.Writer
	Fancy     bool
	Width     int
	Logger    *slog.Logger
}

// scenario is a Spark application's life: a driver pod, and a simulated
// driver (clients/driversim) whose workload the scenario changes phase by
// phase, while it makes executors fail the way kubelets report it.
type scenario struct {
	scenarioConfig
	kube   kubernetes.Interface
	appID  string
	driver string
	sim    *driversim.Driver
	view   *progress

	mu     sync.Mutex
	losses map[int64]*sparkpodsv1.ExecutorEvent
	// quiet counts expected losses instead of printing each (ramp-down).
	quiet    bool
	released int
	// reached lists the states the application went through, for the
	// final check.
	reached []string
}

func newScenario(cfg scenarioConfig) (*scenario, error) {
	kube, err := kubernetes.NewForConfig(cfg.Rest)
	if err != nil {
		return nil, err
	}
	appID := fmt.Sprintf("spark-%x", time.Now().UnixNano())
	s := &scenario{
		scenarioConfig: cfg,
		kube:           kube,
		appID:          appID,
		driver:         appID + "-driver",
		view:           newProgress(cfg.Out, cfg.Fancy, cfg.Width),
		losses:         map[int64]*sparkpodsv1.ExecutorEvent{},
	}
	s.sim, err = driversim.New(driversim.Config{
		Scheduler:     cfg.Conns.allocator,
		Snapshot:      cfg.Conns.snapshot,
		Lifecycle:     cfg.Conns.lifecycle,
		Namespace:     cfg.Namespace,
		AppID:         appID,
		DriverPodName: s.driver,
		SparkConf:     s.sparkConf(),
		Profiles:      []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: profile1Cores, ExecutorMemoryMib: 4096}},
		OnLoss:        s.onLoss,
		Logger:        cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sparkConf is the demo application's configuration. The short timeouts make
// each phase take seconds rather than Spark's minutes.
func (s *scenario) sparkConf() map[string]string {
	return map[string]string{
		"spark.app.id":                     s.appID,
		"spark.app.name":                   "sparkpods-demo",
		"spark.kubernetes.namespace":       s.Namespace,
		"spark.kubernetes.driver.pod.name": s.driver,
		"spark.driver.host":                s.driver + "-svc." + s.Namespace + ".svc",
		"spark.driver.port":                "7078",
		"spark.kubernetes.container.image": "apache/spark:4.0.0",
		"spark.executor.cores":             "1",
		"spark.executor.memory":            "2g",

		"spark.dynamicAllocation.enabled":                          "true",
		"spark.dynamicAllocation.minExecutors":                     "0",
		"spark.dynamicAllocation.initialExecutors":                 "0",
		"spark.dynamicAllocation.maxExecutors":                     fmt.Sprint(s.Executors),
		"spark.dynamicAllocation.schedulerBacklogTimeout":          "1s",
		"spark.dynamicAllocation.sustainedSchedulerBacklogTimeout": "1s",
		"spark.dynamicAllocation.executorIdleTimeout":              "3s",

		"spark.kubernetes.executor.decommissionLabel":          "spark-exec-decommissioning",
		"spark.kubernetes.dynamicAllocation.deleteGracePeriod": "2s",
		// kwok removes a deleted Running pod at once, and Spark keeps such a
		// pod Running until the next full re-list; the demo's snapshot
		// service re-lists every 2s, and missing pods count after 2s.
		"spark.kubernetes.executor.missingPodDetectDelta": "2s",
		// The demo makes five executors fail on purpose.
		"spark.executor.maxNumFailures": "100",
	}
}

func (s *scenario) say(format string, args ...any) { s.view.log(fmt.Sprintf(format, args...)) }

func (s *scenario) run(ctx context.Context) error {
	if err := s.createDriver(ctx); err != nil {
		return err
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sim.Run(gctx) })
	g.Go(func() error { return s.refresh(gctx) })
	g.Go(func() error {
		defer cancel()
		return s.phases(gctx)
	})
	err := g.Wait()
	s.view.finish()
	switch {
	case outer.Err() != nil:
		return outer.Err()
	case errors.Is(err, context.Canceled):
		return nil // the phases ended and stopped the rest
	}
	return err
}

func (s *scenario) phases(ctx context.Context) error {
	peak0, peak1 := s.Executors*2/3, s.Executors-s.Executors*2/3
	if err := s.waitUntil(ctx, "registered with the allocator", func(st driversim.Status) bool { return st.Registered }); err != nil {
		return err
	}
	s.say("  profile 0 = 1 core / 2g, profile 1 = %d cores / 4g; spark.dynamicAllocation: min 0, max %d, backlog timeouts 1s, idle timeout 3s", profile1Cores, s.Executors)

	s.say("▶ ramp-up: a stage of %d + %d tasks is backlogged; every second dynamic allocation raises each target by 1, 2, 4, 8, …", peak0, peak1*profile1Cores)
	s.view.setScaling(true)
	s.sim.SetTasks(0, peak0)
	s.sim.SetTasks(1, peak1*profile1Cores)
	if err := s.waitRegistered(ctx, fmt.Sprintf("%d + %d executors running and registered", peak0, peak1), peak0, peak1); err != nil {
		return err
	}
	s.view.setScaling(false)

	s.say("▶ failures: 3 executors of profile 0 are OOM-killed (exit 137), 2 of profile 1 die of a JVM OutOfMemoryError (exit 52)")
	st := s.sim.Status()
	victims0, victims1 := lowest(st.Profiles[0].Registered, 3), lowest(st.Profiles[1].Registered, 2)
	if err := s.fail(ctx, victims0, "137", "OOMKilled"); err != nil {
		return err
	}
	if err := s.fail(ctx, victims1, "52", "Error"); err != nil {
		return err
	}
	if err := s.waitLosses(ctx, append(slices.Clone(victims0), victims1...)); err != nil {
		return err
	}
	if err := s.checkExits(victims0, 137); err != nil {
		return err
	}
	if err := s.checkExits(victims1, 52); err != nil {
		return err
	}
	if err := s.waitRegistered(ctx, "the allocator replaced the failed executors", peak0, peak1); err != nil {
		return err
	}

	const decom = 10
	s.say("▶ decommission: profile 1's work shrinks by %d executors; the driver decommissions %d of them (2s to drain)", decom, decom)
	s.sim.SetTasks(1, (peak1-decom)*profile1Cores)
	st = s.sim.Status()
	drained := highest(st.Profiles[1].Registered, decom)
	if err := s.sim.Decommission(ctx, drained, 2*time.Second); err != nil {
		return err
	}
	if err := s.waitLosses(ctx, drained); err != nil {
		return err
	}
	if err := s.waitRegistered(ctx, "decommissioned executors gone", peak0, peak1-decom); err != nil {
		return err
	}

	low0, low1 := max(peak0/5, 1), max(peak1/5, 1)
	s.say("▶ ramp-down: the stage ends, %d + %d tasks remain; executors idle for 3s are released with KillExecutors", low0, low1*profile1Cores)
	s.view.setScaling(true)
	s.setQuiet(true)
	s.sim.SetTasks(0, low0)
	s.sim.SetTasks(1, low1*profile1Cores)
	if err := s.waitRegistered(ctx, fmt.Sprintf("ramped down to %d + %d executors", low0, low1), low0, low1); err != nil {
		return err
	}
	s.setQuiet(false)
	s.view.setScaling(false)

	s.say("▶ stop: the application unregisters; the allocator deletes its executor pods")
	deleted, err := s.sim.Stop(ctx)
	if err != nil {
		return err
	}
	s.say("  UnregisterApplication asked to delete %d executor pods", deleted)
	return s.waitUntil(ctx, "every executor pod deleted", func(driversim.Status) bool {
		pods, err := s.kube.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{
			LabelSelector: "spark-role=executor,spark-app-selector=" + s.appID,
		})
		return err == nil && len(pods.Items) == 0
	})
}

// keepRunning runs an application with a steady workload until ctx ends.
func (s *scenario) keepRunning(ctx context.Context, n0, n1 int) error {
	if err := s.createDriver(ctx); err != nil {
		return err
	}
	s.sim.SetTasks(0, n0)
	s.sim.SetTasks(1, n1*profile1Cores)
	return s.sim.Run(ctx)
}

// lowest and highest pick n ids from a sorted list.
func lowest(ids []int64, n int) []int64  { return slices.Clone(ids[:min(n, len(ids))]) }
func highest(ids []int64, n int) []int64 { return slices.Clone(ids[max(len(ids)-n, 0):]) }

func (s *scenario) setQuiet(q bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quiet = q
	if !q && s.released > 0 {
		s.view.log(fmt.Sprintf("  ✖ %d idle executors released (Spark's reason for each: %s)", s.released, s.lastReleaseReason()))
		s.released = 0
	}
}

func (s *scenario) lastReleaseReason() string {
	var last *sparkpodsv1.ExecutorEvent
	for _, ev := range s.losses {
		if last == nil || ev.GetSequence() > last.GetSequence() {
			last = ev
		}
	}
	return firstSentence(last.GetExit().GetMessage())
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

// fail makes kwok end the executors' containers with exitCode, as a kubelet
// would after an OOM kill or a JVM crash. It annotates the pods directly:
// it plays the node, not a sparkpods service, so it does not go through
// the pod manager, which only the allocator and lifecycle may call.
func (s *scenario) fail(ctx context.Context, ids []int64, exitCode, reason string) error {
	pods, err := s.kube.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: "spark-role=executor,spark-app-selector=" + s.appID,
	})
	if err != nil {
		return fmt.Errorf("make executors %v exit with %s: %w", ids, exitCode, err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		controlplane.AnnotationExitCode: exitCode, controlplane.AnnotationExitReason: reason,
	}}})
	if err != nil {
		return err
	}
	for _, pod := range pods.Items {
		id, err := strconv.ParseInt(pod.Labels["spark-exec-id"], 10, 64)
		if err != nil || !slices.Contains(ids, id) {
			continue
		}
		if _, err := s.kube.CoreV1().Pods(s.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("make executor %d exit with %s: %w", id, exitCode, err)
		}
	}
	return nil
}

// onLoss prints each executor loss with Spark's reason.
func (s *scenario) onLoss(l driversim.Loss) {
	ev := l.Event
	s.mu.Lock()
	s.losses[ev.GetExecutorId()] = ev
	quiet := s.quiet && l.Requested
	if quiet {
		s.released++
	}
	s.mu.Unlock()
	if quiet {
		return
	}
	if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED {
		s.say("  ✖ %s", firstSentence(ev.GetExit().GetMessage()))
		return
	}
	what := "lost, pod " + strings.ToLower(strings.TrimPrefix(ev.GetState().String(), "EXECUTOR_STATE_"))
	if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING {
		what = "lost, pod missing"
	}
	s.say("  ✖ executor %d (profile %d) %s, exit code %d, caused by app: %t — %s", ev.GetExecutorId(), l.ResourceProfileID,
		what, ev.GetExit().GetExitCode(), ev.GetExit().GetExitCausedByApp(), firstSentence(ev.GetExit().GetMessage()))
}

func (s *scenario) checkExits(ids []int64, code int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		ev := s.losses[id]
		if ev.GetExit().GetExitCode() != code || !ev.GetExit().GetExitCausedByApp() {
			return fmt.Errorf("%w: executor %d lost with exit code %d (caused by app: %t), want %d caused by the app",
				errPhase, id, ev.GetExit().GetExitCode(), ev.GetExit().GetExitCausedByApp(), code)
		}
	}
	return nil
}

// firstSentence is the head of Spark's loss message, which goes on with the
// pod's reason and container statuses.
func firstSentence(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, ". "); i >= 0 {
		msg = msg[:i+1]
	}
	return msg
}

// refresh feeds the progress view.
func (s *scenario) refresh(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		s.view.update(s.sim.Status())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// waitRegistered waits until each profile has exactly n executors running
// and registered, none of them on its way out, and the targets agree.
func (s *scenario) waitRegistered(ctx context.Context, what string, n0, n1 int) error {
	want := [2]int{n0, n1}
	return s.waitUntil(ctx, what, func(st driversim.Status) bool {
		for i, p := range st.Profiles[:2] {
			if len(p.Registered) != want[i] || p.Releasing != 0 || p.Target != want[i] || int(p.Counts.GetRunning()) != want[i] {
				return false
			}
		}
		return true
	})
}

func (s *scenario) waitLosses(ctx context.Context, ids []int64) error {
	return s.waitUntil(ctx, fmt.Sprintf("loss events for executors %v", ids), func(driversim.Status) bool {
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

func (s *scenario) waitUntil(ctx context.Context, what string, done func(driversim.Status) bool) error {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	for !done(s.sim.Status()) {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s within %s", errPhase, what, phaseTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.mu.Lock()
	s.reached = append(s.reached, what)
	s.mu.Unlock()
	s.say("  ✔ %s (%s)", what, time.Since(started).Round(100*time.Millisecond))
	return nil
}
