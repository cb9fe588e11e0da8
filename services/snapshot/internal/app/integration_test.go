package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/app"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/snapshottest"
)

const (
	pending = sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING
	running = sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING
	failed  = sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED
	deleted = sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED
)

func createPod(t *testing.T, client kubernetes.Interface, pod *corev1.Pod) {
	t.Helper()
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
}

func patchPod(t *testing.T, client kubernetes.Interface, ns, name, patch string, subresources ...string) {
	t.Helper()
	_, err := client.CoreV1().Pods(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, subresources...)
	if err != nil {
		t.Fatalf("patch pod %s: %v", name, err)
	}
}

func deletePod(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()
	if err := client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s: %v", name, err)
	}
}

func stateNames(execs []*sparkpodsv1.Executor) []string {
	var out []string
	for _, e := range execs {
		out = append(out, strings.TrimPrefix(e.GetState().String(), "EXECUTOR_STATE_"))
	}
	return out
}

// allIn reports whether the application has exactly ids, all in state want.
func allIn(key snapshotwatcher.AppKey, want sparkpodsv1.ExecutorState, ids ...int64) func(*snapshottest.Recorder) bool {
	return func(r *snapshottest.Recorder) bool {
		s := r.Snapshot(key)
		if len(s.GetExecutors()) != len(ids) {
			return false
		}
		for i, e := range s.GetExecutors() {
			if e.GetExecutorId() != ids[i] || e.GetState() != want {
				return false
			}
		}
		return true
	}
}

// TestTwoApplicationsLifecycle follows the executors of two applications in
// one namespace from creation to deletion through the real gRPC client: each
// executor is seen Pending, Running, Failed (with its exit code and reason)
// and Deleted, in that order, and a watcher of one application never hears of
// the other.
func TestTwoApplicationsLifecycle(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	client := cp.Client()
	svc := snapshottest.Start(t, cp.RESTConfig(), nil)

	type application struct {
		key      snapshotwatcher.AppKey
		code     int32
		reason   string
		recorder *snapshottest.Recorder
	}
	apps := []*application{
		{key: snapshotwatcher.AppKey{Namespace: ns, AppID: "spark-app-one"}, code: 137, reason: "OOMKilled"},
		{key: snapshotwatcher.AppKey{Namespace: ns, AppID: "spark-app-two"}, code: 52, reason: "Error"},
	}
	for _, a := range apps {
		a.recorder = snapshottest.Record(t, svc.Conn, snapshotwatcher.WithApplication(ns, a.key.AppID))
	}
	namespace := snapshottest.Record(t, svc.Conn, snapshotwatcher.WithNamespace(ns))

	ids := []int64{1, 2, 3}
	for _, a := range apps {
		for _, id := range ids {
			createPod(t, client, snapshottest.ExecutorPod(ns, a.key.AppID, id, map[string]string{
				snapshottest.HoldPending: "true",
				snapshottest.ExitCode:    fmt.Sprint(a.code),
				snapshottest.ExitReason:  a.reason,
				snapshottest.RunDuration: "2s",
			}))
		}
	}
	for _, a := range apps {
		a.recorder.WaitFor(t, time.Minute, a.key.String()+" pending", allIn(a.key, pending, ids...))
	}

	// Let kwok start them; two seconds later their containers exit.
	for _, a := range apps {
		for _, id := range ids {
			patchPod(t, client, ns, fmt.Sprintf("%s-exec-%d", a.key.AppID, id), `{"metadata":{"annotations":{"sparkpods.io/hold-pending":"false"}}}`)
		}
	}
	for _, a := range apps {
		a.recorder.WaitFor(t, time.Minute, a.key.String()+" failed", allIn(a.key, failed, ids...))
		for _, e := range a.recorder.Snapshot(a.key).GetExecutors() {
			term := e.GetTermination()
			if term.GetExitCode() != a.code || term.GetReason() != a.reason || term.GetContainerName() != "spark-kubernetes-executor" ||
				e.GetPhase() != "Failed" || e.GetNodeName() == "" || e.GetPodUid() == "" || e.GetCreateTime() == nil {
				t.Fatalf("%s executor %d: %v", a.key, e.GetExecutorId(), e)
			}
		}
	}

	for _, a := range apps {
		for _, id := range ids {
			deletePod(t, client, ns, fmt.Sprintf("%s-exec-%d", a.key.AppID, id))
		}
	}
	for _, a := range apps {
		a.recorder.WaitFor(t, time.Minute, a.key.String()+" deleted", allIn(a.key, deleted, ids...))
	}

	for _, a := range apps {
		for _, id := range ids {
			got := stateNames(a.recorder.States(a.key, id))
			if want := []string{"PENDING", "RUNNING", "FAILED", "DELETED"}; !slices.Equal(got, want) {
				t.Errorf("%s executor %d went through %v, want %v", a.key, id, got, want)
			}
		}
		for _, u := range a.recorder.Updates() {
			for _, s := range u.Snapshots {
				if s.GetAppId() != a.key.AppID || s.GetNamespace() != ns {
					t.Errorf("watcher of %s received %s/%s", a.key, s.GetNamespace(), s.GetAppId())
				}
			}
			for _, k := range u.Removed {
				if k != a.key {
					t.Errorf("watcher of %s was told %s was removed", a.key, k)
				}
			}
		}
	}
	// The namespace watcher saw both, each with its own executors.
	for _, a := range apps {
		if got := stateNames(namespace.Snapshot(a.key).GetExecutors()); len(got) != len(ids) {
			t.Errorf("namespace watcher holds %v for %s", got, a.key)
		}
	}
}

