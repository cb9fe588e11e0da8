// Package integration tests the lifecycle service end to end on the real
// local control plane (etcd, kube-apiserver, controller manager, scheduler
// and kwok): the snapshot service, the pod manager, the allocator and the
// lifecycle service run as their own binaries (bin/, built by `make build`).
// Executor pods are created by the allocator, through the pod manager, for
// an application registered with the allocator's SchedulerService; kwok
// makes them exit with the code a test annotates them with. `go test -short`
// skips these tests.
package integration

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/exitreason"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// cluster is the four sparkpods services of one test, watching one
// namespace.
type cluster struct {
	t         *testing.T
	cp        *controlplane.ControlPlane
	kube      kubernetes.Interface
	ns        string
	logDir    string
	snapshot  *launch.Service
	podman    *launch.Service
	allocator *launch.Service
	lifecycle *launch.Service
	scheduler sparkpodsv1.SchedulerServiceClient
	pods      sparkpodsv1.PodServiceClient
	pki       *servicepki.Authority
	// operator may act on every application; podWriter is an identity the
	// pod manager trusts, for the tests that write pods as the services do.
	operator, podWriter []grpc.DialOption
}

// podWriterIdentity is the test's own identity on PodService, which only
// trusted callers may use.
const podWriterIdentity = "integration-pod-writer"

func startCluster(t *testing.T) *cluster {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	logDir := filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("service logs in %s", logDir)
	c := &cluster{t: t, cp: cp, kube: cp.Client(), ns: ns, logDir: logDir}
	var err error
	if c.pki, err = servicepki.Open(filepath.Join(logDir, "pki")); err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(context.Background(), cp.Client()); err != nil {
		t.Fatal(err)
	}
	c.operator = c.dialOptions("integration-operator", launch.OperatorGroup)
	c.podWriter = c.dialOptions(podWriterIdentity)
	kube := "--kubeconfig=" + cp.KubeconfigPath()
	c.snapshot = c.start(launch.Config{Name: "snapshot", Args: []string{kube, "--namespaces=" + ns, "--api-polling-interval=2s"}})
	c.podman = c.startPodManager()
	c.allocator = c.start(launch.Config{Name: "allocator", ReadyTimeout: 2 * time.Minute, Args: []string{
		kube, "--snapshot-addr=" + c.snapshot.Addr(), "--podmanager-addr=" + c.podman.Addr(),
		"--leader-election-namespace=" + ns,
	}})
	c.startLifecycle()
	c.scheduler = sparkpodsv1.NewSchedulerServiceClient(c.dial(c.allocator.Addr(), c.operator))
	c.pods = sparkpodsv1.NewPodServiceClient(c.dial(c.podman.Addr(), c.podWriter))
	return c
}

// dialOptions issues a certificate for identity and returns the options
// that call with it.
func (c *cluster) dialOptions(identity string, groups ...string) []grpc.DialOption {
	c.t.Helper()
	client, err := c.pki.ClientOptions(identity, groups...)
	if err != nil {
		c.t.Fatal(err)
	}
	opts, err := client.DialOptions()
	if err != nil {
		c.t.Fatal(err)
	}
	return opts
}

// startPodManager starts the pod manager, trusting the test's pod writer
// beside the allocator and the lifecycle service.
func (c *cluster) startPodManager() *launch.Service {
	return c.start(launch.Config{Name: "podmanager", Args: []string{
		"--kubeconfig=" + c.cp.KubeconfigPath(),
		"--trusted-callers=" + strings.Join([]string{launch.Identity("allocator"), launch.Identity("lifecycle"), podWriterIdentity}, ","),
	}})
}

