package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

// DeleteExecutorPods implements sparkpodsv1.PodServiceServer.
func (s *Server) DeleteExecutorPods(ctx context.Context, req *sparkpodsv1.DeleteExecutorPodsRequest) (*sparkpodsv1.DeleteExecutorPodsResponse, error) {
	if err := validateDelete(req); err != nil {
		return nil, s.callError(err)
	}
	ns, appID := req.GetNamespace(), req.GetAppId()
	pods, results, err := s.selectPods(ctx, ns, appID, req.GetExecutorIds(), "delete")
	if err != nil {
		return nil, s.callError(err)
	}
	var grace *int64
	if g := req.GetGracePeriod(); g != nil {
		seconds := int64(g.AsDuration().Seconds())
		grace = &seconds
	}

	// Decide per pod, then delete the ones to delete on the fair queue.
	var todo []int
	slots := make([]*sparkpodsv1.ExecutorPodResult, len(pods))
	for i, pod := range pods {
		id := executorID(pod)
		switch {
		case pod.DeletionTimestamp != nil:
			slots[i] = result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_TERMINATING)
		case !phaseMatches(pod, req.GetPhase()):
			slots[i] = result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_SKIPPED)
		default:
			todo = append(todo, i)
		}
	}
	qerr := s.queue.Do(ctx, appKey(ns, appID), len(todo), func(ctx context.Context, j int) {
		i := todo[j]
		slots[i] = s.deleteOne(ctx, pods[i], grace)
	})
	for _, i := range todo {
		if slots[i] == nil {
			slots[i] = s.failed(executorID(pods[i]), pods[i].Name, "delete "+describe(ns, pods[i].Name), qerr)
		}
	}
	results = append(results, slots...)
	results = orderResults(req.GetExecutorIds(), results)
	s.metrics.count("delete", results)
	s.logOutcome(ctx, "delete", ns, appID, results)
	return &sparkpodsv1.DeleteExecutorPodsResponse{Results: results}, nil
}

func (s *Server) deleteOne(ctx context.Context, pod *corev1.Pod, grace *int64) *sparkpodsv1.ExecutorPodResult {
	id := executorID(pod)
	err := s.pods.Delete(ctx, pod.Namespace, pod.Name, pod.UID, grace)
	switch {
	case err == nil:
		return result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_DELETED)
	case apierrors.IsNotFound(err):
		return result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND)
	case apierrors.IsConflict(err):
		// The UID precondition failed: the pod we listed is gone and a new
		// pod has its name.
		return s.failed(id, pod.Name, "delete "+describe(pod.Namespace, pod.Name), errPodReplaced)
	}
	return s.failed(id, pod.Name, "delete "+describe(pod.Namespace, pod.Name), err)
}

func phaseMatches(pod *corev1.Pod, phase sparkpodsv1.PodPhaseFilter) bool {
	switch phase {
	case sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_PENDING:
		return pod.Status.Phase == corev1.PodPending
	case sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_RUNNING:
		return pod.Status.Phase == corev1.PodRunning
	}
	return true
}

// selectPods lists the pods a delete or label request acts on: the
// application's pods with the given executor ids, or all of its executor
// pods when ids is empty. Ids without a pod get a NOT_FOUND result; pods that
// carry an id but are not executor pods get a FAILED (PERMISSION_DENIED)
// result and are not returned.
func (s *Server) selectPods(ctx context.Context, ns, appID string, ids []int64, op string) ([]*corev1.Pod, []*sparkpodsv1.ExecutorPodResult, error) {
	var (
		sel labels.Selector
		err error
	)
	if len(ids) == 0 {
		sel, err = podspec.ExecutorSelector(appID)
	} else {
		// Without the role, so that a non-executor pod with a requested id
		// is seen, and refused, rather than silently missed.
		sel, err = podspec.AppSelector(appID, ids...)
	}
	if err != nil {
		return nil, nil, &fieldError{field: "app_id", reason: err.Error()}
	}
	var listed []corev1.Pod
	if qerr := s.queue.Do(ctx, appKey(ns, appID), 1, func(ctx context.Context, _ int) {
		listed, err = s.pods.List(ctx, ns, sel)
	}); qerr != nil {
		return nil, nil, qerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list executor pods of %s in %s: %w", appID, ns, err)
	}
	var (
		pods    []*corev1.Pod
		results []*sparkpodsv1.ExecutorPodResult
		found   = map[int64]bool{}
	)
	for i := range listed {
		pod := &listed[i]
		id := executorID(pod)
		found[id] = true
		if reason := notExecutorOf(pod, appID, 0); reason != "" {
			results = append(results, s.failed(id, pod.Name, op+" "+describe(ns, pod.Name), &refusal{fmt.Sprintf(
				"pod %s/%s has executor id %d but %s; refusing to %s it", ns, pod.Name, id, reason, op)}))
			continue
		}
		pods = append(pods, pod)
	}
	for _, id := range ids {
		if !found[id] {
			results = append(results, result(id, "", sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND))
		}
	}
	return pods, results, nil
}

// executorID is the pod's spark-exec-id, or 0 if it has none.
func executorID(pod *corev1.Pod) int64 {
	id, err := strconv.ParseInt(pod.Labels[podspec.LabelExecutorID], 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// orderResults sorts results in the order of the requested ids, or by
// executor id and pod name when all executors were asked for.
func orderResults(ids []int64, results []*sparkpodsv1.ExecutorPodResult) []*sparkpodsv1.ExecutorPodResult {
	rank := make(map[int64]int, len(ids))
	for i, id := range ids {
		rank[id] = i
	}
	sort.SliceStable(results, func(i, j int) bool {
		a, b := results[i], results[j]
		if len(ids) > 0 && rank[a.GetExecutorId()] != rank[b.GetExecutorId()] {
			return rank[a.GetExecutorId()] < rank[b.GetExecutorId()]
		}
		if a.GetExecutorId() != b.GetExecutorId() {
			return a.GetExecutorId() < b.GetExecutorId()
		}
		return a.GetPodName() < b.GetPodName()
	})
	return results
}
