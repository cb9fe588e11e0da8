package server

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// LabelExecutorPods implements sparkpodsv1.PodServiceServer.
func (s *Server) LabelExecutorPods(ctx context.Context, req *sparkpodsv1.LabelExecutorPodsRequest) (*sparkpodsv1.LabelExecutorPodsResponse, error) {
	if err := validateLabel(req); err != nil {
		return nil, s.callError(err)
	}
	ns, appID := req.GetNamespace(), req.GetAppId()
	pods, results, err := s.selectPods(ctx, ns, appID, req.GetExecutorIds(), "label")
	if err != nil {
		return nil, s.callError(err)
	}
	slots := make([]*sparkpodsv1.ExecutorPodResult, len(pods))
	qerr := s.queue.Do(ctx, appKey(ns, appID), len(pods), func(ctx context.Context, i int) {
		slots[i] = s.labelOne(ctx, pods[i], req.GetLabels(), req.GetAnnotations())
	})
	for i, r := range slots {
		if r == nil {
			slots[i] = s.failed(executorID(pods[i]), pods[i].Name, "label "+describe(ns, pods[i].Name), qerr)
		}
	}
	results = orderResults(req.GetExecutorIds(), append(results, slots...))
	s.metrics.count("label", results)
	s.logOutcome(ctx, "label", ns, appID, results)
	return &sparkpodsv1.LabelExecutorPodsResponse{Results: results}, nil
}

// labelPatch is a JSON merge patch (RFC 7386) of a pod's labels and
// annotations. It carries the pod's UID: the API server refuses to change a
// UID, so the patch fails, rather than applying to a new pod of the same
// name, if the pod was replaced since it was listed.
type labelPatch struct {
	Metadata struct {
		UID         types.UID         `json:"uid"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
}

func (s *Server) labelOne(ctx context.Context, pod *corev1.Pod, labels, annotations map[string]string) *sparkpodsv1.ExecutorPodResult {
	id := executorID(pod)
	what := "label " + describe(pod.Namespace, pod.Name)
	var p labelPatch
	p.Metadata.UID = pod.UID
	p.Metadata.Labels = labels
	p.Metadata.Annotations = annotations
	data, err := json.Marshal(p)
	if err != nil {
		return s.failed(id, pod.Name, what, fmt.Errorf("encode patch: %w", err))
	}
	_, err = s.pods.Patch(ctx, pod.Namespace, pod.Name, types.MergePatchType, data)
	switch {
	case err == nil:
		return result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_LABELED)
	case apierrors.IsNotFound(err):
		return result(id, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND)
	case isUIDMismatch(err):
		return s.failed(id, pod.Name, what, errPodReplaced)
	}
	return s.failed(id, pod.Name, what, err)
}
