package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/service"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// started is a podmanager running against the package's control plane on a
// loopback port, with a client of its own.
type started struct {
	client sparkpodsv1.PodServiceClient
	health healthpb.HealthClient
	// untrusted calls with a certificate of the same CA whose identity is
	// not one of the trusted services.
	untrusted sparkpodsv1.PodServiceClient
	metrics   string
	kube      kubernetes.Interface
}

// start runs a podmanager for the test over mutual TLS, called with the
// allocator's identity (a trusted caller); it stops when the test ends.
func start(t *testing.T, mutate ...func(*service.Config)) *started {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	pki, err := servicepki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverFiles, err := pki.Issue("sparkpods-podmanager")
	if err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{
		Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", REST: cp.RESTConfig(),
		QPS: service.DefaultQPS, Burst: service.DefaultBurst, Concurrency: service.DefaultConcurrency,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Security: grpcserver.SecurityConfig{
			TLS:     serverFiles,
			Trusted: []string{"sparkpods-allocator", "sparkpods-lifecycle"},
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	conn := dial(t, pki, svc.Addr(), "sparkpods-allocator")
	other := dial(t, pki, svc.Addr(), "spark-driver")
	t.Cleanup(func() {
		_ = conn.Close()
		_ = other.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("podmanager Run: %v", err)
		}
	})
	return &started{
		client: sparkpodsv1.NewPodServiceClient(conn), health: healthpb.NewHealthClient(conn),
		untrusted: sparkpodsv1.NewPodServiceClient(other),
		metrics:   "http://" + svc.MetricsAddr() + "/metrics", kube: cp.Client(),
	}
}

// sparkConf is an application's configuration as its driver would forward it.
func sparkConf(app string) map[string]string {
	return map[string]string{
		"spark.app.name":                   "integration " + app,
		"spark.app.id":                     app,
		"spark.kubernetes.container.image": "apache/spark:4.0.1",
		"spark.driver.host":                "driver-svc",
		"spark.executor.memory":            "512m",
	}
}

// driverPod creates a driver pod for app, the owner of its executors.
func driverPod(t *testing.T, kube kubernetes.Interface, ns, app string) *corev1.Pod {
	t.Helper()
	pod, err := kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: app + "-driver", Labels: map[string]string{"spark-app-selector": app, "spark-role": "driver"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "apache/spark:4.0.1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func createRequest(ns, app, driver string, from, to int64) *sparkpodsv1.CreateExecutorPodsRequest {
	req := &sparkpodsv1.CreateExecutorPodsRequest{Namespace: ns, AppId: app, DriverPodName: driver, SparkConf: sparkConf(app)}
	for id := from; id <= to; id++ {
		req.Pods = append(req.Pods, &sparkpodsv1.ExecutorPodRequest{ExecutorId: id})
	}
	return req
}

func executorPods(t *testing.T, kube kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	sel, err := podspec.ExecutorSelector(app)
	if err != nil {
		t.Fatal(err)
	}
	list, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// eventually polls cond every 100ms for up to a minute.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func countOutcomes(results []*sparkpodsv1.ExecutorPodResult) map[sparkpodsv1.PodOutcome]int {
	m := map[sparkpodsv1.PodOutcome]int{}
	for _, r := range results {
		m[r.GetOutcome()]++
	}
	return m
}

// TestCreateBatchTwiceConcurrently sends the same 500-pod request twice at
// once, without and then with a request id: exactly 500 pods exist, every
// executor is created once, and the duplicate reports it as existing.
func TestCreateBatchTwiceConcurrently(t *testing.T) {
	s := start(t)
	ns := controlplanetest.Namespace(t)
	const app = "spark-twice"
	driverPod(t, s.kube, ns, app)

	for round, requestID := range []string{"", "retry-me"} {
		from := int64(round*500 + 1)
		req := createRequest(ns, app, app+"-driver", from, from+499)
		req.RequestId = requestID
		began := time.Now()
		var (
			wg    sync.WaitGroup
			resps [2]*sparkpodsv1.CreateExecutorPodsResponse
			errs  [2]error
		)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resps[i], errs[i] = s.client.CreateExecutorPods(context.Background(), req)
			}()
		}
		wg.Wait()
		t.Logf("round %d: two concurrent 500-pod requests took %v", round, time.Since(began))
		created := map[int64]int{}
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("round %d call %d: %v", round, i, errs[i])
			}
			if len(resps[i].GetResults()) != 500 {
				t.Fatalf("round %d call %d: %d results, want 500", round, i, len(resps[i].GetResults()))
			}
			for j, r := range resps[i].GetResults() {
				if r.GetExecutorId() != req.GetPods()[j].GetExecutorId() {
					t.Fatalf("result %d is for executor %d, want request order", j, r.GetExecutorId())
				}
				switch r.GetOutcome() {
				case sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED:
					created[r.GetExecutorId()]++
				case sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_EXISTS:
				default:
					t.Fatalf("round %d: executor %d: %v", round, r.GetExecutorId(), r)
				}
			}
		}
		for id := from; id <= from+499; id++ {
			want := 1
			if requestID != "" {
				want = 2 // the retry is answered with the first call's results
			}
			if created[id] != want {
				t.Fatalf("round %d: executor %d reported CREATED %d times, want %d", round, id, created[id], want)
			}
		}
		if n := len(executorPods(t, s.kube, ns, app)); n != int(from+499) {
			t.Fatalf("after round %d: %d executor pods, want %d", round, n, from+499)
		}
	}

	pods := executorPods(t, s.kube, ns, app)
	for _, p := range pods {
		if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Name != app+"-driver" {
			t.Fatalf("pod %s owner references %v", p.Name, p.OwnerReferences)
		}
		if p.Annotations[podspec.ContainerNameAnnotation] != podspec.DefaultContainerName ||
			p.Annotations[podspec.CheckAllContainersAnnotation] != "true" {
			t.Fatalf("pod %s annotations %v", p.Name, p.Annotations)
		}
	}
	// The scheduler places the pods and kwok runs them.
	eventually(t, "an executor to run", func() (bool, error) {
		for _, p := range executorPods(t, s.kube, ns, app) {
			if p.Status.Phase == corev1.PodRunning {
				return true, nil
			}
		}
		return false, nil
	})

	resp, err := http.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{
		`sparkpods_podmanager_pod_operations_total{code="",operation="create",outcome="created"} 1000`,
		`sparkpods_podmanager_request_id_replays_total 1`,
		`sparkpods_podmanager_kube_request_duration_seconds_count{result="ok",verb="create"}`,
		`sparkpods_podmanager_rate_limit_wait_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestDeletingTheDriverCollectsExecutors relies on the real garbage collector
// of kube-controller-manager: executors are owned by the driver pod.
func TestDeletingTheDriverCollectsExecutors(t *testing.T) {
	s := start(t)
	ns := controlplanetest.Namespace(t)
	const app = "spark-gc"
	driverPod(t, s.kube, ns, app)
	resp, err := s.client.CreateExecutorPods(context.Background(), createRequest(ns, app, app+"-driver", 1, 20))
	if err != nil {
		t.Fatal(err)
	}
	if n := countOutcomes(resp.GetResults())[sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED]; n != 20 {
		t.Fatalf("%d created: %v", n, resp.GetResults())
	}
	if err := s.kube.CoreV1().Pods(ns).Delete(context.Background(), app+"-driver", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the executors to be garbage-collected", func() (bool, error) {
		return len(executorPods(t, s.kube, ns, app)) == 0, nil
	})
}

func TestDeleteAndLabel(t *testing.T) {
	s := start(t)
	ns := controlplanetest.Namespace(t)
	const app = "spark-writes"
	ctx := context.Background()
	if _, err := s.client.CreateExecutorPods(ctx, createRequest(ns, app, "", 1, 10)); err != nil {
		t.Fatal(err)
	}

	lresp, err := s.client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: ns, AppId: app, ExecutorIds: []int64{1, 2, 11},
		Labels:      map[string]string{"spark-exec-inactive": "true"},
		Annotations: map[string]string{"controller.kubernetes.io/pod-deletion-cost": "-5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := countOutcomes(lresp.GetResults()); c[sparkpodsv1.PodOutcome_POD_OUTCOME_LABELED] != 2 || c[sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND] != 1 {
		t.Fatalf("label results %v", lresp.GetResults())
	}
	for _, p := range executorPods(t, s.kube, ns, app) {
		labelled := p.Labels["spark-exec-inactive"] == "true" && p.Annotations["controller.kubernetes.io/pod-deletion-cost"] == "-5"
		if want := p.Labels["spark-exec-id"] == "1" || p.Labels["spark-exec-id"] == "2"; labelled != want {
			t.Fatalf("pod %s labels %v annotations %v", p.Name, p.Labels, p.Annotations)
		}
	}
	_, err = s.client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: ns, AppId: app, ExecutorIds: []int64{1}, Labels: map[string]string{"spark-exec-id": "99"},
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("relabelling spark-exec-id: %v, want InvalidArgument", err)
	}

	dresp, err := s.client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{
		Namespace: ns, AppId: app, ExecutorIds: []int64{1, 2, 3, 42}, GracePeriod: durationpb.New(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := countOutcomes(dresp.GetResults()); c[sparkpodsv1.PodOutcome_POD_OUTCOME_DELETED] != 3 || c[sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND] != 1 {
		t.Fatalf("delete results %v", dresp.GetResults())
	}
	eventually(t, "three executors to go", func() (bool, error) { return len(executorPods(t, s.kube, ns, app)) == 7, nil })
	// Deleting again is success: NotFound.
	dresp, err = s.client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1}})
	if err != nil || countOutcomes(dresp.GetResults())[sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND] != 1 {
		t.Fatalf("second delete: %v %v", dresp.GetResults(), err)
	}

	// Wait for kwok to run them all, then delete only Pending ones (none),
	// then all of them, with their own grace period: kwok plays the kubelet's
	// part of the graceful deletion.
	eventually(t, "the executors to run", func() (bool, error) {
		for _, p := range executorPods(t, s.kube, ns, app) {
			if p.Status.Phase != corev1.PodRunning {
				return false, nil
			}
		}
		return true, nil
	})
	dresp, err = s.client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{
		Namespace: ns, AppId: app, AllExecutors: true, Phase: sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_PENDING,
	})
	if err != nil || countOutcomes(dresp.GetResults())[sparkpodsv1.PodOutcome_POD_OUTCOME_SKIPPED] != 7 {
		t.Fatalf("delete pending: %v %v", dresp.GetResults(), err)
	}
	dresp, err = s.client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, AllExecutors: true})
	if err != nil {
		t.Fatal(err)
	}
	c := countOutcomes(dresp.GetResults())
	if c[sparkpodsv1.PodOutcome_POD_OUTCOME_DELETED]+c[sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_TERMINATING] != 7 {
		t.Fatalf("delete all: %v", dresp.GetResults())
	}
	eventually(t, "every executor to go", func() (bool, error) { return len(executorPods(t, s.kube, ns, app)) == 0, nil })
}

// TestRefusesPodsThatAreNotItsExecutors puts a pod of another application
// and a non-executor pod where the service would act.
func TestRefusesPodsThatAreNotItsExecutors(t *testing.T) {
	s := start(t)
	ns := controlplanetest.Namespace(t)
	const app = "spark-mine"
	ctx := context.Background()
	pods := s.kube.CoreV1().Pods(ns)
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}
	// Another application's pod under the name executor 1 of ours gets.
	name := podspec.PodName(podspec.DerivedPodNamePrefix(sparkConf(app)["spark.app.name"], ns, app), 1)
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"spark-app-selector": "spark-theirs", "spark-role": "executor", "spark-exec-id": "1"}}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod of ours with an executor id that is not an executor.
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "not-an-executor",
		Labels: map[string]string{"spark-app-selector": app, "spark-role": "driver", "spark-exec-id": "2"}}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another application's executor 3.
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "theirs-exec-3",
		Labels: map[string]string{"spark-app-selector": "spark-theirs", "spark-role": "executor", "spark-exec-id": "3"}}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cresp, err := s.client.CreateExecutorPods(ctx, createRequest(ns, app, "", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r := cresp.GetResults()[0]; r.GetOutcome() != sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED || codes.Code(r.GetCode()) != codes.PermissionDenied {
		t.Fatalf("create over another application's pod: %v", r)
	}
	dresp, err := s.client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, r := range dresp.GetResults() {
		got[r.GetExecutorId()] = r.GetOutcome().String() + "/" + codes.Code(r.GetCode()).String()
	}
	want := map[int64]string{1: "POD_OUTCOME_NOT_FOUND/OK", 2: "POD_OUTCOME_FAILED/PermissionDenied", 3: "POD_OUTCOME_NOT_FOUND/OK"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delete results %v, want %v", got, want)
	}
	lresp, err := s.client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{2}, Labels: map[string]string{"x": "y"}})
	if err != nil || codes.Code(lresp.GetResults()[0].GetCode()) != codes.PermissionDenied {
		t.Fatalf("label a non-executor: %v %v", lresp.GetResults(), err)
	}
	for _, n := range []string{name, "not-an-executor", "theirs-exec-3"} {
		p, err := pods.Get(ctx, n, metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp != nil || p.Labels["x"] != "" {
			t.Fatalf("pod %s was touched: %v %v", n, p, err)
		}
	}
}

func TestRejectsInvalidConfiguration(t *testing.T) {
	s := start(t)
	ns := controlplanetest.Namespace(t)
	for key, value := range map[string]string{
		"spark.kubernetes.container.image":                   "",
		"spark.executor.memory":                              "1.5g",
		"spark.kubernetes.executor.label.spark-app-selector": "x",
	} {
		req := createRequest(ns, "spark-bad", "", 1, 1)
		req.SparkConf[key] = value
		_, err := s.client.CreateExecutorPods(context.Background(), req)
		if key == "spark.kubernetes.container.image" {
			key = "spark.kubernetes.executor.container.image"
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), key) {
			t.Errorf("%s: %v; want InvalidArgument naming the key", key, err)
		}
	}
	if n := len(executorPods(t, s.kube, ns, "spark-bad")); n != 0 {
		t.Fatalf("%d pods created from invalid configuration", n)
	}
	// A missing driver pod is a precondition, not an invalid request.
	_, err := s.client.CreateExecutorPods(context.Background(), createRequest(ns, "spark-bad", "no-such-driver", 1, 1))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("missing driver: %v, want FailedPrecondition", err)
	}
}

func TestHealthAndNamespaceErrors(t *testing.T) {
	s := start(t)
	hr, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: sparkpodsv1.PodService_ServiceDesc.ServiceName})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hr, err)
	}
	// A namespace that does not exist: per-pod NotFound, not a raw error.
	resp, err := s.client.CreateExecutorPods(context.Background(), createRequest("no-such-namespace", "spark-x", "", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; codes.Code(r.GetCode()) != codes.NotFound || !strings.Contains(r.GetMessage(), "no-such-namespace") {
		t.Fatalf("create in a missing namespace: %v", r)
	}
}

// dial connects to addr over mutual TLS with a certificate for identity.
func dial(t *testing.T, pki *servicepki.Authority, addr, identity string) *grpc.ClientConn {
	t.Helper()
	opts, err := pki.ClientOptions(identity)
	if err != nil {
		t.Fatal(err)
	}
	dialOpts, err := opts.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, dialOpts...)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestOnlyTrustedServicesWritePods: a caller with a valid certificate whose
// identity is not the allocator's or the lifecycle service's is refused
// every PodService method, and nothing is written.
func TestOnlyTrustedServicesWritePods(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	ns := controlplanetest.Namespace(t)
	calls := map[string]func() error{
		"CreateExecutorPods": func() error {
			_, err := s.untrusted.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{Namespace: ns, AppId: "spark-a", RequestId: "r1"})
			return err
		},
		"DeleteExecutorPods": func() error {
			_, err := s.untrusted.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: "spark-a"})
			return err
		},
		"LabelExecutorPods": func() error {
			_, err := s.untrusted.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{Namespace: ns, AppId: "spark-a"})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"spark-driver"`) ||
			!strings.Contains(err.Error(), "sparkpods-allocator") {
			t.Errorf("%s by spark-driver: got %v, want PermissionDenied naming the caller and the trusted services", name, err)
		}
	}
	pods, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d pods exist after refused calls", len(pods.Items))
	}
	resp, err := http.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for method := range calls {
		want := fmt.Sprintf(`sparkpods_access_denied_total{grpc_code="PermissionDenied",grpc_method="/sparkpods.v1.PodService/%s"} 1`, method)
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
