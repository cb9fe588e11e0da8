package runner

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// LabelInactive is Spark's label for finished executor pods that are kept
// (spark.kubernetes.executor.deleteOnTermination=false).
const LabelInactive = "spark-exec-inactive"

// SchedulerClient is a Scheduler over the scheduler service's gRPC API.
func SchedulerClient(c sparkpodsv1.SchedulerServiceClient) Scheduler { return schedulerClient{c} }

type schedulerClient struct {
	c sparkpodsv1.SchedulerServiceClient
}

func (s schedulerClient) Application(ctx context.Context, app eventstore.AppKey) (*sparkpodsv1.Application, error) {
	resp, err := s.c.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: app.Namespace, AppId: app.AppID})
	if status.Code(err) == codes.NotFound {
		return nil, ErrNotManaged
	}
	if err != nil {
		return nil, fmt.Errorf("get application %s: %w", app, err)
	}
	return resp.GetApplication(), nil
}

func (s schedulerClient) Registered(ctx context.Context, app eventstore.AppKey) (map[int64]time.Time, error) {
	resp, err := s.c.ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if status.Code(err) == codes.NotFound {
		return nil, ErrNotManaged
	}
	if err != nil {
		return nil, fmt.Errorf("list executors of %s: %w", app, err)
	}
	out := make(map[int64]time.Time, len(resp.GetRegisteredExecutors()))
	for _, e := range resp.GetRegisteredExecutors() {
		out[e.GetExecutorId()] = e.GetRegisterTime().AsTime()
	}
	return out, nil
}

func (s schedulerClient) FailedPodCreations(ctx context.Context, app eventstore.AppKey) (int64, error) {
	resp, err := s.c.ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: app.Namespace, AppId: app.AppID})
	if status.Code(err) == codes.NotFound {
		return 0, ErrNotManaged
	}
	if err != nil {
		return 0, fmt.Errorf("list executors of %s: %w", app, err)
	}
	return resp.GetFailedPodCreations(), nil
}

// PodClient is Pods over the pod manager's gRPC API.
func PodClient(c sparkpodsv1.PodServiceClient) Pods { return podClient{c} }

type podClient struct{ c sparkpodsv1.PodServiceClient }

func (p podClient) Delete(ctx context.Context, app eventstore.AppKey, pods []reconcile.PodRef) ([]reconcile.PodRef, error) {
	resp, err := p.c.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{
		Namespace: app.Namespace, AppId: app.AppID, ExecutorIds: executorIDs(pods),
	})
	if err != nil {
		return pods, fmt.Errorf("delete executor pods of %s: %w", app, err)
	}
	return failedOf(pods, resp.GetResults()), nil
}

func (p podClient) LabelInactive(ctx context.Context, app eventstore.AppKey, pods []reconcile.PodRef) ([]reconcile.PodRef, error) {
	resp, err := p.c.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: app.Namespace, AppId: app.AppID, ExecutorIds: executorIDs(pods),
		Labels: map[string]string{LabelInactive: "true"},
	})
	if err != nil {
		return pods, fmt.Errorf("label executor pods of %s: %w", app, err)
	}
	return failedOf(pods, resp.GetResults()), nil
}

func executorIDs(pods []reconcile.PodRef) []int64 {
	ids := make([]int64, len(pods))
	for i, p := range pods {
		ids[i] = p.ExecutorID
	}
	return ids
}

// failedOf returns the pods whose result is a failure. NotFound and
// already-terminating outcomes are success: the pod is gone or going.
func failedOf(pods []reconcile.PodRef, results []*sparkpodsv1.ExecutorPodResult) []reconcile.PodRef {
	failed := map[int64]bool{}
	for _, r := range results {
		if r.GetOutcome() == sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED {
			failed[r.GetExecutorId()] = true
		}
	}
	var out []reconcile.PodRef
	for _, p := range pods {
		if failed[p.ExecutorID] {
			out = append(out, p)
		}
	}
	return out
}

// KubeOwners finds driver pods with a Kubernetes client (it needs `get` on
// pods).
func KubeOwners(client kubernetes.Interface) Owners { return kubeOwners{client} }

type kubeOwners struct{ client kubernetes.Interface }

func (k kubeOwners) DriverPod(ctx context.Context, namespace, name string) (*metav1.OwnerReference, error) {
	pod, err := k.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}, nil
}
