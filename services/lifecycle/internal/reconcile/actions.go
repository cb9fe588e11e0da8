package reconcile

import (
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Actions is what one round asks the lifecycle service to do. The service
// must carry it out in this order:
//
//  1. Record every event in Events durably, in order, giving each its
//     sequence number and time.
//  2. Only once all of them are recorded, delete the pods in Delete.
//  3. Label the pods in LabelInactive spark-exec-inactive=true.
//
// Recording before deleting is what keeps an executor's loss reason from
// disappearing with its pod (SPARK-25730). If recording fails, the service
// must leave every pod of the round alone and hand the whole Actions to
// Manager.Retry, so that the next rounds report those events again. A failed
// deletion needs nothing: while the pod still shows as finished, every round
// asks for it again, as Spark does. A failed label goes back through
// Manager.Retry, so that a later round asks for it again.
type Actions struct {
	// Events to record, in the order the round found them. They carry
	// namespace, application id, type, executor id and, as the type requires,
	// state, exit, pod name, resource profile id, failed executors and
	// maximum; the sequence number and time are the service's to set.
	Events []*sparkpodsv1.ExecutorEvent
	// Delete lists finished pods to delete. As in Spark the deletion is best
	// effort: a pod that is gone or already has a deletion timestamp is left
	// alone, and a failure is not retried until a later round asks again.
	Delete []PodRef
	// LabelInactive lists finished pods to keep and label
	// spark-exec-inactive=true, when deleteOnTermination is false. The
	// snapshot service leaves labelled pods out, so they stop producing events.
	LabelInactive []PodRef
}

// Empty reports whether the round asks for nothing.
func (a Actions) Empty() bool {
	return len(a.Events) == 0 && len(a.Delete) == 0 && len(a.LabelInactive) == 0
}

// PodRef names the pod of an executor. UID tells the pod apart from a later
// pod with the same name, so a write can be made conditional on it.
type PodRef struct {
	ExecutorID int64
	Name       string
	UID        string
}

func podRef(e *sparkpodsv1.Executor) PodRef {
	return PodRef{ExecutorID: e.GetExecutorId(), Name: e.GetPodName(), UID: e.GetPodUid()}
}
