package server

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

// Request limits.
const (
	// maxPodsPerRequest bounds a create batch and the executor ids of a
	// delete or label request.
	maxPodsPerRequest = 10_000
	// maxRequestIDLength bounds request_id.
	maxRequestIDLength = 256
	// maxAnnotationBytes is Kubernetes' limit on a pod's annotations.
	maxAnnotationBytes = 256 << 10
)

// fieldError is an invalid request field; the service answers
// InvalidArgument with it.
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func invalid(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// validateApp checks the namespace and application id every request names.
func validateApp(namespace, appID string) error {
	if namespace == "" {
		return invalid("namespace", "required: the Kubernetes namespace of the application's pods")
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return invalid("namespace", "%q is not a namespace name: %s", namespace, strings.Join(errs, "; "))
	}
	if appID == "" {
		return invalid("app_id", "required: the Spark application id (spark.app.id, the spark-app-selector label)")
	}
	if errs := validation.IsValidLabelValue(appID); len(errs) > 0 {
		return invalid("app_id", "%q cannot be a spark-app-selector label value: %s", appID, strings.Join(errs, "; "))
	}
	return nil
}

// validateExecutorIDs checks a list of executor ids: positive, unique, and
// not too many.
func validateExecutorIDs(field string, ids []int64) error {
	if len(ids) > maxPodsPerRequest {
		return invalid(field, "%d executor ids; at most %d per request", len(ids), maxPodsPerRequest)
	}
	seen := make(map[int64]struct{}, len(ids))
	for i, id := range ids {
		if id <= 0 {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "executor id %d: Spark executor ids are positive", id)
		}
		if _, dup := seen[id]; dup {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "executor id %d is listed twice", id)
		}
		seen[id] = struct{}{}
	}
	return nil
}

func validateCreate(req *sparkpodsv1.CreateExecutorPodsRequest) error {
	if err := validateApp(req.GetNamespace(), req.GetAppId()); err != nil {
		return err
	}
	if len(req.GetRequestId()) > maxRequestIDLength {
		return invalid("request_id", "%d characters; at most %d", len(req.GetRequestId()), maxRequestIDLength)
	}
	if name := req.GetDriverPodName(); name != "" {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return invalid("driver_pod_name", "%q is not a pod name: %s", name, strings.Join(errs, "; "))
		}
	}
	profiles := map[int32]bool{podspec.DefaultProfileID: true}
	for i, p := range req.GetResourceProfiles() {
		field := fmt.Sprintf("resource_profiles[%d]", i)
		if p.GetId() < 0 {
			return invalid(field+".id", "%d: resource profile ids are not negative", p.GetId())
		}
		if _, listed := profiles[p.GetId()]; listed && p.GetId() != podspec.DefaultProfileID {
			return invalid(field+".id", "resource profile %d is listed twice", p.GetId())
		}
		profiles[p.GetId()] = true
	}
	pods := req.GetPods()
	if len(pods) == 0 {
		return invalid("pods", "required: at least one executor pod to create")
	}
	ids := make([]int64, len(pods))
	for i, p := range pods {
		ids[i] = p.GetExecutorId()
		if !profiles[p.GetResourceProfileId()] {
			return invalid(fmt.Sprintf("pods[%d].resource_profile_id", i),
				"resource profile %d is not in resource_profiles (only profile 0 may be left out)", p.GetResourceProfileId())
		}
	}
	return validateExecutorIDs("pods.executor_id", ids)
}

func validateDelete(req *sparkpodsv1.DeleteExecutorPodsRequest) error {
	if err := validateApp(req.GetNamespace(), req.GetAppId()); err != nil {
		return err
	}
	switch {
	case req.GetAllExecutors() && len(req.GetExecutorIds()) > 0:
		return invalid("executor_ids", "give either executor_ids or all_executors, not both")
	case !req.GetAllExecutors() && len(req.GetExecutorIds()) == 0:
		return invalid("executor_ids", "required: the executors to delete, or all_executors")
	}
	if _, ok := sparkpodsv1.PodPhaseFilter_name[int32(req.GetPhase())]; !ok {
		return invalid("phase", "unknown phase filter %d", req.GetPhase())
	}
	if g := req.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return invalid("grace_period", "%v", err)
		}
		if g.AsDuration() < 0 {
			return invalid("grace_period", "must not be negative")
		}
	}
	return validateExecutorIDs("executor_ids", req.GetExecutorIds())
}

func validateLabel(req *sparkpodsv1.LabelExecutorPodsRequest) error {
	if err := validateApp(req.GetNamespace(), req.GetAppId()); err != nil {
		return err
	}
	if len(req.GetExecutorIds()) == 0 {
		return invalid("executor_ids", "required: the executors whose pods to label")
	}
	if err := validateExecutorIDs("executor_ids", req.GetExecutorIds()); err != nil {
		return err
	}
	if len(req.GetLabels()) == 0 && len(req.GetAnnotations()) == 0 {
		return invalid("labels", "nothing to set: give labels or annotations")
	}
	for k, v := range req.GetLabels() {
		for _, id := range podspec.IdentityLabels {
			if k == id {
				return invalid("labels", "%s is one of Spark's identity labels (%s) and cannot be changed",
					k, strings.Join(podspec.IdentityLabels, ", "))
			}
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return invalid("labels", "key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return invalid("labels", "value %q of %s: %s", v, k, strings.Join(errs, "; "))
		}
	}
	size := 0
	for k, v := range req.GetAnnotations() {
		if errs := validation.IsQualifiedName(strings.ToLower(k)); len(errs) > 0 {
			return invalid("annotations", "key %q: %s", k, strings.Join(errs, "; "))
		}
		size += len(k) + len(v)
	}
	if size > maxAnnotationBytes {
		return invalid("annotations", "%d bytes; Kubernetes allows at most %d per pod", size, maxAnnotationBytes)
	}
	return nil
}