// TestResumeMissesNothing cuts a watcher's connection, changes executors while
// it is away, and checks that it comes back by resuming from its revision (no
// second reset) and ends with exactly the service's snapshot.
func TestResumeMissesNothing(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	client := cp.Client()
	svc := snapshottest.Start(t, cp.RESTConfig(), nil)
	proxy := startProxy(t, svc.App.Addr())
	conn, err := snapshottest.Dial(proxy.addr(), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
		MinConnectTimeout: time.Second,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	key := snapshotwatcher.AppKey{Namespace: ns, AppID: "spark-resume"}
	rec := snapshottest.Record(t, conn, snapshotwatcher.WithNamespace(ns), snapshotwatcher.WithHeartbeatInterval(time.Second))
	for id := int64(1); id <= 3; id++ {
		createPod(t, client, snapshottest.ExecutorPod(ns, key.AppID, id, map[string]string{snapshottest.HoldPending: "true"}))
	}
	rec.WaitFor(t, time.Minute, "three pending executors", allIn(key, pending, 1, 2, 3))

	proxy.pause()
	deletePod(t, client, ns, key.AppID+"-exec-1")
	patchPod(t, client, ns, key.AppID+"-exec-2", `{"metadata":{"annotations":{"sparkpods.io/hold-pending":"false"}}}`)
	createPod(t, client, snapshottest.ExecutorPod(ns, key.AppID, 4, map[string]string{snapshottest.HoldPending: "true"}))
	want := map[int64]sparkpodsv1.ExecutorState{1: deleted, 2: running, 3: pending, 4: pending}
	snapshottest.Eventually(t, time.Minute, "the service to see the changes", func(ctx context.Context) bool {
		resp, err := svc.Client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: key.AppID})
		return err == nil && sameStates(resp.GetSnapshot(), want)
	})
	if rec.ExecutorState(key, 2) != pending || rec.ExecutorState(key, 4) != sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNSPECIFIED {
		t.Fatal("the watcher heard of changes while its connection was down")
	}

	proxy.resume()
	rec.WaitFor(t, time.Minute, "the watcher to catch up", func(r *snapshottest.Recorder) bool {
		return sameStates(r.Snapshot(key), want)
	})
	resets := 0
	for _, u := range rec.Updates() {
		if u.Reset {
			resets++
		}
	}
	if resets != 1 {
		t.Fatalf("the watcher got %d resets, want only the initial one: it should have resumed from its revision", resets)
	}
	if proxy.connections() < 2 {
		t.Fatalf("the watcher used %d connections; the cut did not happen", proxy.connections())
	}
	if got := stateNames(rec.States(key, 1)); !slices.Equal(got, []string{"PENDING", "DELETED"}) {
		t.Fatalf("executor 1 went through %v", got)
	}
}

