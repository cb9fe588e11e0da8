package server

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

var stateProtos = map[snapshotmodel.State]sparkpodsv1.ExecutorState{
	snapshotmodel.StatePending:     sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING,
	snapshotmodel.StateRunning:     sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING,
	snapshotmodel.StateSucceeded:   sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED,
	snapshotmodel.StateFailed:      sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
	snapshotmodel.StateDeleted:     sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED,
	snapshotmodel.StateTerminating: sparkpodsv1.ExecutorState_EXECUTOR_STATE_TERMINATING,
	snapshotmodel.StateUnknown:     sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNKNOWN,
}

func stateProto(s snapshotmodel.State) sparkpodsv1.ExecutorState {
	if p, ok := stateProtos[s]; ok {
		return p
	}
	return sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNKNOWN
}

func timestamp(unixNano int64) *timestamppb.Timestamp {
	if unixNano == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, unixNano))
}

func executorProto(e *snapshotmodel.Executor) *sparkpodsv1.Executor {
	p := &sparkpodsv1.Executor{
		ExecutorId:        e.ID,
		State:             stateProto(e.State),
		PodName:           e.PodName,
		PodUid:            e.PodUID,
		ResourceProfileId: e.ResourceProfileID,
		Phase:             e.Phase,
		NodeName:          e.NodeName,
		PodIp:             e.PodIP,
		CreateTime:        timestamp(e.CreateTime),
		DeletionTime:      timestamp(e.DeletionTime),
		StatusReason:      e.StatusReason,
		StatusMessage:     e.StatusMessage,
		Decommissioning:   e.Decommissioning,
	}
	if e.ResourceVersion != 0 {
		p.PodResourceVersion = strconv.FormatUint(e.ResourceVersion, 10)
	}
	if t := e.Termination; t != nil {
		p.Termination = &sparkpodsv1.ContainerTermination{
			ContainerName: t.ContainerName,
			ExitCode:      t.ExitCode,
			Reason:        t.Reason,
			Message:       t.Message,
			FinishTime:    timestamp(t.FinishTime),
		}
	}
	for _, c := range e.Containers {
		p.ContainerStatuses = append(p.ContainerStatuses, &sparkpodsv1.ContainerStatus{
			Name:       c.Name,
			Image:      c.Image,
			State:      containerStateProto(c.State),
			StartTime:  timestamp(c.StartTime),
			FinishTime: timestamp(c.FinishTime),
			ExitCode:   c.ExitCode,
			Reason:     c.Reason,
		})
	}
	return p
}

func containerStateProto(s snapshotmodel.ContainerState) sparkpodsv1.ContainerState {
	switch s {
	case snapshotmodel.ContainerStateRunning:
		return sparkpodsv1.ContainerState_CONTAINER_STATE_RUNNING
	case snapshotmodel.ContainerStateTerminated:
		return sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED
	case snapshotmodel.ContainerStateWaiting:
		return sparkpodsv1.ContainerState_CONTAINER_STATE_WAITING
	default:
		return sparkpodsv1.ContainerState_CONTAINER_STATE_UNSPECIFIED
	}
}

func executorsProto(execs []*snapshotmodel.Executor) []*sparkpodsv1.Executor {
	out := make([]*sparkpodsv1.Executor, len(execs))
	for i, e := range execs {
		out[i] = executorProto(e)
	}
	return out
}

func snapshotProto(s *snapshotmodel.Snapshot) *sparkpodsv1.ExecutorSnapshot {
	return &sparkpodsv1.ExecutorSnapshot{
		Namespace:        s.App.Namespace,
		AppId:            s.App.AppID,
		Revision:         s.Revision,
		Executors:        executorsProto(s.Executors),
		FullSnapshotTime: timestamp(s.FullSnapshotTime),
	}
}

func changeProto(c *snapshotmodel.AppChange) *sparkpodsv1.ApplicationChange {
	return &sparkpodsv1.ApplicationChange{
		Namespace:          c.App.Namespace,
		AppId:              c.App.AppID,
		Revision:           c.Revision,
		Upserted:           executorsProto(c.Upserted),
		RemovedExecutorIds: c.Removed,
		FullResync:         c.FullResync,
		FullSnapshotTime:   timestamp(c.FullSnapshotTime),
		ApplicationRemoved: c.AppRemoved,
	}
}

func summaryProto(s *snapshotmodel.Summary) *sparkpodsv1.ApplicationSummary {
	c := &s.Counts
	return &sparkpodsv1.ApplicationSummary{
		Namespace: s.App.Namespace,
		AppId:     s.App.AppID,
		Revision:  s.Revision,
		Counts: &sparkpodsv1.ExecutorCounts{
			Pending:     c[snapshotmodel.StatePending],
			Running:     c[snapshotmodel.StateRunning],
			Succeeded:   c[snapshotmodel.StateSucceeded],
			Failed:      c[snapshotmodel.StateFailed],
			Deleted:     c[snapshotmodel.StateDeleted],
			Terminating: c[snapshotmodel.StateTerminating],
			Unknown:     c[snapshotmodel.StateUnknown],
		},
		FullSnapshotTime: timestamp(s.FullSnapshotTime),
	}
}
