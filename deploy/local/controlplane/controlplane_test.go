package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// Integration tests: they run against the real control plane started by TestMain and skip
// under -short.

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

const (
	executorContainer = "spark-kubernetes-executor"
	podTimeout        = 30 * time.Second
)

// executorPod is shaped like the pods Spark creates: Spark's labels and container name, and no
// nodeName, so the scheduler has to place it.
func executorPod(id string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "spark-smoke-exec-" + id,
			Labels: map[string]string{
				"spark-role":         "executor",
				"spark-app-selector": "spark-smoke",
				"spark-exec-id":      id,
			},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:  executorContainer,
				Image: "example.invalid/spark:4.0.0", // never pulled: kwok runs no containers
				Args:  []string{"executor"},
			}},
		},
	}
}

func createPod(t *testing.T, client kubernetes.Interface, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return created
}

// waitForPod polls the pod until done accepts it and returns it. A pod that does not exist is
// passed to done as nil.
func waitForPod(t *testing.T, client kubernetes.Interface, ns, name, what string, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			last = nil
		case err != nil:
			return false, err
		default:
			last = pod
		}
		return done(last), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: waiting until %s: %v; last seen: %s", ns, name, what, err, describe(last))
	}
	return last
}

func describe(pod *corev1.Pod) string {
	if pod == nil {
		return "gone"
	}
	return fmt.Sprintf("node=%q phase=%s containers=%+v", pod.Spec.NodeName, pod.Status.Phase, pod.Status.ContainerStatuses)
}

func running(pod *corev1.Pod) bool { return pod != nil && pod.Status.Phase == corev1.PodRunning }
func gone(pod *corev1.Pod) bool    { return pod == nil }

func TestExecutorIsScheduledAndRuns(t *testing.T) {
	t.Parallel()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)

	created := createPod(t, cp.Client(), ns, executorPod("1", nil))
	pod := waitForPod(t, cp.Client(), ns, created.Name, "Running", running)

	if !slices.Contains(cp.Nodes(), pod.Spec.NodeName) {
		t.Errorf("pod scheduled to %q, want one of the kwok nodes %v", pod.Spec.NodeName, cp.Nodes())
	}
	if pod.Status.PodIP == "" {
		t.Error("Running pod has no podIP")
	}
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("container statuses = %+v, want one", pod.Status.ContainerStatuses)
	}
	cs := pod.Status.ContainerStatuses[0]
	if cs.Name != executorContainer || cs.State.Running == nil || !cs.Ready {
		t.Errorf("container status = %+v, want %s running and ready", cs, executorContainer)
	}
}

func TestExecutorExitsAsAnnotated(t *testing.T) {
	t.Parallel()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)

	tests := []struct {
		name        string
		annotations map[string]string
		wantPhase   corev1.PodPhase
		wantCode    int32
		wantReason  string
	}{
		{
			name:        "killed",
			annotations: map[string]string{controlplane.AnnotationExitCode: "137"},
			wantPhase:   corev1.PodFailed, wantCode: 137, wantReason: "Error",
		},
		{
			name:        "completed",
			annotations: map[string]string{controlplane.AnnotationExitCode: "0", controlplane.AnnotationRunDuration: "200ms"},
			wantPhase:   corev1.PodSucceeded, wantCode: 0, wantReason: "Completed",
		},
		{
			name:        "custom reason",
			annotations: map[string]string{controlplane.AnnotationExitCode: "52", controlplane.AnnotationExitReason: "OOMKilled"},
			wantPhase:   corev1.PodFailed, wantCode: 52, wantReason: "OOMKilled",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			created := createPod(t, cp.Client(), ns, executorPod(fmt.Sprint(i+1), tt.annotations))
			pod := waitForPod(t, cp.Client(), ns, created.Name, string(tt.wantPhase), func(p *corev1.Pod) bool {
				return p != nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
			})
			if pod.Status.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", pod.Status.Phase, tt.wantPhase)
			}
			if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
				t.Fatalf("container statuses = %+v, want one terminated", pod.Status.ContainerStatuses)
			}
			term := pod.Status.ContainerStatuses[0].State.Terminated
			if term.ExitCode != tt.wantCode || term.Reason != tt.wantReason {
				t.Errorf("terminated = exit code %d reason %q, want %d %q", term.ExitCode, term.Reason, tt.wantCode, tt.wantReason)
			}
		})
	}
}

