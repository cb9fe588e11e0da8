// Package integration tests the allocator end to end on the real local
// control plane (etcd, kube-apiserver, controller manager, scheduler and
// kwok): the snapshot service, the pod manager and the allocator run as
// their own binaries (bin/, built by `make build`), and the tests drive them
// as a Spark scheduler would, through the generated SchedulerService client.
// `go test -short` skips them.
package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/store"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// services are the three sparkpods processes a test runs.
type services struct {
	t         *testing.T
	cp        *controlplane.ControlPlane
	ns        string
	logDir    string
	snapshot  *launch.Service
	podman    *launch.Service
	allocator *launch.Service
	pki       *servicepki.Authority
	dial      []grpc.DialOption // an operator's certificate, allowed every application
	conn      *grpc.ClientConn
	client    sparkpodsv1.SchedulerServiceClient
}

// startServices runs the snapshot service and the pod manager, watching only
// namespace ns, and the allocator.
func startServices(t *testing.T, ns string) *services {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	logDir := filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &services{t: t, cp: cp, ns: ns, logDir: logDir}
	ctx := context.Background()
	kube := "--kubeconfig=" + cp.KubeconfigPath()
	var err error
	if s.pki, err = servicepki.Open(filepath.Join(logDir, "pki")); err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(ctx, cp.Client()); err != nil {
		t.Fatal(err)
	}
	operator, err := s.pki.ClientOptions("integration-operator", launch.OperatorGroup)
	if err != nil {
		t.Fatal(err)
	}
	if s.dial, err = operator.DialOptions(); err != nil {
		t.Fatal(err)
	}
	if s.snapshot, err = launch.Start(ctx, launch.Config{Name: "snapshot", LogDir: logDir, PKI: s.pki,
		Args: []string{kube, "--namespaces=" + ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.snapshot.Stop)
	if s.podman, err = launch.Start(ctx, launch.Config{Name: "podmanager", LogDir: logDir, PKI: s.pki, Args: []string{kube}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.podman.Stop)
	s.startAllocator()
	t.Cleanup(func() { _ = s.conn.Close() })
	t.Logf("logs in %s", logDir)
	return s
}

// startAllocator starts (or restarts) the allocator on a new port, and
// points the client at it.
func (s *services) startAllocator() {
	s.t.Helper()
	a, err := s.launchAllocator(context.Background(), s.logDir)
	if err != nil {
		s.t.Fatal(err)
	}
	s.use(a)
}

// launchAllocator starts an allocator replica logging to logDir and waits
// until it serves, which it does only once it leads.
func (s *services) launchAllocator(ctx context.Context, logDir string) (*launch.Service, error) {
	a, err := launch.Start(ctx, launch.Config{Name: "allocator", LogDir: logDir, PKI: s.pki, ReadyTimeout: 2 * time.Minute, Args: []string{
		"--kubeconfig=" + s.cp.KubeconfigPath(),
		"--snapshot-addr=" + s.snapshot.Addr(),
		"--podmanager-addr=" + s.podman.Addr(),
		"--log-level=debug",
		// Records in the test's namespace only: an allocator restores
		// every record it can list, and this one sees only the test
		// namespace's snapshots.
		"--namespace=" + s.ns,
		// A short Lease, so that a killed leader is replaced quickly.
		"--leader-election-namespace=" + s.ns,
		"--leader-election-lease-duration=2s",
		"--leader-election-renew-deadline=1500ms",
		"--leader-election-retry-period=200ms",
	}})
	if err != nil {
		return nil, err
	}
	s.t.Cleanup(a.Stop)
	return a, nil
}

// use points the client at allocator a.
func (s *services) use(a *launch.Service) {
	s.t.Helper()
	s.allocator = a
	if s.conn != nil {
		_ = s.conn.Close()
	}
	var err error
	s.conn, err = grpc.NewClient(a.Addr(), s.dial...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.client = sparkpodsv1.NewSchedulerServiceClient(s.conn)
}

// createDriver creates a driver pod for the application and returns it.
func createDriver(t *testing.T, kube kubernetes.Interface, ns, appID string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   appID + "-driver",
			Labels: map[string]string{"spark-app-selector": appID, "spark-role": "driver"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}}},
	}
	created, err := kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create driver pod: %v", err)
	}
	return created
}