func (c *cluster) start(cfg launch.Config) *launch.Service {
	c.t.Helper()
	cfg.LogDir = c.logDir
	cfg.PKI = c.pki
	s, err := launch.Start(context.Background(), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(s.Stop)
	return s
}

// startLifecycle starts (or restarts) the lifecycle service.
func (c *cluster) startLifecycle() {
	c.t.Helper()
	if c.lifecycle != nil {
		// Keep the log of the previous process.
		_ = os.Rename(c.lifecycle.LogPath(), c.lifecycle.LogPath()+fmt.Sprintf(".%d", c.lifecycle.PID()))
	}
	c.lifecycle = c.start(launch.Config{Name: "lifecycle", Args: []string{
		"--kubeconfig=" + c.cp.KubeconfigPath(),
		"--snapshot-addr=" + c.snapshot.Addr(),
		"--podmanager-addr=" + c.podman.Addr(),
		"--allocator-addr=" + c.allocator.Addr(),
		"--log-level=debug",
	}})
}

func (c *cluster) dial(addr string, opts []grpc.DialOption) *grpc.ClientConn {
	c.t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (c *cluster) lifecycleClient() sparkpodsv1.LifecycleServiceClient {
	return sparkpodsv1.NewLifecycleServiceClient(c.dial(c.lifecycle.Addr(), c.operator))
}

// register creates a driver pod and registers an application that wants
// executors executors, with extra Spark settings.
func (c *cluster) register(appID string, executors int, extra map[string]string) *corev1.Pod {
	c.t.Helper()
	ctx := context.Background()
	driver, err := c.kube.CoreV1().Pods(c.ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   appID + "-driver",
			Labels: map[string]string{"spark-app-selector": appID, "spark-role": "driver"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create driver pod: %v", err)
	}
	conf := map[string]string{
		"spark.app.id":                            appID,
		"spark.app.name":                          appID,
		"spark.kubernetes.namespace":              c.ns,
		"spark.kubernetes.container.image":        "spark:4.2.0",
		"spark.kubernetes.executor.podNamePrefix": appID,
		"spark.kubernetes.driver.pod.name":        driver.Name,
		"spark.driver.host":                       appID + "-driver-svc." + c.ns + ".svc",
		"spark.kubernetes.allocation.batch.delay": "200ms",
		"spark.executor.instances":                fmt.Sprint(executors),
	}
	for k, v := range extra {
		conf[k] = v
	}
	if _, err := c.scheduler.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: c.ns, AppId: appID, DriverPodName: driver.Name, SparkConf: conf,
	}); err != nil {
		c.t.Fatalf("RegisterApplication: %v", err)
	}
	return driver
}

// executorPods lists the application's executor pods by executor id.
func (c *cluster) executorPods(appID string) map[string]corev1.Pod {
	c.t.Helper()
	list, err := c.kube.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "spark-role=executor,spark-app-selector=" + appID,
	})
	if err != nil {
		c.t.Fatalf("list executor pods: %v", err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Labels["spark-exec-id"]] = p
	}
	return out
}

// waitRunning waits until executors 1..n run.
func (c *cluster) waitRunning(appID string, n int) {
	c.t.Helper()
	eventually(c.t, 90*time.Second, func() string {
		pods := c.executorPods(appID)
		for id := 1; id <= n; id++ {
			p, ok := pods[fmt.Sprint(id)]
			if !ok || p.Status.Phase != corev1.PodRunning {
				return fmt.Sprintf("executor %d not running yet (%d pods)", id, len(pods))
			}
		}
		return ""
	})
}

// exit makes kwok end the executor's container with code, by annotating its
// pod through the pod manager.
func (c *cluster) exit(appID string, executorID int64, code int) {
	c.t.Helper()
	resp, err := c.pods.LabelExecutorPods(context.Background(), &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: c.ns, AppId: appID, ExecutorIds: []int64{executorID},
		Annotations: map[string]string{"sparkpods.io/exit-code": fmt.Sprint(code)},
	})
	if err != nil || resp.GetResults()[0].GetOutcome() != sparkpodsv1.PodOutcome_POD_OUTCOME_LABELED {
		c.t.Fatalf("annotate executor %d with exit code %d: %v %v", executorID, code, resp, err)
	}
}