func TestDeletedExecutorGoes(t *testing.T) {
	t.Parallel()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)

	created := createPod(t, cp.Client(), ns, executorPod("1", nil))
	waitForPod(t, cp.Client(), ns, created.Name, "Running", running)
	// A graceful delete, as Spark does it: the API server only marks a running pod, and kwok
	// (standing in for the kubelet) finishes the deletion.
	if err := cp.Client().CoreV1().Pods(ns).Delete(t.Context(), created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitForPod(t, cp.Client(), ns, created.Name, "gone", gone)
}

func TestExecutorsAreCollectedWithTheirDriver(t *testing.T) {
	t.Parallel()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)

	driver := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "spark-smoke-driver",
			Labels: map[string]string{"spark-role": "driver", "spark-app-selector": "spark-smoke"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "example.invalid/spark:4.0.0"}}},
	}
	driver = createPod(t, cp.Client(), ns, driver)
	exec := executorPod("1", nil)
	// Spark makes the driver pod the controlling owner of every executor.
	exec.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1",
		Kind:       "Pod",
		Name:       driver.Name,
		UID:        driver.UID,
		Controller: new(true),
	}}
	exec = createPod(t, cp.Client(), ns, exec)
	waitForPod(t, cp.Client(), ns, exec.Name, "Running", running)

	if err := cp.Client().CoreV1().Pods(ns).Delete(t.Context(), driver.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete driver: %v", err)
	}
	waitForPod(t, cp.Client(), ns, driver.Name, "gone", gone)
	waitForPod(t, cp.Client(), ns, exec.Name, "garbage-collected", gone)
}

func TestStopTwiceLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; skipped in -short mode")
	}
	// A second control plane of its own: stopping the shared one would end the other tests.
	cp, err := controlplane.Start(t.Context(), controlplane.Options{Dir: t.TempDir(), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	procs := cp.Processes()
	if len(procs) != 5 {
		t.Errorf("started %d processes, want 5: %+v", len(procs), procs)
	}
	if err := cp.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := cp.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("%s (pid %d) still alive after Stop", p.Name, p.PID)
		}
		// Stop reaps its children, so their PIDs must be free, not zombies.
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d): kill -0 = %v, want ESRCH", p.Name, p.PID, err)
		}
	}
}

func TestDetachedStopsFromPIDFile(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; skipped in -short mode")
	}
	dir := t.TempDir()
	cp, err := controlplane.Start(t.Context(), controlplane.Options{Dir: dir, Nodes: 1, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	// Detached children do not die with the test binary; make sure a failing test still
	// stops them.
	t.Cleanup(func() { _, _ = controlplane.StopDetached(dir, time.Second) })

	state, err := controlplane.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pids(state.Processes), pids(cp.Processes()); !slices.Equal(got, want) {
		t.Errorf("PID file names %v, started %v", got, want)
	}
	if state.Server != cp.Server() || state.Kubeconfig != cp.KubeconfigPath() {
		t.Errorf("PID file server %q kubeconfig %q, want %q %q", state.Server, state.Kubeconfig, cp.Server(), cp.KubeconfigPath())
	}
	if _, err := controlplane.Start(t.Context(), controlplane.Options{Dir: dir, Nodes: 1, Detached: true}); !errors.Is(err, controlplane.ErrAlreadyRunning) {
		t.Errorf("second detached Start in the same dir: err = %v, want ErrAlreadyRunning", err)
	}

	stopped, err := controlplane.StopDetached(dir, 10*time.Second)
	if err != nil {
		t.Fatalf("StopDetached: %v", err)
	}
	if len(stopped) != len(state.Processes) {
		t.Errorf("stopped %d processes, want %d", len(stopped), len(state.Processes))
	}
	for _, p := range state.Processes {
		if p.Alive() {
			t.Errorf("%s (pid %d) still alive", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, controlplane.PIDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PID file still there after StopDetached: %v", err)
	}
	if _, err := controlplane.StopDetached(dir, time.Second); !errors.Is(err, controlplane.ErrNotRunning) {
		t.Errorf("second StopDetached: err = %v, want ErrNotRunning", err)
	}
}

func pids(ps []controlplane.Process) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.PID
	}
	return out
}