// sparkConf returns a Spark configuration for an application in ns, with
// extra settings.
func sparkConf(ns, appID string, extra map[string]string) map[string]string {
	conf := map[string]string{
		"spark.app.id":                                  appID,
		"spark.app.name":                                appID,
		"spark.kubernetes.namespace":                    ns,
		"spark.kubernetes.container.image":              "spark:4.2.0",
		"spark.kubernetes.executor.podNamePrefix":       appID,
		"spark.kubernetes.driver.pod.name":              appID + "-driver",
		"spark.driver.host":                             appID + "-driver-svc." + ns + ".svc",
		"spark.kubernetes.allocation.batch.delay":       "200ms",
		"sparkpods.allocation.roundOnSnapshot":          "true",
		"spark.executor.instances":                      "0",
		"spark.kubernetes.executor.deleteOnTermination": "true",
	}
	for k, v := range extra {
		conf[k] = v
	}
	return conf
}

// executorPods lists the application's executor pods.
func executorPods(t *testing.T, kube kubernetes.Interface, ns, appID string) []corev1.Pod {
	t.Helper()
	list, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "spark-role=executor,spark-app-selector=" + appID,
	})
	if err != nil {
		t.Fatalf("list executor pods: %v", err)
	}
	return list.Items
}

// podCounts counts live (not terminating) executor pods by resource profile
// and phase.
type podCounts struct {
	total   int
	byRP    map[string]int
	running map[string]int
	pending map[string]int
}

func count(pods []corev1.Pod) podCounts {
	c := podCounts{byRP: map[string]int{}, running: map[string]int{}, pending: map[string]int{}}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		rp := p.Labels["spark-exec-resourceprofile-id"]
		c.total++
		c.byRP[rp]++
		switch p.Status.Phase {
		case corev1.PodRunning:
			c.running[rp]++
		case corev1.PodPending:
			c.pending[rp]++
		}
	}
	return c
}

// eventually polls cond every 100ms until it returns "" or timeout passes;
// cond returns what it is still waiting for.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting: %s", timeout, last)
		}
		<-tick.C
	}
}

func setTargets(t *testing.T, c sparkpodsv1.SchedulerServiceClient, ns, appID string, targets map[int32]int32) {
	t.Helper()
	req := &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: appID}
	for rp, n := range targets {
		req.Targets = append(req.Targets, &sparkpodsv1.ExecutorTarget{ResourceProfileId: rp, TotalExecutors: n})
	}
	if _, err := c.SetExecutorTargets(context.Background(), req); err != nil {
		t.Fatalf("SetExecutorTargets(%v): %v", targets, err)
	}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

