package exitreason

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

const (
	sparkContainer = "spark-kubernetes-executor"
	testStarted    = "2026-01-02T15:04:05Z"
	testFinished   = "2026-01-02T15:09:41Z"
)

func ts(t *testing.T, rfc3339 string) *timestamppb.Timestamp {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		t.Fatalf("parse %q: %v", rfc3339, err)
	}
	return timestamppb.New(v)
}

func terminated(name, image string, code int32, reason string, started, finished *timestamppb.Timestamp) *sparkpodsv1.ContainerStatus {
	return &sparkpodsv1.ContainerStatus{
		Name:       name,
		Image:      image,
		State:      sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED,
		StartTime:  started,
		FinishTime: finished,
		ExitCode:   code,
		Reason:     reason,
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		code int32
		want string
	}{
		{0, "(success)"},
		{1, "(generic, look at logs to clarify)"},
		{42, "(Douglas Adams fan)"},
		{10, "(Uncaught exception)"},
		{50, "(Uncaught exception)"},
		{52, "(JVM OOM)"},
		{53, "(DiskStore failed to create temp dir)"},
		{126, "(not executable - possibly perm or arch)"},
		{137, "(SIGKILL, possible container OOM)"},
		{139, "(SIGSEGV: that's unexpected)"},
		{255, "(exit-1, your guess is as good as mine)"},
		{-1, "(unexpected)"},
		{2, "(unexpected)"},
		{11, "(unexpected)"},
		{51, "(unexpected)"},
		{143, "(unexpected)"},
	}
	for _, tt := range tests {
		if got := Describe(tt.code); got != tt.want {
			t.Errorf("Describe(%d) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		e    *sparkpodsv1.Executor
		want int32
	}{
		{
			name: "no statuses",
			e:    &sparkpodsv1.Executor{},
			want: -1,
		},
		{
			// SPARK-49804: a sidecar listed first never supplies the code.
			name: "sidecar listed first",
			e: &sparkpodsv1.Executor{ContainerStatuses: []*sparkpodsv1.ContainerStatus{
				terminated("sidecar", "envoy", 2, "Error", nil, nil),
				terminated(sparkContainer, "spark", 1, "Error", nil, nil),
			}},
			want: 1,
		},
		{
			name: "only a sidecar terminated",
			e: &sparkpodsv1.Executor{ContainerStatuses: []*sparkpodsv1.ContainerStatus{
				terminated("sidecar", "envoy", 2, "Error", nil, nil),
				{Name: sparkContainer, State: sparkpodsv1.ContainerState_CONTAINER_STATE_RUNNING},
			}},
			want: -1,
		},
		{
			name: "spark container still waiting",
			e: &sparkpodsv1.Executor{ContainerStatuses: []*sparkpodsv1.ContainerStatus{
				{Name: sparkContainer, State: sparkpodsv1.ContainerState_CONTAINER_STATE_WAITING, Reason: "ContainerCreating"},
			}},
			want: -1,
		},
		{
			name: "exit code 0 is a code",
			e: &sparkpodsv1.Executor{ContainerStatuses: []*sparkpodsv1.ContainerStatus{
				terminated(sparkContainer, "spark", 0, "Completed", nil, nil),
			}},
			want: 0,
		},
		{
			name: "termination of a deleted pod without statuses",
			e:    &sparkpodsv1.Executor{Termination: &sparkpodsv1.ContainerTermination{ContainerName: sparkContainer, ExitCode: 137}},
			want: 137,
		},
		{
			name: "termination of another container",
			e:    &sparkpodsv1.Executor{Termination: &sparkpodsv1.ContainerTermination{ContainerName: "sidecar", ExitCode: 137}},
			want: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.e, sparkContainer); got != tt.want {
				t.Fatalf("ExitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestForFinishedPodMatchesSparkSuite pins, by hand, the message Spark's own
// suite expects for its failedExecutorWithoutDeletion pod (two terminated
// containers without timestamps or reasons, the template container named
// "spark-executor").
func TestForFinishedPodMatchesSparkSuite(t *testing.T) {
	e := &sparkpodsv1.Executor{
		ExecutorId:    1,
		State:         sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
		PodName:       "spark-executor-1",
		StatusReason:  "Executor failed because of a thrown error.",
		StatusMessage: "Executor failed.",
		ContainerStatuses: []*sparkpodsv1.ContainerStatus{
			terminated("spark-executor", "k8s-spark", 1, "", nil, nil),
			terminated("spark-executor-sidecar", "k8s-spark-sidecar", 1, "", nil, nil),
		},
	}
	want := &sparkpodsv1.ExecutorExit{
		ExitCode:        1,
		ExitCausedByApp: true,
		Message: "\n" +
			"The executor with id 1 exited with exit code 1(generic, look at logs to clarify).\n" +
			"The API gave the following brief reason: Executor failed because of a thrown error.\n" +
			"The API gave the following message: Executor failed.\n" +
			"\n" +
			"The API gave the following container statuses:\n" +
			"\n" +
			"\n\t container name: spark-executor" +
			"\n\t container image: k8s-spark" +
			"\n\t container state: terminated" +
			"\n\t container started at: N/A" +
			"\n\t container finished at: N/A" +
			"\n\t exit code: 1" +
			"\n\t termination reason: N/A" +
			"\n\n" +
			"\n\t container name: spark-executor-sidecar" +
			"\n\t container image: k8s-spark-sidecar" +
			"\n\t container state: terminated" +
			"\n\t container started at: N/A" +
			"\n\t container finished at: N/A" +
			"\n\t exit code: 1" +
			"\n\t termination reason: N/A" +
			"\n      ",
	}
	got := ForFinishedPod(1, e, "spark-executor")
	if !proto.Equal(got, want) {
		t.Fatalf("ForFinishedPod() =\n%q\nwant\n%q", got, want)
	}
}

// TestForFinishedPodGolden pins the message for a range of pods in
// testdata/<name>.golden; run with -update to rewrite the files, and read
// the diff before committing it.
func TestForFinishedPodGolden(t *testing.T) {
	tests := []struct {
		name     string
		e        *sparkpodsv1.Executor
		wantCode int32
	}{
		{
			name: "failed_oom_killed",
			e: &sparkpodsv1.Executor{
				ExecutorId: 7,
				State:      sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
				ContainerStatuses: []*sparkpodsv1.ContainerStatus{
					terminated(sparkContainer, "apache/spark:4.0.0", 137, "OOMKilled", ts(t, testStarted), ts(t, testFinished)),
				},
			},
			wantCode: 137,
		},
		{
			name: "failed_jvm_oom_evicted",
			e: &sparkpodsv1.Executor{
				ExecutorId:    12,
				State:         sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
				StatusReason:  "Evicted",
				StatusMessage: "The node was low on resource: memory.",
				ContainerStatuses: []*sparkpodsv1.ContainerStatus{
					// Fractions of a second are not part of what the API server sends.
					terminated(sparkContainer, "apache/spark:4.0.0", 52, "Error", ts(t, "2026-01-02T15:04:05.123456789Z"), ts(t, testFinished)),
				},
			},
			wantCode: 52,
		},
		{
			name: "succeeded_with_running_sidecar",
			e: &sparkpodsv1.Executor{
				ExecutorId: 3,
				State:      sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED,
				ContainerStatuses: []*sparkpodsv1.ContainerStatus{
					terminated(sparkContainer, "apache/spark:4.0.0", 0, "Completed", ts(t, testStarted), ts(t, testFinished)),
					{Name: "log-shipper", Image: "fluent-bit:3", State: sparkpodsv1.ContainerState_CONTAINER_STATE_RUNNING, StartTime: ts(t, testStarted)},
				},
			},
			wantCode: 0,
		},
		{
			name: "waiting_and_stateless_containers",
			e: &sparkpodsv1.Executor{
				ExecutorId:   4,
				State:        sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
				StatusReason: "UnexpectedAdmissionError",
				ContainerStatuses: []*sparkpodsv1.ContainerStatus{
					{Name: sparkContainer, Image: "apache/spark:4.0.0", State: sparkpodsv1.ContainerState_CONTAINER_STATE_WAITING, Reason: "ContainerCreating"},
					{Name: "init-less"},
					// A zero timestamp is an absent one.
					{Name: "starting", Image: "busybox", State: sparkpodsv1.ContainerState_CONTAINER_STATE_RUNNING, StartTime: timestamppb.New(time.Time{})},
				},
			},
			wantCode: -1,
		},
		{
			name:     "no_container_statuses",
			e:        &sparkpodsv1.Executor{ExecutorId: 5, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, StatusMessage: "Pod was rejected"},
			wantCode: -1,
		},
		{
			// Spark strips the margin after interpolating, so an indented
			// '|' at the start of a line of the pod's message disappears.
			name: "multiline_status_message",
			e: &sparkpodsv1.Executor{
				ExecutorId:    9,
				State:         sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
				StatusMessage: "first line\n   | piped line\r\n\t|tabbed line\rlast | line",
				ContainerStatuses: []*sparkpodsv1.ContainerStatus{
					terminated(sparkContainer, "apache/spark:4.0.0", 1, "Error", ts(t, testStarted), ts(t, testFinished)),
				},
			},
			wantCode: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ForFinishedPod(tt.e.GetExecutorId(), tt.e, sparkContainer)
			if got.GetExitCode() != tt.wantCode || !got.GetExitCausedByApp() {
				t.Fatalf("ForFinishedPod() exit code %d, caused by app %t; want %d, true", got.GetExitCode(), got.GetExitCausedByApp(), tt.wantCode)
			}
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got.GetMessage()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run the test with -update to create it)", err)
			}
			if got.GetMessage() != string(want) {
				t.Fatalf("message differs from %s\ngot:  %q\nwant: %q", path, got.GetMessage(), want)
			}
		})
	}
}

func TestForFinishedPodSucceededIsCausedByApp(t *testing.T) {
	e := &sparkpodsv1.Executor{
		State:             sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED,
		ContainerStatuses: []*sparkpodsv1.ContainerStatus{terminated(sparkContainer, "spark", 0, "Completed", nil, nil)},
	}
	got := ForFinishedPod(2, e, sparkContainer)
	if !got.GetExitCausedByApp() || got.GetExitCode() != 0 {
		t.Fatalf("ForFinishedPod() = code %d, caused by app %t; want 0, true", got.GetExitCode(), got.GetExitCausedByApp())
	}
}

func TestForDeletedPod(t *testing.T) {
	tests := []struct {
		name string
		e    *sparkpodsv1.Executor
		want *sparkpodsv1.ExecutorExit
	}{
		{
			name: "usual",
			e:    &sparkpodsv1.Executor{ExecutorId: 3, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED},
			want: &sparkpodsv1.ExecutorExit{
				ExitCode: -1,
				Message:  "The executor with id 3 was deleted by a user or the framework.",
			},
		},
		{
			name: "container had terminated",
			e: &sparkpodsv1.Executor{
				ExecutorId:  3,
				State:       sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED,
				Termination: &sparkpodsv1.ContainerTermination{ContainerName: sparkContainer, ExitCode: 143},
			},
			want: &sparkpodsv1.ExecutorExit{
				ExitCode: 143,
				Message:  "The executor with id 3 was deleted by a user or the framework.",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ForDeletedPod(3, tt.e, sparkContainer); !proto.Equal(got, tt.want) {
				t.Fatalf("ForDeletedPod() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestForMissingPod uses the numbers of Spark's suite: registered at 7 ms,
// polled at 30008 ms, the default delta of 30 s.
func TestForMissingPod(t *testing.T) {
	want := &sparkpodsv1.ExecutorExit{
		ExitCode:        -1,
		ExitCausedByApp: false,
		Message: "The executor with ID 1 (registered at 7 ms) was not found in the cluster at " +
			"the polling time (30008 ms) which is after the accepted detect delta time (30000 ms) " +
			"configured by `spark.kubernetes.executor.missingPodDetectDelta`. The executor may have " +
			"been deleted but the driver missed the deletion event. Marking this executor as failed.",
	}
	if got := ForMissingPod(1, 7, 30008, 30000); !proto.Equal(got, want) {
		t.Fatalf("ForMissingPod() = %v, want %v", got, want)
	}
}

func TestFailureLimitMessage(t *testing.T) {
	if got, want := FailureLimitMessage(6), "Max number of executor failures (6) reached"; got != want {
		t.Fatalf("FailureLimitMessage(6) = %q, want %q", got, want)
	}
}

func TestStripMargin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no margin", "no margin"},
		{"  |x", "x"},
		{"|x\n  |y\n", "x\ny\n"},
		{"a\n\t |b\r\n |c\r |d", "a\nb\r\nc\rd"},
		{"a\n  x|y", "a\n  x|y"},
		{"a\n||b", "a\n|b"},
		{"   \n      ", "   \n      "},
		{"é\n |ü", "é\nü"},
	}
	for _, tt := range tests {
		if got := stripMargin(tt.in); got != tt.want {
			t.Errorf("stripMargin(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