// deleteByHand deletes an executor pod as a user would.
func (c *cluster) deleteByHand(appID string, executorID int64) {
	c.t.Helper()
	name := c.executorPods(appID)[fmt.Sprint(executorID)].Name
	if err := c.kube.CoreV1().Pods(c.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatalf("delete pod %s: %v", name, err)
	}
}

// collector follows WatchExecutorEvents and keeps every event, de-duplicated
// by sequence, as a client should.
type collector struct {
	mu     sync.Mutex
	events map[int64]*sparkpodsv1.ExecutorEvent
	last   int64 // highest sequence processed
}

func newCollector() *collector { return &collector{events: map[int64]*sparkpodsv1.ExecutorEvent{}} }

// follow streams from the collector's last sequence until ctx ends or the
// stream breaks.
func (col *collector) follow(ctx context.Context, client sparkpodsv1.LifecycleServiceClient, ns, appID string) error {
	col.mu.Lock()
	after := col.last
	col.mu.Unlock()
	stream, err := client.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace: ns, AppId: appID, AfterSequence: after, HeartbeatInterval: durationpb.New(time.Second),
	})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if ev := msg.GetEvent(); ev != nil {
			col.mu.Lock()
			col.events[ev.GetSequence()] = ev
			col.last = max(col.last, ev.GetSequence())
			col.mu.Unlock()
		}
	}
}

// byExecutor returns the removed/missing events by executor id, failing on
// an executor reported under two sequences.
func (col *collector) byExecutor(t *testing.T) map[int64]*sparkpodsv1.ExecutorEvent {
	t.Helper()
	col.mu.Lock()
	defer col.mu.Unlock()
	out := map[int64]*sparkpodsv1.ExecutorEvent{}
	for _, seq := range sortedKeys(col.events) {
		ev := col.events[seq]
		if prev, ok := out[ev.GetExecutorId()]; ok {
			if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING && prev.GetType() == ev.GetType() {
				// Spark reports a missing executor on every new full
				// snapshot until the scheduler unregisters it.
				continue
			}
			t.Fatalf("executor %d reported twice: sequences %d and %d", ev.GetExecutorId(), prev.GetSequence(), seq)
		}
		out[ev.GetExecutorId()] = ev
	}
	return out
}

func sortedKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eventually polls cond every 100ms until it returns "" or timeout passes;
// cond says what it is still waiting for.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		last := cond()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting: %s", timeout, last)
		}
		<-tick.C
	}
}

// wantExits is what each executor's event must say.
type wantExit struct {
	typ      sparkpodsv1.ExecutorEventType
	state    sparkpodsv1.ExecutorState
	code     int32
	byApp    bool
	firstMsg string // the message's first non-empty line
}

func finished(id int64, code int32) wantExit {
	state := sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED
	if code == 0 {
		state = sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED
	}
	return wantExit{typ: removedType, state: state, code: code, byApp: true,
		firstMsg: fmt.Sprintf("The executor with id %d exited with exit code %d%s.", id, code, exitreason.Describe(code))}
}

func deletedByHand(id int64) wantExit {
	return wantExit{typ: removedType, state: sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED, code: -1, byApp: false,
		firstMsg: fmt.Sprintf("The executor with id %d was deleted by a user or the framework.", id)}
}

// missing is Spark's missing-pod report; the message goes on with the
// times, which the test does not know exactly.
func missing(id int64) wantExit {
	return wantExit{typ: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING, code: -1, byApp: false,
		firstMsg: fmt.Sprintf("The executor with ID %d (registered at ", id)}
}

const removedType = sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED

