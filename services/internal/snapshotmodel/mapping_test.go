package snapshotmodel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pod builds an executor pod of application "app-1" in namespace "ns" with
// executor id 7; opts adjust it.
func pod(opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "ns",
			Name:              "app-1-exec-7",
			UID:               "uid-7",
			ResourceVersion:   "42",
			CreationTimestamp: metav1.Unix(1000, 0),
			Labels: map[string]string{
				LabelAppID:             "app-1",
				LabelRole:              RoleExecutor,
				LabelExecutorID:        "7",
				LabelResourceProfileID: "2",
			},
		},
		Spec:   corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, NodeName: "node-a"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7"},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func phase(ph corev1.PodPhase) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}

func deleting(p *corev1.Pod) { t := metav1.Unix(2000, 0); p.DeletionTimestamp = &t }

func restartPolicy(rp corev1.RestartPolicy) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.RestartPolicy = rp }
}

func terminated(container string, code int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: container,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: "Error", Message: "boom", FinishedAt: metav1.Unix(1500, 0),
			}},
		})
	}
}

func running(container string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:  container,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		})
	}
}

func annotate(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func label(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Labels[k] = v }
}

func unlabel(k string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { delete(p.Labels, k) }
}

const executorContainer = DefaultExecutorContainerName

// TestPodState covers every rule of Spark's toState (SPARK.md §1.2).
func TestPodState(t *testing.T) {
	checkAll := Mapping{CheckAllContainers: true}
	legacy := Mapping{CheckAllContainers: false}
	tests := []struct {
		name    string
		mapping Mapping
		pod     *corev1.Pod
		want    State
	}{
		// Deletion timestamp comes first.
		{"pending with deletion timestamp is deleted", checkAll, pod(phase(corev1.PodPending), deleting), StateDeleted},
		{"succeeded with deletion timestamp is deleted", checkAll, pod(phase(corev1.PodSucceeded), deleting), StateDeleted},
		{"failed with deletion timestamp is deleted", checkAll, pod(phase(corev1.PodFailed), deleting), StateDeleted},
		{"unknown with deletion timestamp is deleted", checkAll, pod(phase(corev1.PodUnknown), deleting), StateDeleted},
		{"no status with deletion timestamp is deleted", checkAll, pod(phase(""), deleting), StateDeleted},
		{"running with deletion timestamp stays running", checkAll, pod(deleting, running(executorContainer)), StateRunning},
		{"running with deletion timestamp and exited executor is failed", checkAll, pod(deleting, terminated(executorContainer, 1)), StateFailed},
		{"terminating with deletion timestamp stays terminating", checkAll, pod(phase("Terminating"), deleting), StateTerminating},
		// Phases, lower-cased.
		{"pending", checkAll, pod(phase(corev1.PodPending)), StatePending},
		{"phase is matched case-insensitively", checkAll, pod(phase("PENDING")), StatePending},
		{"failed", checkAll, pod(phase(corev1.PodFailed)), StateFailed},
		{"succeeded", checkAll, pod(phase(corev1.PodSucceeded)), StateSucceeded},
		{"terminating phase", checkAll, pod(phase("terminating")), StateTerminating},
		{"unknown phase", checkAll, pod(phase(corev1.PodUnknown)), StateUnknown},
		{"unrecognised phase is unknown", checkAll, pod(phase("Evicting")), StateUnknown},
		{"missing status is unknown", checkAll, pod(phase("")), StateUnknown},
		// Running: container statuses.
		{"running without container statuses", checkAll, pod(), StateRunning},
		{"running executor container", checkAll, pod(running(executorContainer)), StateRunning},
		{"executor exited 0 is succeeded", checkAll, pod(terminated(executorContainer, 0)), StateSucceeded},
		{"executor exited 137 is failed", checkAll, pod(terminated(executorContainer, 137)), StateFailed},
		{"executor exited 137 is failed without checkAllContainers", legacy, pod(terminated(executorContainer, 137)), StateFailed},
		{"sidecar exited non-zero with checkAllContainers and restartPolicy Never is failed", checkAll,
			pod(running(executorContainer), terminated("sidecar", 1)), StateFailed},
		{"sidecar exited non-zero without checkAllContainers is running", legacy,
			pod(running(executorContainer), terminated("sidecar", 1)), StateRunning},
		{"sidecar exited non-zero with restartPolicy OnFailure is running", checkAll,
			pod(restartPolicy(corev1.RestartPolicyOnFailure), running(executorContainer), terminated("sidecar", 1)), StateRunning},
		{"sidecar exited 0 is running", checkAll, pod(running(executorContainer), terminated("sidecar", 0)), StateRunning},
		{"checkAllContainers beats an executor that exited 0", checkAll,
			pod(terminated(executorContainer, 0), terminated("sidecar", 2)), StateFailed},
		{"other container's exit ignored when executor container not found", legacy,
			pod(terminated("main", 1)), StateRunning},
		// Per-pod settings from annotations.
		{"container name from annotation", legacy,
			pod(annotate(AnnotationExecutorContainerName, "main"), terminated("main", 0)), StateSucceeded},
		{"container name from mapping default", Mapping{ExecutorContainerName: "main"},
			pod(terminated("main", 3)), StateFailed},
		{"annotation turns checkAllContainers off", checkAll,
			pod(annotate(AnnotationCheckAllContainers, "false"), running(executorContainer), terminated("sidecar", 1)), StateRunning},
		{"annotation turns checkAllContainers on", legacy,
			pod(annotate(AnnotationCheckAllContainers, "true"), running(executorContainer), terminated("sidecar", 1)), StateFailed},
		{"malformed annotation keeps the default", checkAll,
			pod(annotate(AnnotationCheckAllContainers, "yes"), running(executorContainer), terminated("sidecar", 1)), StateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e, err := tt.mapping.Executor(tt.pod)
			if err != nil {
				t.Fatalf("Executor: %v", err)
			}
			if e.State != tt.want {
				t.Fatalf("state = %v, want %v", e.State, tt.want)
			}
		})
	}
}