// TestScaleKillUnregister registers an application with two resource
// profiles, scales it to 50 + 20 executors, scales profile 0 down and kills
// three of its executors, then unregisters it.
func TestScaleKillUnregister(t *testing.T) {
	began := time.Now()
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	kube := s.cp.Client()
	ctx := context.Background()
	const appID = "spark-scale"
	createDriver(t, kube, ns, appID)
	conf := sparkConf(ns, appID, map[string]string{
		"spark.kubernetes.dynamicAllocation.deleteGracePeriod": "500ms",
		"spark.kubernetes.executor.decommissionLabel":          "spark-decommissioning",
		"spark.kubernetes.executor.decommissionLabelValue":     "true",
	})
	reg := &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: conf,
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2, ExecutorMemoryMib: 2048}},
	}
	if _, err := s.client.RegisterApplication(ctx, reg); err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
	// Idempotent with the same configuration; refused with another.
	if _, err := s.client.RegisterApplication(ctx, reg); err != nil {
		t.Fatalf("RegisterApplication again: %v", err)
	}
	other := sparkConf(ns, appID, map[string]string{"spark.kubernetes.allocation.batch.size": "5"})
	_, err := s.client.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: other})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = s.client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: appID,
		Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 7, TotalExecutors: 1}}})
	wantCode(t, err, codes.InvalidArgument)

	setTargets(t, s.client, ns, appID, map[int32]int32{0: 50, 1: 20})
	eventually(t, 60*time.Second, func() string {
		c := count(executorPods(t, kube, ns, appID))
		if c.total != 70 || c.byRP["0"] != 50 || c.byRP["1"] != 20 || c.running["0"] != 50 || c.running["1"] != 20 {
			return fmt.Sprintf("want 50+20 running executor pods, have %+v", c)
		}
		return ""
	})
	t.Logf("50+20 executors running after %v", time.Since(began).Round(time.Millisecond))
	metrics := scrape(t, s.allocator.MetricsAddr())
	for _, want := range []string{
		"sparkpods_allocator_pods_requested_total 70",
		`sparkpods_allocator_target_executors{app_id="spark-scale",namespace="` + ns + `",resource_profile_id="1"} 20`,
		"sparkpods_allocator_rounds_total{result=\"ok\"}",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Exactly the target, not one more, once the allocator has settled.
	eventually(t, 10*time.Second, func() string {
		resp, err := s.client.ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: ns, AppId: appID})
		if err != nil {
			return err.Error()
		}
		if resp.GetCounts().GetRunning() != 70 {
			return fmt.Sprintf("allocator sees %d running", resp.GetCounts().GetRunning())
		}
		for _, p := range resp.GetProfiles() {
			if p.GetOutstanding() != 0 || len(p.GetNewlyCreatedExecutorIds()) != 0 {
				return fmt.Sprintf("profile %d still has requests outstanding: %v", p.GetResourceProfileId(), p)
			}
		}
		return ""
	})
	if c := count(executorPods(t, kube, ns, appID)); c.total != 70 {
		t.Fatalf("have %d executor pods after settling, want 70", c.total)
	}

	// Scale profile 0 down to 47 (running executors are never deleted as
	// excess), then kill three of its executors, as Spark's dynamic
	// allocation does.
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 47})
	var victims []int64
	for _, p := range executorPods(t, kube, ns, appID) {
		if p.Labels["spark-exec-resourceprofile-id"] == "0" && len(victims) < 3 {
			id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
			victims = append(victims, id)
		}
	}
	killed, err := s.client.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{Namespace: ns, AppId: appID,
		ExecutorIds: append(slices.Clone(victims), 99999)})
	if err != nil {
		t.Fatalf("KillExecutors: %v", err)
	}
	slices.Sort(victims)
	if !slices.Equal(killed.GetAcceptedExecutorIds(), victims) {
		t.Fatalf("KillExecutors accepted %v, want %v (99999 is unknown)", killed.GetAcceptedExecutorIds(), victims)
	}
	eventually(t, 30*time.Second, func() string {
		pods := executorPods(t, kube, ns, appID)
		for _, p := range pods {
			id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
			if slices.Contains(victims, id) && p.DeletionTimestamp == nil {
				return fmt.Sprintf("executor %d's pod is not deleted", id)
			}
		}
		if c := count(pods); c.byRP["0"] != 47 || c.byRP["1"] != 20 {
			return fmt.Sprintf("want 47+20 live executor pods, have %+v", c)
		}
		return ""
	})

	// Unregister deletes every executor pod and the persisted record.
	resp, err := s.client.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{Namespace: ns, AppId: appID})
	if err != nil {
		t.Fatalf("UnregisterApplication: %v", err)
	}
	if resp.GetDeletedPods() < 67 {
		t.Fatalf("UnregisterApplication deleted %d pods, want at least 67", resp.GetDeletedPods())
	}
	eventually(t, 30*time.Second, func() string {
		if c := count(executorPods(t, kube, ns, appID)); c.total != 0 {
			return fmt.Sprintf("%d executor pods are not deleted", c.total)
		}
		return ""
	})
	if _, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, store.Name(ns, appID), metav1.GetOptions{}); err == nil {
		t.Fatal("the application's ConfigMap survived UnregisterApplication")
	}
	_, err = s.client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: appID})
	wantCode(t, err, codes.NotFound)
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}

