package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
)

// exitCodes are the codes injected exits use: Spark tells each apart.
var exitCodes = []int32{1, 52, 137, 143}

// app is one Spark application under test: its driver pod, its registration, a follower of
// its executor events and the exits the test caused.
type app struct {
	t      *testing.T
	s      *stack
	id     string
	target int
	handle *scheduler.Application
	events *eventLedger

	mu    sync.Mutex
	exits map[int64]int32 // executor id → the exit code it was made to exit with

	stopEvents context.CancelFunc
	eventsDone chan struct{}
	exitsDone  chan struct{} // closed when injectExits has made its exits; nil if never started
	restarts   int           // the stack's restart count when the application was registered
	// figures, when set, adds case-specific figures to the FAULT line, measured once the
	// application has converged.
	figures func() []string
}

// newApp creates the driver pod, registers the application with extra Spark settings and
// starts following its executor events.
func (s *stack) newApp(t *testing.T, appID string, extra map[string]string) *app {
	t.Helper()
	ctx := context.Background()
	driver := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   appID + "-driver",
			Labels: map[string]string{"spark-app-selector": appID, "spark-role": "driver"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}}},
	}
	if _, err := s.cp.Client().CoreV1().Pods(s.ns).Create(ctx, driver, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create driver pod: %v", err)
	}
	conf := map[string]string{
		"spark.app.id":                            appID,
		"spark.app.name":                          appID,
		"spark.kubernetes.namespace":              s.ns,
		"spark.kubernetes.container.image":        "spark:4.2.0",
		"spark.kubernetes.executor.podNamePrefix": appID,
		"spark.kubernetes.driver.pod.name":        driver.Name,
		"spark.driver.host":                       appID + "-driver-svc." + s.ns + ".svc",
		"spark.executor.instances":                "0",
		// Every injected exit counts as a failure; the suite wants replacements, not the
		// failure limit.
		"spark.executor.maxNumFailures": "1000000",
		// Large batches: a 1,000-executor scale-up in Spark's batches of 5 would take minutes.
		"spark.kubernetes.allocation.batch.size": "100",
	}
	for k, v := range extra {
		conf[k] = v
	}
	handle, err := s.client.Register(ctx, scheduler.AppSpec{Namespace: s.ns, AppID: appID, DriverPodName: driver.Name, SparkConf: conf})
	if err != nil {
		t.Fatalf("register %s: %v", appID, err)
	}
	a := &app{t: t, s: s, id: appID, handle: handle, events: newEventLedger(), exits: map[int64]int32{}, eventsDone: make(chan struct{}), restarts: s.restartCount()}
	followCtx, cancel := context.WithCancel(ctx)
	a.stopEvents = cancel
	go func() {
		defer close(a.eventsDone)
		a.followEvents(followCtx)
	}()
	t.Cleanup(a.stopFollowing)
	return a
}

// followEvents records every event until ctx ends. The client resumes by itself after
// anything a retry can cure; errors it gives up on (the lifecycle service does not know the
// application yet, right after a restart) are retried here, from the last sequence seen.
func (a *app) followEvents(ctx context.Context) {
	after := int64(0)
	for {
		for ev, err := range a.handle.Events(ctx, after) {
			if err != nil {
				break
			}
			a.events.add(ev)
		}
		if pause(ctx, 200*time.Millisecond) != nil {
			return
		}
		after = a.events.resumeAfter()
	}
}

func (a *app) stopFollowing() {
	a.stopEvents()
	<-a.eventsDone
}

// setTarget sets profile 0's target.
func (a *app) setTarget(n int) {
	a.t.Helper()
	if _, err := a.handle.SetTargets(context.Background(), map[int32]int32{0: int32(n)}); err != nil {
		a.t.Fatalf("set target %d: %v", n, err)
	}
	a.target = n
}

// startExits makes n running executors exit in the background, one every interval, with a
// random code from exitCodes; finish waits for them.
func (a *app) startExits(ctx context.Context, rng *rand.Rand, n int, interval time.Duration) {
	a.exitsDone = make(chan struct{})
	go func() {
		defer close(a.exitsDone)
		a.injectExits(ctx, rng, n, interval)
	}()
}

// injectExits makes up to n running executors exit, one every interval, with a random code
// from exitCodes, until ctx ends. It annotates the pods directly through the API server, so
// it keeps working while the pod manager is down.
func (a *app) injectExits(ctx context.Context, rng *rand.Rand, n int, interval time.Duration) {
	kube := a.s.cp.Client()
	for made := 0; made < n; {
		if pause(ctx, interval) != nil {
			return
		}
		var candidates []*corev1.Pod
		a.mu.Lock()
		for _, p := range a.s.pods.current(a.id) {
			id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
			if _, done := a.exits[id]; !done && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				candidates = append(candidates, p)
			}
		}
		a.mu.Unlock()
		if len(candidates) == 0 {
			continue
		}
		victim := candidates[rng.IntN(len(candidates))]
		code := exitCodes[rng.IntN(len(exitCodes))]
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, controlplane.AnnotationExitCode, strconv.Itoa(int(code)))
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := kube.CoreV1().Pods(a.s.ns).Patch(callCtx, victim.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		cancel()
		// Only a pod that was still running when the annotation landed is sure to exit
		// with this code; anything else (the API server is down, the pod already ended)
		// is not counted, and another victim is tried.
		if err != nil || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
		a.mu.Lock()
		a.exits[id] = code
		a.mu.Unlock()
		made++
	}
}

// injectedExits returns a copy of the exits caused so far.
func (a *app) injectedExits() map[int64]int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[int64]int32, len(a.exits))
	for id, code := range a.exits {
		out[id] = code
	}
	return out
}