func checkEvents(t *testing.T, got map[int64]*sparkpodsv1.ExecutorEvent, want map[int64]wantExit) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got events for executors %v, want %v", sortedKeys(got), sortedKeys(want))
	}
	for id, w := range want {
		ev, ok := got[id]
		if !ok {
			t.Errorf("executor %d: no event", id)
			continue
		}
		exit := ev.GetExit()
		if ev.GetType() != w.typ || ev.GetState() != w.state ||
			exit.GetExitCode() != w.code || exit.GetExitCausedByApp() != w.byApp {
			t.Errorf("executor %d: got %v %v exit code %d causedByApp %v, want %v %v %d %v",
				id, ev.GetType(), ev.GetState(), exit.GetExitCode(), exit.GetExitCausedByApp(), w.typ, w.state, w.code, w.byApp)
		}
		msg := exit.GetMessage()
		switch {
		case w.byApp:
			// Spark's layout: a leading newline, the exit line, the API's
			// reason and message, the container statuses, "\n" + 6 spaces.
			// (The container descriptions themselves are empty until the
			// snapshot service fills Executor.container_statuses.)
			if !strings.HasPrefix(msg, "\n"+w.firstMsg+"\n") || !strings.Contains(msg, "\nThe API gave the following container statuses:\n") ||
				!strings.HasSuffix(msg, "\n      ") {
				t.Errorf("executor %d: message %q does not read like Spark's for %q", id, msg, w.firstMsg)
			}
		case w.typ == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING:
			if !strings.HasPrefix(msg, w.firstMsg) || !strings.HasSuffix(msg, "configured by `spark.kubernetes.executor.missingPodDetectDelta`. The executor may have been deleted but the driver missed the deletion event. Marking this executor as failed.") {
				t.Errorf("executor %d: message %q is not Spark's missing-pod message", id, msg)
			}
		case msg != w.firstMsg:
			t.Errorf("executor %d: message %q, want %q", id, msg, w.firstMsg)
		}
	}
}