// TestExcessPendingDeleted keeps executor pods pending and lowers the
// target: the excess pending pods are deleted, the others stay.
func TestExcessPendingDeleted(t *testing.T) {
	began := time.Now()
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	kube := s.cp.Client()
	ctx := context.Background()
	const appID = "spark-pending"
	createDriver(t, kube, ns, appID)
	conf := sparkConf(ns, appID, map[string]string{
		"spark.kubernetes.executor.annotation.sparkpods.io/hold-pending": "true",
		// Pending pods younger than this are protected from deletion.
		"spark.dynamicAllocation.executorIdleTimeout":      "1s",
		"spark.kubernetes.executor.decommissionLabel":      "spark-decommissioning",
		"spark.kubernetes.executor.decommissionLabelValue": "true",
	})
	if _, err := s.client.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: conf}); err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 10})
	eventually(t, 30*time.Second, func() string {
		if c := count(executorPods(t, kube, ns, appID)); c.pending["0"] != 10 || c.total != 10 {
			return fmt.Sprintf("want 10 pending executor pods, have %+v", c)
		}
		return ""
	})
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 4})
	eventually(t, 30*time.Second, func() string {
		if c := count(executorPods(t, kube, ns, appID)); c.total != 4 || c.pending["0"] != 4 {
			return fmt.Sprintf("want 4 pending executor pods left, have %+v", c)
		}
		return ""
	})
	var left []int64
	for _, p := range executorPods(t, kube, ns, appID) {
		if p.DeletionTimestamp == nil {
			id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
			left = append(left, id)
		}
	}
	slices.Sort(left)
	// The allocator refuses the executors whose pods it deleted as excess
	// (Spark's isDeleted), and only those.
	for id := int64(1); id <= 10; id++ {
		resp, err := s.client.IsExecutorDeleted(ctx, &sparkpodsv1.IsExecutorDeletedRequest{Namespace: ns, AppId: appID, ExecutorId: id})
		if err != nil {
			t.Fatalf("IsExecutorDeleted(%d): %v", id, err)
		}
		if want := !slices.Contains(left, id); resp.GetDeleted() != want {
			t.Errorf("IsExecutorDeleted(%d) = %v, want %v (pending executors left: %v)", id, resp.GetDeleted(), want, left)
		}
	}

	// Decommissioning a pending executor labels its pod; the pod is not
	// running, so the kill after the grace period leaves it alone.
	victim := left[0]
	dec, err := s.client.DecommissionExecutors(ctx, &sparkpodsv1.DecommissionExecutorsRequest{Namespace: ns, AppId: appID,
		ExecutorIds: []int64{victim}, GracePeriod: durationpb.New(0)})
	if err != nil || !slices.Equal(dec.GetAcceptedExecutorIds(), []int64{victim}) {
		t.Fatalf("DecommissionExecutors: %v, %v", dec, err)
	}
	eventually(t, 30*time.Second, func() string {
		pod, err := kube.CoreV1().Pods(ns).Get(ctx, appID+"-exec-"+strconv.FormatInt(victim, 10), metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if pod.Labels["spark-decommissioning"] != "true" {
			return fmt.Sprintf("executor %d is not labelled for decommission: %v", victim, pod.Labels)
		}
		return ""
	})
	if c := count(executorPods(t, kube, ns, appID)); c.total != 4 {
		t.Fatalf("%d executor pods after decommissioning a pending one, want 4", c.total)
	}
	t.Logf("pending executors left: %v; test took %v", left, time.Since(began).Round(time.Millisecond))
}

// TestKilledAllocatorResumes kills the allocator with SIGKILL in the middle
// of a scale-up and starts it again: it restores the application from its
// ConfigMap, reaches the target exactly, and never issues an executor id
// twice.
func TestKilledAllocatorResumes(t *testing.T) {
	began := time.Now()
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	kube := s.cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const appID = "spark-restart"
	const target = 200
	createDriver(t, kube, ns, appID)

	// Record every executor pod ever created: an executor id with two pod
	// UIDs would be an id used twice.
	uids := newUIDRecorder()
	w, err := kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "spark-role=executor"})
	if err != nil {
		t.Fatalf("watch pods: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				uids.add(p.Labels["spark-exec-id"], string(p.UID))
			}
		}
	}()
	defer func() {
		w.Stop()
		wg.Wait()
	}()

	// Spark's pacing (20 pods a second), so that the kill lands in the
	// middle of the scale-up.
	conf := sparkConf(ns, appID, map[string]string{
		"spark.kubernetes.allocation.batch.delay": "1s",
		"sparkpods.allocation.roundOnSnapshot":    "false",
	})
	if _, err := s.client.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: conf}); err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
	setTargets(t, s.client, ns, appID, map[int32]int32{0: target})
	eventually(t, 60*time.Second, func() string {
		if n := len(executorPods(t, kube, ns, appID)); n < 40 {
			return fmt.Sprintf("%d executor pods, waiting for 40 before the kill", n)
		}
		return ""
	})
	s.allocator.Kill()
	before := len(executorPods(t, kube, ns, appID))
	if before >= target {
		t.Fatalf("the scale-up finished (%d pods) before the kill; nothing was tested", before)
	}
	t.Logf("allocator killed with %d of %d executor pods created", before, target)

	s.startAllocator()
	eventually(t, 90*time.Second, func() string {
		c := count(executorPods(t, kube, ns, appID))
		if c.total != target || c.running["0"] != target {
			return fmt.Sprintf("want %d running executor pods, have %+v", target, c)
		}
		return ""
	})
	// Settled: nothing outstanding, and still exactly the target.
	eventually(t, 10*time.Second, func() string {
		resp, err := s.client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: appID})
		if err != nil {
			return err.Error()
		}
		for _, p := range resp.GetProfiles() {
			if p.GetOutstanding() != 0 || len(p.GetNewlyCreatedExecutorIds()) != 0 || p.GetTarget() != target {
				return fmt.Sprintf("profile not settled: %v", p)
			}
		}
		return ""
	})
	pods := executorPods(t, kube, ns, appID)
	if len(pods) != target {
		t.Fatalf("%d executor pods, want exactly %d", len(pods), target)
	}
	if dup := uids.reused(); len(dup) > 0 {
		t.Fatalf("executor ids used by more than one pod: %v", dup)
	}
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, store.Name(ns, appID), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the application's ConfigMap: %v", err)
	}
	hwm, _ := strconv.ParseInt(cm.Data["lastExecutorId"], 10, 64)
	var maxID int64
	for _, p := range pods {
		id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
		maxID = max(maxID, id)
	}
	if hwm < maxID {
		t.Fatalf("persisted high-water mark %d is below executor id %d", hwm, maxID)
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != appID+"-driver" {
		t.Fatalf("ConfigMap owner references %v, want the driver pod", cm.OwnerReferences)
	}
	t.Logf("%d executors running after the restart, highest id %d, high-water mark %d; test took %v",
		target, maxID, hwm, time.Since(began).Round(time.Millisecond))
}

