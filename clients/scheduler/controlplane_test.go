package scheduler_test

// TestAgainstTheServices runs the client against the four services as
// separate processes (bin/, built by `make build`) on the package's real
// local control plane, over mutual TLS with certificates from a local CA;
// `go test -short` skips it.

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// faultInjectorName is the identity the test calls PodService with, to
// make kwok fail an executor; the pod manager trusts it, as it trusts the
// allocator and the lifecycle service.
const faultInjectorName = "scheduler-test-fault-injector"

// services are the four sparkpods services of one test and their CA.
type services struct {
	allocator, lifecycle, podmanager string
	pki                              *servicepki.Authority
}

func startServices(t *testing.T, ns string) services {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	logDir := filepath.Join(cp.Dir(), "services", t.Name())
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("service logs in %s", logDir)
	pki, err := servicepki.Open(filepath.Join(logDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(context.Background(), cp.Client()); err != nil {
		t.Fatal(err)
	}
	start := func(name string, args ...string) *launch.Service {
		s, err := launch.Start(context.Background(), launch.Config{
			Name: name, LogDir: logDir, ReadyTimeout: 2 * time.Minute, PKI: pki,
			Args: append([]string{"--kubeconfig=" + cp.KubeconfigPath()}, args...),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	snapshot := start("snapshot", "--namespaces="+ns, "--api-polling-interval=2s")
	podman := start("podmanager", "--trusted-callers="+strings.Join([]string{launch.Identity("allocator"), launch.Identity("lifecycle"), faultInjectorName}, ","))
	allocator := start("allocator", "--snapshot-addr="+snapshot.Addr(), "--podmanager-addr="+podman.Addr(), "--leader-elect=false")
	lifecycle := start("lifecycle", "--snapshot-addr="+snapshot.Addr(), "--podmanager-addr="+podman.Addr(), "--allocator-addr="+allocator.Addr())
	return services{allocator: allocator.Addr(), lifecycle: lifecycle.Addr(), podmanager: podman.Addr(), pki: pki}
}

// eventually polls cond every 100ms until it holds, failing the test after
// two minutes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-deadline:
			t.Fatalf("%s: not reached in 2 minutes (last error: %v)", what, last)
		case <-tick.C:
		}
	}
}

func TestAgainstTheServices(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	svc := startServices(t, ns)
	ctx := context.Background()
	const appID = "spark-sched-test"

	driver := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: appID + "-driver", Labels: map[string]string{"spark-role": "driver", "spark-app-selector": appID}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "apache/spark:4.0.0"}}},
	}
	if _, err := cp.Client().CoreV1().Pods(ns).Create(ctx, driver, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	operator, err := svc.pki.ClientOptions("scheduler-test-operator", launch.OperatorGroup)
	if err != nil {
		t.Fatal(err)
	}
	c, err := scheduler.Dial(svc.allocator, svc.lifecycle,
		scheduler.WithTransport(operator),
		scheduler.WithHeartbeatInterval(500*time.Millisecond),
		scheduler.WithAcknowledgeInterval(time.Second),
		scheduler.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	// Register.
	spec := scheduler.AppSpec{
		Namespace: ns, AppID: appID, DriverPodName: driver.Name,
		SparkConf: map[string]string{
			"spark.kubernetes.container.image": "apache/spark:4.0.0",
			"spark.driver.host":                appID + "-driver-svc." + ns + ".svc",
			"spark.executor.instances":         "0",
		},
	}
	app, err := c.Register(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, spec); err != nil {
		t.Fatalf("registering again with the same spec: %v", err)
	}

	// A caller with a valid certificate but no RBAC grant is refused at
	// once, not retried, on unary calls and on the event stream alike; one
	// with no client certificate at all is not authenticated.
	stranger, err := svc.pki.ClientOptions("scheduler-test-stranger")
	if err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		name string
		as   transport.ClientOptions
		want codes.Code
	}{
		{"no RBAC grant", stranger, codes.PermissionDenied},
		{"no credentials", transport.ClientOptions{Files: transport.Files{CAFile: svc.pki.CAFile()}}, codes.Unauthenticated},
	}
	for _, r := range refusals {
		other, err := scheduler.Dial(svc.allocator, svc.lifecycle, scheduler.WithTransport(r.as), scheduler.WithCallTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Register(ctx, spec); status.Code(err) != r.want {
			t.Errorf("%s: Register = %v, want %v", r.name, err, r.want)
		}
		for _, err := range other.Application(ns, appID).Events(ctx, 0) {
			if status.Code(err) != r.want {
				t.Errorf("%s: Events = %v, want %v", r.name, err, r.want)
			}
			break
		}
		_ = other.Close()
	}

	// Follow the events from the start, as a driver does, while the rest of
	// the test goes on.
	events := make(chan *sparkpodsv1.ExecutorEvent, 16)
	eventsErr := make(chan error, 1)
	eventsCtx, stopEvents := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for ev, err := range app.Events(eventsCtx, 0) {
			if err != nil {
				eventsErr <- err
				return
			}
			select {
			case events <- ev:
			case <-eventsCtx.Done():
			}
		}
	}()
	defer func() {
		stopEvents()
		<-finished
	}()

	// Scale: two executors of profile 0, Running, reported registered.
	if _, err := app.SetTargets(ctx, map[int32]int32{0: 2}); err != nil {
		t.Fatal(err)
	}
	running := map[int64]time.Time{}
	eventually(t, "two executors Running", func() (bool, error) {
		list, err := app.Executors(ctx)
		clear(running)
		for _, e := range list.GetExecutors() {
			if e.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
				running[e.GetExecutorId()] = time.Now()
			}
		}
		return len(running) == 2, err
	})
	if n, err := app.ReportRegistered(ctx, running); err != nil || n != 2 {
		t.Fatalf("ReportRegistered = %d, %v; want 2", n, err)
	}

	// An executor fails: kwok ends its container with 137.
	var victim int64
	for id := range running {
		victim = max(victim, id)
	}
	faultInjector, err := svc.pki.ClientOptions(faultInjectorName)
	if err != nil {
		t.Fatal(err)
	}
	dial, err := faultInjector.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(svc.podmanager, dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := sparkpodsv1.NewPodServiceClient(conn).LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: ns, AppId: appID, ExecutorIds: []int64{victim},
		Annotations: map[string]string{"sparkpods.io/exit-code": "137"},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(2 * time.Minute)
	var removed *sparkpodsv1.ExecutorEvent
	for removed == nil {
		select {
		case ev := <-events:
			t.Logf("event %d: %v executor %d: %s", ev.GetSequence(), ev.GetType(), ev.GetExecutorId(), ev.GetExit().GetMessage())
			if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED &&
				ev.GetExecutorId() == victim && ev.GetExit().GetExitCode() == 137 && ev.GetExit().GetExitCausedByApp() {
				removed = ev
			}
		case err := <-eventsErr:
			t.Fatalf("events ended: %v", err)
		case <-deadline:
			t.Fatalf("no EXECUTOR_REMOVED event with exit code 137 for executor %d", victim)
		}
	}

	if acked, err := app.Acknowledge(ctx, removed.GetSequence()); err != nil || acked < removed.GetSequence() {
		t.Fatalf("Acknowledge(%d) = %d, %v", removed.GetSequence(), acked, err)
	}

	// Unregister: the allocator deletes the executor pods (at least the
	// surviving executor's).
	if n, err := app.Unregister(ctx); err != nil || n < 1 {
		t.Fatalf("Unregister = %d, %v; want at least 1 pod deleted", n, err)
	}
	eventually(t, "executor pods deleted", func() (bool, error) {
		pods, err := cp.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "spark-role=executor,spark-app-selector=" + appID})
		return err == nil && len(pods.Items) == 0, err
	})
}
