package snapshotmodel

import "time"

// AppKey names a Spark application: the namespace of its executor pods and
// the value of their spark-app-selector label.
type AppKey struct {
	Namespace string
	AppID     string
}

// String returns "namespace/appID".
func (k AppKey) String() string { return k.Namespace + "/" + k.AppID }

// Less orders keys by namespace, then application id.
func (k AppKey) Less(o AppKey) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.AppID < o.AppID
}

// Executor is the compact record of one executor pod: the state Spark would
// compute plus the pod facts schedulers ask for, and nothing else, so that a
// tracked pod costs a few hundred bytes instead of the whole Pod object.
//
// An Executor is immutable once built; a change to the pod produces a new
// record. Times are Unix nanoseconds, 0 when unset.
type Executor struct {
	// ID is Spark's executor id (the spark-exec-id label).
	ID int64
	// ResourceVersion is the pod's resourceVersion as an integer (the API
	// server guarantees these compare as integers), 0 when it is not one.
	ResourceVersion uint64
	// CreateTime and DeletionTime are the pod's creation and deletion
	// timestamps.
	CreateTime   int64
	DeletionTime int64
	// PodName and PodUID identify the pod within the application's namespace.
	PodName string
	PodUID  string
	// Phase is the raw pod phase; NodeName and PodIP are empty until set.
	Phase    string
	NodeName string
	PodIP    string
	// StatusReason and StatusMessage are the pod status's reason and message.
	StatusReason  string
	StatusMessage string
	// Termination is how the executor container ended, nil while it has not.
	Termination *Termination
	// ResourceProfileID is the spark-exec-resourceprofile-id label, 0 for
	// Spark's default profile.
	ResourceProfileID int32
	// State is Spark's state of the pod.
	State State
	// Decommissioning is true when the pod carries the decommission label.
	Decommissioning bool
	// Containers are every container status of the pod, kept only for
	// executors in a final state (Succeeded or Failed): the lifecycle service
	// prints them in Spark's loss message, and nothing needs them before.
	Containers []ContainerStatus
}

// ContainerState says which state of a container status is set; running
// wins over terminated, and terminated over waiting, as in Spark's
// description of a pod's containers.
type ContainerState uint8

// The container states.
const (
	ContainerStateNone ContainerState = iota
	ContainerStateRunning
	ContainerStateTerminated
	ContainerStateWaiting
)

// ContainerStatus is one container's status, reduced to what Spark prints
// about it.
type ContainerStatus struct {
	Name  string
	Image string
	State ContainerState
	// StartTime and FinishTime are Unix nanoseconds, 0 when unset.
	StartTime  int64
	FinishTime int64
	// ExitCode is set for a terminated container.
	ExitCode int32
	// Reason is the terminated or waiting reason.
	Reason string
}

// Termination is how a container ended, from its state.terminated.
type Termination struct {
	ContainerName string
	ExitCode      int32
	Reason        string
	Message       string
	// FinishTime is in Unix nanoseconds, 0 when unknown.
	FinishTime int64
}

// withState returns a copy of e in state s at resource version rv.
func (e *Executor) withState(s State, rv uint64) *Executor {
	c := *e
	c.State = s
	c.ResourceVersion = rv
	return &c
}

// Time converts a Unix-nanosecond field of a record to a time.Time; 0 gives
// the zero time.
func Time(unixNano int64) time.Time {
	if unixNano == 0 {
		return time.Time{}
	}
	return time.Unix(0, unixNano)
}
