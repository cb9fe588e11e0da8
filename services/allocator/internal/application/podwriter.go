package application

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// PodClient is the part of the pod manager's API the allocator calls; the
// generated sparkpodsv1.PodServiceClient is one.
type PodClient interface {
	CreateExecutorPods(ctx context.Context, in *sparkpodsv1.CreateExecutorPodsRequest, opts ...grpc.CallOption) (*sparkpodsv1.CreateExecutorPodsResponse, error)
	DeleteExecutorPods(ctx context.Context, in *sparkpodsv1.DeleteExecutorPodsRequest, opts ...grpc.CallOption) (*sparkpodsv1.DeleteExecutorPodsResponse, error)
	LabelExecutorPods(ctx context.Context, in *sparkpodsv1.LabelExecutorPodsRequest, opts ...grpc.CallOption) (*sparkpodsv1.LabelExecutorPodsResponse, error)
}

// podCallTimeout bounds one call to the pod manager. A create batch waits
// in the pod manager's fair queue behind other applications' writes, so it
// gets a generous bound.
const podCallTimeout = 2 * time.Minute

// podWriter is the allocation.PodWriter of one application: it asks the pod
// manager for its pods, after persisting the executor-id high-water mark.
type podWriter struct {
	app *App
}

func (w podWriter) CreateExecutorPods(ctx context.Context, rpID int32, ids []int64) (map[int64]error, error) {
	a := w.app
	// Persist before creating: a pod whose id is not on record could be
	// created again under the same id by an allocator restarted from that
	// record.
	if err := a.reserveIDs(ctx, slices.Max(ids)); err != nil {
		return nil, err
	}
	pods := make([]*sparkpodsv1.ExecutorPodRequest, len(ids))
	for i, id := range ids {
		pods[i] = &sparkpodsv1.ExecutorPodRequest{ExecutorId: id, ResourceProfileId: rpID}
	}
	reg := a.reg
	ctx, cancel := context.WithTimeout(ctx, podCallTimeout)
	defer cancel()
	resp, err := a.pods.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{
		RequestId:        requestID(),
		Namespace:        reg.GetNamespace(),
		AppId:            reg.GetAppId(),
		DriverPodName:    reg.GetDriverPodName(),
		SparkConf:        reg.GetSparkConf(),
		ResourceProfiles: reg.GetResourceProfiles(),
		Pods:             pods,
	})
	if err != nil {
		a.metrics.podsFailed.Add(float64(len(ids)))
		return nil, &DependencyError{Service: "podmanager", Op: "create executor pods", Err: err}
	}
	failed := map[int64]error{}
	for _, r := range resp.GetResults() {
		switch r.GetOutcome() {
		case sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED, sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_EXISTS:
		default:
			failed[r.GetExecutorId()] = status.Error(codes.Code(r.GetCode()), r.GetMessage())
		}
	}
	// An id the response does not mention was not created either.
	answered := make(map[int64]bool, len(resp.GetResults()))
	for _, r := range resp.GetResults() {
		answered[r.GetExecutorId()] = true
	}
	for _, id := range ids {
		if !answered[id] {
			failed[id] = fmt.Errorf("the pod manager did not report executor %d", id)
		}
	}
	a.metrics.podsRequested.Add(float64(len(ids) - len(failed)))
	a.metrics.podsFailed.Add(float64(len(failed)))
	return failed, nil
}

func (w podWriter) DeletePendingExecutorPods(ctx context.Context, ids []int64) error {
	w.app.metrics.podsDeleted.WithLabelValues("excess").Add(float64(len(ids)))
	_, err := w.app.deletePods(ctx, ids, sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_PENDING)
	return err
}

func (w podWriter) DeleteExecutorPods(ctx context.Context, ids []int64) error {
	w.app.metrics.podsDeleted.WithLabelValues("timeout").Add(float64(len(ids)))
	_, err := w.app.deletePods(ctx, ids, sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_UNSPECIFIED)
	return err
}

// deletePods asks the pod manager to delete the pods of ids (all of the
// application's executor pods when ids is nil) in phase, and returns how
// many deletions it requested.
func (a *App) deletePods(ctx context.Context, ids []int64, phase sparkpodsv1.PodPhaseFilter) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, podCallTimeout)
	defer cancel()
	resp, err := a.pods.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{
		Namespace:    a.key.Namespace,
		AppId:        a.key.AppID,
		ExecutorIds:  ids,
		AllExecutors: ids == nil,
		Phase:        phase,
	})
	if err != nil {
		return 0, &DependencyError{Service: "podmanager", Op: "delete executor pods", Err: err}
	}
	deleted := 0
	var failed []int64
	for _, r := range resp.GetResults() {
		switch r.GetOutcome() {
		case sparkpodsv1.PodOutcome_POD_OUTCOME_DELETED:
			deleted++
		case sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED:
			failed = append(failed, r.GetExecutorId())
		}
	}
	if len(failed) > 0 {
		return deleted, &DependencyError{Service: "podmanager", Op: "delete executor pods",
			Err: fmt.Errorf("deleting the pods of executors %v failed", failed)}
	}
	return deleted, nil
}

// requestID returns a random id for a create batch, so that the pod manager
// answers a retried call from memory.
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