// TestExecutorID covers which pods get an entry (SPARK.md §1.3).
func TestExecutorID(t *testing.T) {
	tests := []struct {
		name    string
		pod     *corev1.Pod
		wantID  int64
		wantErr error
	}{
		{"numeric id", pod(), 7, nil},
		{"large id", pod(label(LabelExecutorID, "9007199254740993")), 9007199254740993, nil},
		{"missing id is skipped", pod(unlabel(LabelExecutorID)), 0, ErrNoExecutorID},
		{"EXECID placeholder is skipped", pod(label(LabelExecutorID, "EXECID")), 0, ErrNoExecutorID},
		{"non-numeric id is skipped", pod(label(LabelExecutorID, "seven")), 0, ErrInvalidExecutorID},
		{"empty id is skipped", pod(label(LabelExecutorID, "")), 0, ErrInvalidExecutorID},
		{"missing application is skipped", pod(unlabel(LabelAppID)), 0, ErrNoApplication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, e, err := Mapping{}.Executor(tt.pod)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "ns/app-1-exec-7") {
					t.Fatalf("err %q does not name the pod", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Executor: %v", err)
			}
			if e.ID != tt.wantID || key != (AppKey{"ns", "app-1"}) {
				t.Fatalf("got %v id %d, want ns/app-1 id %d", key, e.ID, tt.wantID)
			}
		})
	}
}

// TestExecutorRecord checks the facts the record carries besides the state.
func TestExecutorRecord(t *testing.T) {
	p := pod(phase(corev1.PodFailed), terminated("sidecar", 0), terminated(executorContainer, 137), func(p *corev1.Pod) {
		p.Status.Reason = "Evicted"
		p.Status.Message = "low on memory"
		p.Labels["decom"] = ""
	})
	_, e, err := Mapping{DecommissionLabel: "decom"}.Executor(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Executor{
		ID: 7, ResourceVersion: 42, CreateTime: time.Unix(1000, 0).UnixNano(),
		PodName: "app-1-exec-7", PodUID: "uid-7", Phase: "Failed", NodeName: "node-a", PodIP: "10.0.0.7",
		StatusReason: "Evicted", StatusMessage: "low on memory", ResourceProfileID: 2, State: StateFailed,
		Decommissioning: true,
		// A final executor keeps every container status, for Spark's loss message.
		Containers: []ContainerStatus{
			{Name: "sidecar", State: ContainerStateTerminated, FinishTime: time.Unix(1500, 0).UnixNano(), Reason: "Error"},
			{Name: executorContainer, State: ContainerStateTerminated, FinishTime: time.Unix(1500, 0).UnixNano(), ExitCode: 137, Reason: "Error"},
		},
	}
	got := *e
	got.Termination = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("record (-want +got):\n%s", diff)
	}
	wantTerm := Termination{ContainerName: executorContainer, ExitCode: 137, Reason: "Error", Message: "boom", FinishTime: time.Unix(1500, 0).UnixNano()}
	if e.Termination == nil || *e.Termination != wantTerm {
		t.Fatalf("termination = %+v, want %+v", e.Termination, wantTerm)
	}
}

func TestTerminationOfFailingSidecar(t *testing.T) {
	_, e, err := Mapping{CheckAllContainers: true}.Executor(pod(running(executorContainer), terminated("sidecar", 3)))
	if err != nil {
		t.Fatal(err)
	}
	if e.State != StateFailed || e.Termination == nil || e.Termination.ContainerName != "sidecar" || e.Termination.ExitCode != 3 {
		t.Fatalf("got state %v termination %+v, want failed by sidecar exit 3", e.State, e.Termination)
	}
}