func sameStates(s *sparkpodsv1.ExecutorSnapshot, want map[int64]sparkpodsv1.ExecutorState) bool {
	if len(s.GetExecutors()) != len(want) {
		return false
	}
	for _, e := range s.GetExecutors() {
		if want[e.GetExecutorId()] != e.GetState() {
			return false
		}
	}
	return true
}

// TestStuckSubscriberDoesNotDelayOthers opens a watch that never reads, on the
// same connection as a healthy one, then makes enough changes to fill the
// stuck stream's flow-control window many times over. The healthy watcher
// keeps up; the stuck one, once it reads again, is told it lagged.
func TestStuckSubscriberDoesNotDelayOthers(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	client := cp.Client()
	// A short history: a watcher more than 64 changes behind is reset.
	svc := snapshottest.Start(t, cp.RESTConfig(), func(c *app.Config) { c.HistoryLimit = 64 })
	// A fixed 64 KiB window, so the stuck stream's Send blocks early.
	conn, err := snapshottest.Dial(svc.App.Addr(), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stuck, err := sparkpodsv1.NewSnapshotServiceClient(conn).WatchSnapshots(ctx, &sparkpodsv1.WatchSnapshotsRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	key := snapshotwatcher.AppKey{Namespace: ns, AppID: "spark-busy"}
	healthy := snapshottest.Record(t, conn, snapshotwatcher.WithNamespace(ns))

	const pods, rounds = 20, 15
	for id := int64(1); id <= pods; id++ {
		createPod(t, client, snapshottest.ExecutorPod(ns, key.AppID, id, map[string]string{snapshottest.HoldPending: "true"}))
	}
	// Each status patch changes the executor's status message, 1 KiB long,
	// so each change is a message of more than 1 KiB: 300 of them, while the
	// stuck stream stops taking any after about 128 KiB (its 64 KiB window
	// plus the server's 64 KiB write quota).
	filler := strings.Repeat("x", 1024)
	var worst time.Duration
	for round := 1; round <= rounds; round++ {
		msg := fmt.Sprintf("round %d %s", round, filler)
		for id := int64(1); id <= pods; id++ {
			patchPod(t, client, ns, fmt.Sprintf("%s-exec-%d", key.AppID, id), fmt.Sprintf(`{"status":{"message":%q}}`, msg), "status")
		}
		written := time.Now()
		healthy.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d at the healthy watcher", round), func(r *snapshottest.Recorder) bool {
			s := r.Snapshot(key)
			if len(s.GetExecutors()) != pods {
				return false
			}
			for _, e := range s.GetExecutors() {
				if e.GetStatusMessage() != msg {
					return false
				}
			}
			return true
		})
		worst = max(worst, time.Since(written))
	}
	t.Logf("healthy watcher: slowest round complete %v after its last write", worst)
	if worst > 5*time.Second {
		t.Fatalf("the healthy watcher trailed by %v", worst)
	}

	// The stuck watcher reads at last: past its history, it gets a reset.
	for {
		msg, err := stuck.Recv()
		if err != nil {
			t.Fatalf("stuck watcher: %v", err)
		}
		if r := msg.GetReset_(); r != nil && r.GetReason() == sparkpodsv1.ResetReason_RESET_REASON_SUBSCRIBER_LAGGED {
			break
		}
	}
}

// proxy forwards TCP connections to a target and can cut them all.
type proxy struct {
	t        *testing.T
	listener net.Listener
	target   string

	mu     sync.Mutex
	paused bool
	conns  []net.Conn
	count  int
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, listener: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.pause()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.listener.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.paused {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.count++
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// pause closes every open connection and refuses new ones until resume.
func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
}

func (p *proxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}
