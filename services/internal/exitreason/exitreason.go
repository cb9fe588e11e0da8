// Package exitreason builds the loss reason Spark's scheduler backend receives
// when an executor goes away: the exit code, whether the application caused
// it, and the message, byte for byte as Spark's ExecutorPodsLifecycleManager
// writes them (SPARK.md §5.4 and §5.6), so that a scheduler or an operator
// reading a sparkpods event sees exactly what a Spark driver would have logged.
//
// The functions are pure: they read the executor as the snapshot service
// reported it and never change it.
package exitreason

import (
	"fmt"
	"strconv"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// UnknownExitCode is the exit code reported when no terminated executor
// container tells the real one (Spark's UNKNOWN_EXIT_CODE).
const UnknownExitCode int32 = -1

// Describe returns Spark's short explanation of an executor exit code, the
// text Spark appends right after the number (describeExitCode), for example
// "(JVM OOM)" for 52. Codes Spark does not know, -1 included, are
// "(unexpected)".
func Describe(code int32) string {
	switch code {
	case 0:
		return "(success)"
	case 1:
		return "(generic, look at logs to clarify)"
	case 42:
		return "(Douglas Adams fan)"
	case 10, 50:
		return "(Uncaught exception)"
	case 52:
		return "(JVM OOM)"
	case 53:
		return "(DiskStore failed to create temp dir)"
	case 126:
		return "(not executable - possibly perm or arch)"
	case 137:
		return "(SIGKILL, possible container OOM)"
	case 139:
		return "(SIGSEGV: that's unexpected)"
	case 255:
		return "(exit-1, your guess is as good as mine)"
	default:
		return "(unexpected)"
	}
}

// ExitCode returns the exit code of the executor's Spark container, the
// container named sparkContainerName, if that container has terminated, and
// UnknownExitCode otherwise. Like Spark 4.0+ (SPARK-49804) it never takes the
// code of another container, such as a sidecar listed first.
//
// It reads the container statuses first and falls back to the executor's
// termination, which the snapshot service also sets for executors whose
// container statuses it leaves out (a deleted pod).
func ExitCode(e *sparkpodsv1.Executor, sparkContainerName string) int32 {
	for _, cs := range e.GetContainerStatuses() {
		if cs.GetName() == sparkContainerName && cs.GetState() == sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED {
			return cs.GetExitCode()
		}
	}
	if t := e.GetTermination(); t != nil && t.GetContainerName() == sparkContainerName {
		return t.GetExitCode()
	}
	return UnknownExitCode
}

// ForFinishedPod returns the loss reason of executor id whose pod succeeded
// or failed. Spark blames the application for both (exitCausedByApp is true
// even for a pod that succeeded) and writes a multi-line message: the exit
// code with its description, the pod status's reason and message, and a
// description of every container status, as KubernetesUtils.containersDescription
// prints it.
func ForFinishedPod(id int64, e *sparkpodsv1.Executor, sparkContainerName string) *sparkpodsv1.ExecutorExit {
	code := ExitCode(e, sparkContainerName)
	return &sparkpodsv1.ExecutorExit{
		ExitCode:        code,
		ExitCausedByApp: true,
		Message:         finishedMessage(id, code, e),
	}
}

// ForDeletedPod returns the loss reason of executor id whose pod was deleted
// before it finished. The application is not blamed. The exit code is the
// Spark container's if the executor shows it terminated (see ExitCode), and
// UnknownExitCode otherwise, which is the usual case.
func ForDeletedPod(id int64, e *sparkpodsv1.Executor, sparkContainerName string) *sparkpodsv1.ExecutorExit {
	return &sparkpodsv1.ExecutorExit{
		ExitCode:        ExitCode(e, sparkContainerName),
		ExitCausedByApp: false,
		Message:         "The executor with id " + strconv.FormatInt(id, 10) + " was deleted by a user or the framework.",
	}
}

// ForMissingPod returns the loss reason of executor id, registered with the
// scheduler at registeredAtMs (epoch milliseconds), whose pod was absent from
// the full snapshot taken at fullSnapshotMs, more than deltaMs
// (spark.kubernetes.executor.missingPodDetectDelta) after it registered. The
// exit code is unknown and the application is not blamed.
func ForMissingPod(id, registeredAtMs, fullSnapshotMs, deltaMs int64) *sparkpodsv1.ExecutorExit {
	return &sparkpodsv1.ExecutorExit{
		ExitCode:        UnknownExitCode,
		ExitCausedByApp: false,
		Message: fmt.Sprintf("The executor with ID %d (registered at %d ms) was not found in the cluster at "+
			"the polling time (%d ms) which is after the accepted detect delta time (%d ms) configured by "+
			"`spark.kubernetes.executor.missingPodDetectDelta`. The executor may have been deleted but the "+
			"driver missed the deletion event. Marking this executor as failed.",
			id, registeredAtMs, fullSnapshotMs, deltaMs),
	}
}

// FailureLimitMessage is what Spark's driver logs before it exits with code
// 11 because more executors failed than spark.executor.maxNumFailures
// allows.
func FailureLimitMessage(maxFailures int) string {
	return fmt.Sprintf("Max number of executor failures (%d) reached", maxFailures)
}