func TestNoTerminationWhileRunning(t *testing.T) {
	_, e, err := Mapping{}.Executor(pod(running(executorContainer)))
	if err != nil {
		t.Fatal(err)
	}
	if e.Termination != nil || e.DeletionTime != 0 || e.Decommissioning {
		t.Fatalf("running executor has termination %+v, deletion %d, decommissioning %v", e.Termination, e.DeletionTime, e.Decommissioning)
	}
}

func TestLongMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("é", maxMessageBytes) // two bytes each
	_, e, err := Mapping{}.Executor(pod(func(p *corev1.Pod) { p.Status.Message = long }))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.StatusMessage) > maxMessageBytes+len("…") || !strings.HasSuffix(e.StatusMessage, "…") {
		t.Fatalf("message of %d bytes not bounded", len(e.StatusMessage))
	}
	if !strings.HasPrefix(long, strings.TrimSuffix(e.StatusMessage, "…")) {
		t.Fatal("message was not cut on a rune boundary")
	}
}

func TestParseResourceVersion(t *testing.T) {
	for in, want := range map[string]uint64{"42": 42, "": 0, "abc": 0, "-1": 0, "18446744073709551615": 1<<64 - 1} {
		if got := ParseResourceVersion(in); got != want {
			t.Errorf("ParseResourceVersion(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestStateNames(t *testing.T) {
	for s := StateUnknown; s < numStates; s++ {
		if s.String() == "" || s.String() == "invalid" {
			t.Errorf("state %d has no name", s)
		}
	}
	for _, s := range []State{StateSucceeded, StateFailed, StateDeleted, StateTerminating} {
		if !s.Final() {
			t.Errorf("%v should be final", s)
		}
	}
	for _, s := range []State{StatePending, StateRunning, StateUnknown} {
		if s.Final() {
			t.Errorf("%v should not be final", s)
		}
	}
}

func TestTrimKeepsWhatTheMappingReads(t *testing.T) {
	m := Mapping{CheckAllContainers: true, DecommissionLabel: "decom"}
	pods := []*corev1.Pod{
		pod(),
		pod(phase(corev1.PodFailed), terminated(executorContainer, 137), label("decom", "yes")),
		pod(running(executorContainer), terminated("sidecar", 1), annotate(AnnotationCheckAllContainers, "false")),
		pod(deleting, phase(corev1.PodSucceeded), annotate(AnnotationExecutorContainerName, "main"), terminated("main", 0)),
		pod(func(p *corev1.Pod) {
			p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
			p.Spec.Containers = []corev1.Container{{Name: executorContainer, Image: "spark"}}
			p.Labels["unrelated"] = "x"
		}),
	}
	for i, p := range pods {
		_, want, err := m.Executor(p)
		if err != nil {
			t.Fatal(err)
		}
		trimmed := m.Trim(p)
		_, got, err := m.Executor(trimmed)
		if err != nil {
			t.Fatal(err)
		}
		if (got.Termination == nil) != (want.Termination == nil) || (got.Termination != nil && *got.Termination != *want.Termination) {
			t.Fatalf("pod %d: termination %+v, want %+v", i, got.Termination, want.Termination)
		}
		got.Termination, want.Termination = nil, nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("pod %d: trimmed record (-want +got):\n%s", i, diff)
		}
		if trimmed.ManagedFields != nil || trimmed.Spec.Containers != nil || trimmed.Labels["unrelated"] != "" {
			t.Fatalf("pod %d: trim kept unneeded fields", i)
		}
	}
}

// TestContainersOnlyForFinalExecutors checks that container statuses are
// kept for Succeeded and Failed executors only, with running before
// terminated before waiting when a status has several states.
func TestContainersOnlyForFinalExecutors(t *testing.T) {
	_, e, err := Mapping{}.Executor(pod(running(executorContainer)))
	if err != nil {
		t.Fatal(err)
	}
	if e.State != StateRunning || e.Containers != nil {
		t.Fatalf("running executor: state %v, containers %+v; want running and none", e.State, e.Containers)
	}
	both := func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: "sidecar", Image: "istio/proxy",
			State: corev1.ContainerState{
				Running: &corev1.ContainerStateRunning{StartedAt: metav1.Unix(1200, 0)},
				Waiting: &corev1.ContainerStateWaiting{Reason: "ignored"},
			},
		}, corev1.ContainerStatus{
			Name: "init", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}},
		}, corev1.ContainerStatus{Name: "empty"})
	}
	_, e, err = Mapping{}.Executor(pod(phase(corev1.PodSucceeded), both))
	if err != nil {
		t.Fatal(err)
	}
	want := []ContainerStatus{
		{Name: "sidecar", Image: "istio/proxy", State: ContainerStateRunning, StartTime: time.Unix(1200, 0).UnixNano()},
		{Name: "init", State: ContainerStateWaiting, Reason: "PodInitializing"},
		{Name: "empty", State: ContainerStateNone},
	}
	if diff := cmp.Diff(want, e.Containers); diff != "" {
		t.Fatalf("containers (-want +got):\n%s", diff)
	}
}