// waitCreated waits until n executor ids of the application have had a pod.
func (a *app) waitCreated(n int, timeout time.Duration) {
	a.t.Helper()
	eventually(a.t, timeout, func() string {
		if c := a.s.pods.created(a.id); c < n {
			return fmt.Sprintf("%s: %d of %d executor pods created", a.id, c, n)
		}
		return ""
	})
}

// converged says what is still missing before the application is at rest: exactly the
// target of running executor pods and nothing else, nothing outstanding in the allocator,
// and an event for every exit caused. It returns "" once all of that holds.
func (a *app) converged() string {
	running := 0
	for _, p := range a.s.pods.current(a.id) {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			return fmt.Sprintf("%s: executor pod %s is %s (terminating: %v)", a.id, p.Name, p.Status.Phase, p.DeletionTimestamp != nil)
		}
		running++
	}
	if running != a.target {
		return fmt.Sprintf("%s: %d running executor pods, target %d", a.id, running, a.target)
	}
	if n := a.events.missingEvents(a.injectedExits(), a.s.pods.ended(a.id)); n > 0 {
		return fmt.Sprintf("%s: %d ended executors without an event yet", a.id, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.handle.Get(ctx)
	if err != nil {
		return fmt.Sprintf("%s: get application: %v", a.id, err)
	}
	for _, p := range resp.GetProfiles() {
		if p.GetOutstanding() != 0 || len(p.GetNewlyCreatedExecutorIds()) != 0 {
			return fmt.Sprintf("%s: profile %d has requests outstanding: %s", a.id, p.GetResourceProfileId(), p.GetBlockedReason())
		}
	}
	return ""
}

// trialResult is what one trial measured.
type trialResult struct {
	convergence time.Duration
	pods        int // executor pods in the API server at the end
	exits       int
	verdict     verdict
	reused      []int64
}

// finish waits for the injected exits and for the application to converge (timing it from
// since), checks the invariants against the API server's own list, logs the trial's FAULT
// line (with extra figures appended), and unregisters the application so that its pods do
// not fill the fake nodes for the next trial.
func (a *app) finish(caseName string, seed uint64, since time.Time, timeout time.Duration, extra ...string) trialResult {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	if a.exitsDone != nil {
		select {
		case <-a.exitsDone:
		case <-time.After(timeout):
			a.t.Errorf("the injected exits were not all made within %v", timeout)
		}
	}
	// A trial that does not converge still reports what it lost, then fails.
	if last := poll(time.Until(deadline), a.converged); last != "" {
		a.t.Errorf("not converged %v after the fault: %s", timeout, last)
	}
	res := trialResult{convergence: time.Since(since)}
	// The informer's view is a cache; the final count comes from the API server itself.
	list, err := a.s.cp.Client().CoreV1().Pods(a.s.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "spark-role=executor,spark-app-selector=" + a.id,
	})
	if err != nil {
		a.t.Fatalf("list executor pods: %v", err)
	}
	res.pods = len(list.Items)
	if res.pods != a.target {
		a.t.Errorf("%s: %d executor pods in the API server, target %d", a.id, res.pods, a.target)
	}
	exits := a.injectedExits()
	res.exits = len(exits)
	res.verdict = a.events.judge(exits, a.s.pods.ended(a.id))
	res.reused = a.s.pods.reused(a.id)
	if len(res.reused) > 0 {
		a.t.Errorf("%s: executor ids given to more than one pod: %v", a.id, res.reused)
	}
	if v := res.verdict; v.failed() {
		a.t.Errorf("%s: events: lost %v, duplicated %v, repeated %d, wrong %v", a.id, v.lost, v.duplicated, v.repeats, v.wrong)
	}
	v := res.verdict
	line := fmt.Sprintf("FAULT case=%s seed=%d trials=1 target=%d converged=%.1fs pods=%d created=%d exits=%d events=%d others=%d reused=%d duplicates=%d lost=%d wrong=%d restarts=%d resumed=%d",
		caseName, seed, a.target, res.convergence.Seconds(), res.pods, a.s.pods.created(a.id), res.exits, v.events, v.others,
		len(res.reused), len(v.duplicated)+v.repeats, len(v.lost), len(v.wrong), a.s.restartCount()-a.restarts, v.resumed)
	if a.figures != nil {
		extra = append(extra, a.figures()...)
	}
	a.t.Log(strings.Join(append([]string{line}, extra...), " "))
	a.stopFollowing()
	if a.t.Failed() {
		a.t.FailNow()
	}
	a.unregister()
	return res
}

// unregister unregisters the application and waits until its executor pods are gone.
func (a *app) unregister() {
	a.t.Helper()
	if _, err := a.handle.Unregister(context.Background()); err != nil {
		a.t.Fatalf("unregister %s: %v", a.id, err)
	}
	eventually(a.t, 5*time.Minute, func() string {
		if n := len(a.s.pods.current(a.id)); n > 0 {
			return fmt.Sprintf("%s: %d executor pods left after unregistering", a.id, n)
		}
		return ""
	})
}

// eventually polls cond every 100ms until it returns "" and fails the test if timeout passes
// first; cond says what it is still waiting for.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	if last := poll(timeout, cond); last != "" {
		t.Fatalf("after %v still waiting: %s", timeout, last)
	}
}

// poll calls cond every 100ms until it returns "" or timeout passes, and returns cond's
// last answer.
func poll(timeout time.Duration, cond func() string) string {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		last := cond()
		if last == "" || time.Now().After(deadline) {
			return last
		}
		<-tick.C
	}
}

// pause waits for d or until ctx ends, and returns ctx's error in that case.
func pause(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
