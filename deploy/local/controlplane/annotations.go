package controlplane

// Pod annotations that choose what kwok does with a pod once kube-scheduler has placed it;
// kwok.yaml implements them. A pod without any of them goes to Running at once and stays there.
const (
	// AnnotationHoldPending "true" keeps the pod Pending, for tests of pods that never start.
	AnnotationHoldPending = "sparkpods.io/hold-pending"
	// AnnotationStartDelay (a Go duration) delays Pending → Running.
	AnnotationStartDelay = "sparkpods.io/start-delay"
	// AnnotationExitCode makes every container terminate with this exit code: phase Succeeded
	// for "0", Failed otherwise.
	AnnotationExitCode = "sparkpods.io/exit-code"
	// AnnotationRunDuration (a Go duration, default 0) is how long the pod runs before it exits.
	AnnotationRunDuration = "sparkpods.io/run-duration"
	// AnnotationExitReason replaces the terminated reason (Completed for 0, Error otherwise),
	// e.g. OOMKilled.
	AnnotationExitReason = "sparkpods.io/exit-reason"
)
