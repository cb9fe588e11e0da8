package restarttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/app"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/snapshottest"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// TestAPIServerRestartMidStream restarts kube-apiserver while a watcher's
// stream to the snapshot service stays open. Executors change while the API
// server is down (kwok's containers exit; its writes land after the restart)
// and right after it; the watcher ends with exactly the right snapshot and
// never needs a reset. Polling is off, so only the watch's own recovery
// (re-watch, or relist after 410 Gone) can get there.
func TestAPIServerRestartMidStream(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	client := cp.Client()
	svc := snapshottest.Start(t, cp.RESTConfig(), func(c *app.Config) { c.Poll = false })
	key := snapshotwatcher.AppKey{Namespace: ns, AppID: "spark-restart"}
	rec := snapshottest.Record(t, svc.Conn, snapshotwatcher.WithNamespace(ns), snapshotwatcher.WithHeartbeatInterval(time.Second))

	ctx := context.Background()
	for id := int64(1); id <= 6; id++ {
		ann := map[string]string{snapshottest.HoldPending: "true"}
		if id <= 2 {
			ann = map[string]string{snapshottest.ExitCode: "137", snapshottest.RunDuration: "5s"}
		}
		pod := snapshottest.ExecutorPod(ns, key.AppID, id, ann)
		if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitFor(t, time.Minute, "two running and four pending executors", func(r *snapshottest.Recorder) bool {
		return states(r.Snapshot(key)) == "1=RUNNING 2=RUNNING 3=PENDING 4=PENDING 5=PENDING 6=PENDING"
	})

	restartAPIServer(t, cp)

	if err := client.CoreV1().Pods(ns).Delete(ctx, key.AppID+"-exec-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods(ns).Patch(ctx, key.AppID+"-exec-5", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"sparkpods.io/hold-pending":"false"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "1=FAILED 2=FAILED 3=DELETED 4=PENDING 5=RUNNING 6=PENDING"
	rec.WaitFor(t, 2*time.Minute, want, func(r *snapshottest.Recorder) bool { return states(r.Snapshot(key)) == want })
	for _, e := range rec.Snapshot(key).GetExecutors() {
		if e.GetExecutorId() <= 2 && e.GetTermination().GetExitCode() != 137 {
			t.Fatalf("executor %d: %v", e.GetExecutorId(), e)
		}
	}
	for _, u := range rec.Updates()[1:] {
		if u.Reset {
			t.Fatalf("the watcher was reset (%v); the stream should have carried on", u.ResetReason)
		}
	}
	resp, err := svc.Client.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: key.AppID})
	if err != nil || states(resp.GetSnapshot()) != want {
		t.Fatalf("GetSnapshot after the restart: %v %v", resp, err)
	}
}

func states(s *sparkpodsv1.ExecutorSnapshot) string {
	var parts []string
	for _, e := range s.GetExecutors() {
		parts = append(parts, fmt.Sprintf("%d=%s", e.GetExecutorId(), strings.TrimPrefix(e.GetState().String(), "EXECUTOR_STATE_")))
	}
	return strings.Join(parts, " ")
}

// restartAPIServer kills the control plane's kube-apiserver, as a crash or an
// OOM kill would (a SIGTERM makes it wait a minute for open watches to drain),
// and starts the same binary again with the same arguments, environment and
// working directory, then waits until it is ready. The controlplane package
// has no restart of its own; the new process is this test's to stop, which
// it does when the test ends.
func restartAPIServer(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	var old *controlplane.Process
	for _, p := range cp.Processes() {
		if p.Name == "kube-apiserver" && p.Alive() {
			old = &p
		}
	}
	if old == nil {
		t.Fatal("no running kube-apiserver in the control plane")
	}
	proc := fmt.Sprintf("/proc/%d/", old.PID)
	cmdline, err := os.ReadFile(proc + "cmdline")
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile(proc + "environ")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Readlink(proc + "cwd")
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	env := strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")

	began := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Alive turns false as soon as the process starts exiting, which is a
	// moment before the kernel has closed its listener.
	addr := strings.TrimPrefix(cp.Server(), "https://")
	snapshottest.Eventually(t, time.Minute, "the old kube-apiserver to exit and free "+addr, func(context.Context) bool {
		if old.Alive() {
			return false
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	})

	log, err := os.Create(filepath.Join(cp.Dir(), "kube-apiserver-restarted.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(old.Binary, args[1:]...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	snapshottest.Eventually(t, 2*time.Minute, "the restarted kube-apiserver to be ready", func(ctx context.Context) bool {
		body, err := cp.Client().Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && bytes.Equal(body, []byte("ok"))
	})
	t.Logf("kube-apiserver restarted (pid %d → %d) in %v", old.PID, cmd.Process.Pid, time.Since(began).Round(time.Millisecond))
}