// TestExitsAreReportedWithSparksReasonsThenPodsDeleted makes executors end
// in every way Spark tells apart, while the event client is partly
// disconnected: five exit with codes 0, 1, 52, 137 and 143; a pending one is
// deleted by hand; a running, registered one is deleted by hand (kwok removes
// a deleted running pod at once, in phase Running, so Spark's states never
// show it deleted: missing-pod detection reports it). After resuming, the
// client has every event once with Spark's reasons, and the finished pods are
// deleted.
func TestExitsAreReportedWithSparksReasonsThenPodsDeleted(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	ctx := context.Background()
	const appID, pendingAppID = "spark-exits", "spark-pending"
	driver := c.register(appID, 6, map[string]string{"spark.kubernetes.executor.missingPodDetectDelta": "1s"})
	c.register(pendingAppID, 1, map[string]string{"spark.kubernetes.executor.annotation.sparkpods.io/hold-pending": "true"})
	c.waitRunning(appID, 6)
	eventually(t, 60*time.Second, func() string {
		if _, ok := c.executorPods(pendingAppID)["1"]; !ok {
			return "pending executor not created yet"
		}
		return ""
	})
	// The scheduler registered executor 6 a minute ago.
	if _, err := c.scheduler.ReportRegisteredExecutors(ctx, &sparkpodsv1.ReportRegisteredExecutorsRequest{
		Namespace: c.ns, AppId: appID,
		Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 6, RegisterTime: timestamppb.New(time.Now().Add(-time.Minute))}},
	}); err != nil {
		t.Fatal(err)
	}
	client := c.lifecycleClient()

	want := map[int64]wantExit{6: missing(6)}
	codes := map[int64]int{1: 0, 2: 1, 3: 52, 4: 137, 5: 143}
	for id, code := range codes {
		want[id] = finished(id, int32(code))
	}

	// The client follows the first three exits, then goes away.
	col := newCollector()
	followCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- col.follow(followCtx, client, c.ns, appID) }()
	for id := int64(1); id <= 3; id++ {
		c.exit(appID, id, codes[id])
	}
	eventually(t, 60*time.Second, func() string {
		if n := len(col.byExecutor(t)); n < 3 {
			return fmt.Sprintf("%d of the first 3 events", n)
		}
		return ""
	})
	cancel()
	t.Logf("client disconnected: %v", <-done)

	// While it is away, two more executors exit and two are deleted by hand.
	c.exit(appID, 4, codes[4])
	c.exit(appID, 5, codes[5])
	c.deleteByHand(appID, 6)
	c.deleteByHand(pendingAppID, 1)

	// The finished pods are deleted once their events are recorded.
	eventually(t, 60*time.Second, func() string {
		pods := c.executorPods(appID)
		for id := range 6 {
			if p, ok := pods[fmt.Sprint(id+1)]; ok {
				return fmt.Sprintf("pod of executor %d still there (%s)", id+1, p.Status.Phase)
			}
		}
		return ""
	})

	// The client comes back and resumes after the last sequence it saw.
	followCtx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() { done <- col.follow(followCtx, client, c.ns, appID) }()
	eventually(t, 30*time.Second, func() string {
		if n := len(col.byExecutor(t)); n < len(want) {
			return fmt.Sprintf("%d of %d events", n, len(want))
		}
		return ""
	})
	// Told that executor 6 is gone, the scheduler unregisters it.
	if _, err := c.scheduler.ReportRegisteredExecutors(ctx, &sparkpodsv1.ReportRegisteredExecutorsRequest{Namespace: c.ns, AppId: appID}); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, col.byExecutor(t), want)

	pending := newCollector()
	go func() { _ = pending.follow(followCtx, client, c.ns, pendingAppID) }()
	eventually(t, 30*time.Second, func() string {
		if len(pending.byExecutor(t)) == 0 {
			return "no event for the pending executor deleted by hand"
		}
		return ""
	})
	checkEvents(t, pending.byExecutor(t), map[int64]wantExit{1: deletedByHand(1)})

	// The events are in ConfigMaps owned by the driver pod.
	cms, err := c.kube.CoreV1().ConfigMaps(c.ns).List(ctx, metav1.ListOptions{LabelSelector: eventstore.AppSelector(appID)})
	if err != nil || len(cms.Items) == 0 {
		t.Fatalf("event segments: %v, %v", cms, err)
	}
	for _, cm := range cms.Items {
		if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != driver.UID {
			t.Errorf("segment %s owners %v, want the driver pod", cm.Name, cm.OwnerReferences)
		}
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// TestKeptPodIsLabelledInactive: with deleteOnTermination=false a failed
// executor is reported and its pod kept, labelled spark-exec-inactive=true.
func TestKeptPodIsLabelledInactive(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	const appID = "spark-kept"
	c.register(appID, 1, map[string]string{"spark.kubernetes.executor.deleteOnTermination": "false"})
	c.waitRunning(appID, 1)
	c.exit(appID, 1, 137)
	eventually(t, 60*time.Second, func() string {
		p, ok := c.executorPods(appID)["1"]
		if !ok {
			return "the pod is gone"
		}
		if p.Labels["spark-exec-inactive"] != "true" {
			return fmt.Sprintf("pod in phase %s not labelled inactive yet", p.Status.Phase)
		}
		return ""
	})
	col := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = col.follow(ctx, c.lifecycleClient(), c.ns, appID) }()
	eventually(t, 30*time.Second, func() string {
		if len(col.byExecutor(t)) == 0 {
			return "no event"
		}
		return ""
	})
	checkEvents(t, col.byExecutor(t), map[int64]wantExit{1: finished(1, 137)})
	if c.executorPods(appID)["1"].DeletionTimestamp != nil {
		t.Fatal("kept pod is being deleted")
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// TestEventsSurviveASIGKILLedLifecycleService kills the lifecycle service
// with SIGKILL between an exit and the deletion of its pod:
//
//  1. executor 1 exits; its event is recorded and its pod deleted;
//  2. the pod manager is down, so when executor 2 exits its event is
//     recorded but its pod cannot be deleted; now the lifecycle service is
//     killed;
//  3. executor 3 exits while no lifecycle service runs;
//  4. the pod manager and the lifecycle service come back.
//
// A client resuming from sequence 0 on the new process gets the three
// events once each, under sequences 1, 2 and 3 (executor 2 is not reported
// again under a new number), and pods 2 and 3 are deleted.
func TestEventsSurviveASIGKILLedLifecycleService(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	const appID = "spark-restart"
	c.register(appID, 3, nil)
	c.waitRunning(appID, 3)
	podGone := func(id string) func() string {
		return func() string {
			if p, ok := c.executorPods(appID)[id]; ok {
				return fmt.Sprintf("pod of executor %s still there (%s)", id, p.Status.Phase)
			}
			return ""
		}
	}

	c.exit(appID, 1, 52)
	eventually(t, 60*time.Second, podGone("1"))

	// Annotate first: the annotation goes through the pod manager.
	c.exit(appID, 2, 137)
	c.podman.Kill()
	eventually(t, 60*time.Second, func() string {
		resp, err := c.lifecycleClient().ListExecutorEvents(context.Background(), &sparkpodsv1.ListExecutorEventsRequest{Namespace: c.ns, AppId: appID})
		if err != nil || resp.GetLastSequence() < 2 {
			return fmt.Sprintf("event of executor 2 not recorded yet: %v %v", resp, err)
		}
		return ""
	})
	if p, ok := c.executorPods(appID)["2"]; !ok || p.Status.Phase != corev1.PodFailed {
		t.Fatalf("pod of executor 2 should still be there, failed: %v", p.Status.Phase)
	}
	c.lifecycle.Kill()

	// With the pod manager down, executor 3 is made to exit directly.
	pod3 := c.executorPods(appID)["3"]
	patch := []byte(`{"metadata":{"annotations":{"sparkpods.io/exit-code":"143"}}}`)
	if _, err := c.kube.CoreV1().Pods(c.ns).Patch(context.Background(), pod3.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string {
		if p := c.executorPods(appID)["3"]; p.Status.Phase != corev1.PodFailed {
			return "executor 3 has not failed yet: " + string(p.Status.Phase)
		}
		return ""
	})

	c.podman = c.startPodManager()
	c.startLifecycle()

	col := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = col.follow(ctx, c.lifecycleClient(), c.ns, appID) }()
	eventually(t, 60*time.Second, func() string {
		if n := len(col.byExecutor(t)); n < 3 {
			return fmt.Sprintf("%d of 3 events", n)
		}
		return cmp.Or(podGone("2")(), podGone("3")())
	})
	checkEvents(t, col.byExecutor(t), map[int64]wantExit{1: finished(1, 52), 2: finished(2, 137), 3: finished(3, 143)})
	col.mu.Lock()
	if !slices.Equal(sortedKeys(col.events), []int64{1, 2, 3}) {
		t.Errorf("sequences %v, want [1 2 3]", sortedKeys(col.events))
	}
	col.mu.Unlock()
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// TestFailureLimitIsReportedOnTheStream: with spark.executor.maxNumFailures
// at 1, the second failed executor passes the limit, and the client is told
// with Spark's reason (its driver would exit with code 11 here).
func TestFailureLimitIsReportedOnTheStream(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	const appID = "spark-limit"
	c.register(appID, 2, map[string]string{"spark.executor.maxNumFailures": "1"})
	c.waitRunning(appID, 2)
	c.exit(appID, 1, 1)
	c.exit(appID, 2, 137)
	col := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = col.follow(ctx, c.lifecycleClient(), c.ns, appID) }()
	eventually(t, 60*time.Second, func() string {
		if n := len(col.byExecutor(t)); n < 3 {
			return fmt.Sprintf("%d of 3 events", n)
		}
		return ""
	})
	got := col.byExecutor(t)
	limit := got[0]
	delete(got, 0)
	checkEvents(t, got, map[int64]wantExit{1: finished(1, 1), 2: finished(2, 137)})
	if limit.GetType() != sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED ||
		limit.GetFailedExecutors() != 2 || limit.GetMaxFailures() != 1 ||
		limit.GetExit().GetExitCode() != 11 || limit.GetExit().GetMessage() != "Max number of executor failures (1) reached" {
		t.Fatalf("got %v, want the failure limit (2 failures, max 1) with Spark's reason", limit)
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}