// scrape returns the text of a service's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return string(body)
}

// uidRecorder collects the pod UIDs seen per executor id.
type uidRecorder struct {
	mu   sync.Mutex
	uids map[string]map[string]bool
}

func newUIDRecorder() *uidRecorder { return &uidRecorder{uids: map[string]map[string]bool{}} }

func (r *uidRecorder) add(id, uid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uids[id] == nil {
		r.uids[id] = map[string]bool{}
	}
	r.uids[id][uid] = true
}

func (r *uidRecorder) reused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, u := range r.uids {
		if len(u) > 1 {
			out = append(out, id)
		}
	}
	return out
}

// TestLeaderHandOver runs a standby allocator beside the leader and kills
// the leader: the standby takes the Lease, restores the application and
// carries on from where the leader stopped.
func TestLeaderHandOver(t *testing.T) {
	began := time.Now()
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	kube := s.cp.Client()
	ctx := context.Background()
	const appID = "spark-ha"
	createDriver(t, kube, ns, appID)
	if _, err := s.client.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: sparkConf(ns, appID, nil)}); err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 10})
	waitRunning := func(n int) {
		t.Helper()
		eventually(t, 60*time.Second, func() string {
			if c := count(executorPods(t, kube, ns, appID)); c.total != n || c.running["0"] != n {
				return fmt.Sprintf("want %d running executor pods, have %+v", n, c)
			}
			return ""
		})
	}
	waitRunning(10)

	// The standby starts, finds the Lease held, and waits NOT_SERVING.
	standbyDir := filepath.Join(s.logDir, "standby")
	if err := os.MkdirAll(standbyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	type started struct {
		svc *launch.Service
		err error
	}
	standby := make(chan started, 1)
	go func() {
		svc, err := s.launchAllocator(ctx, standbyDir)
		standby <- started{svc, err}
	}()
	eventually(t, 30*time.Second, func() string {
		log, _ := os.ReadFile(filepath.Join(standbyDir, "allocator.log"))
		if !strings.Contains(string(log), "standing by; another replica leads") {
			return "the standby has not seen the leader yet"
		}
		return ""
	})
	select {
	case st := <-standby:
		t.Fatalf("the standby serves while the leader lives: %v", st.err)
	default:
	}

	killed := time.Now()
	s.allocator.Kill()
	var st started
	select {
	case st = <-standby:
	case <-time.After(2 * time.Minute):
		t.Fatal("the standby did not take over")
	}
	if st.err != nil {
		t.Fatalf("standby: %v", st.err)
	}
	t.Logf("standby serving %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	s.use(st.svc)
	app, err := s.client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: appID})
	if err != nil {
		t.Fatalf("GetApplication on the new leader: %v", err)
	}
	if p := app.GetProfiles(); len(p) != 1 || p[0].GetTarget() != 10 {
		t.Fatalf("restored profiles %v, want target 10", p)
	}
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 15})
	waitRunning(15)
	ids := map[string]bool{}
	for _, p := range executorPods(t, kube, ns, appID) {
		ids[p.Labels["spark-exec-id"]] = true
	}
	for id := 1; id <= 15; id++ {
		if !ids[strconv.Itoa(id)] {
			t.Fatalf("executor ids %v, want 1..15", ids)
		}
	}
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}
