package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

const (
	ns  = "analytics"
	app = "spark-0a1b2c3d"
)

func conf() map[string]string {
	return map[string]string{
		"spark.app.name":                          "pi",
		"spark.kubernetes.container.image":        "apache/spark:4.0.1",
		"spark.driver.host":                       "pi-driver-svc.analytics.svc",
		"spark.kubernetes.executor.podNamePrefix": "pi",
	}
}

func createRequest(ids ...int64) *sparkpodsv1.CreateExecutorPodsRequest {
	req := &sparkpodsv1.CreateExecutorPodsRequest{Namespace: ns, AppId: app, SparkConf: conf()}
	for _, id := range ids {
		req.Pods = append(req.Pods, &sparkpodsv1.ExecutorPodRequest{ExecutorId: id})
	}
	return req
}

func outcomes(results []*sparkpodsv1.ExecutorPodResult) []string {
	var out []string
	for _, r := range results {
		s := strings.TrimPrefix(r.GetOutcome().String(), "POD_OUTCOME_")
		if r.GetOutcome() == sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED {
			s += "/" + codes.Code(r.GetCode()).String()
		}
		out = append(out, fmt.Sprintf("%d:%s", r.GetExecutorId(), s))
	}
	return out
}

func wantOutcomes(t *testing.T, results []*sparkpodsv1.ExecutorPodResult, want ...string) {
	t.Helper()
	if got := outcomes(results); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("outcomes %v, want %v\nresults: %v", got, want, results)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	pods := newFakePods()
	client, _ := newTestClient(t, pods)
	ctx := context.Background()
	resp, err := client.CreateExecutorPods(ctx, createRequest(1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:CREATED", "2:CREATED", "3:CREATED")
	if resp.GetResults()[0].GetPodName() != "pi-exec-1" {
		t.Fatalf("pod name %q", resp.GetResults()[0].GetPodName())
	}
	resp, err = client.CreateExecutorPods(ctx, createRequest(3, 4))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "3:ALREADY_EXISTS", "4:CREATED")
	if pods.count() != 4 {
		t.Fatalf("%d pods, want 4", pods.count())
	}
}

func TestCreateRefusesPodsThatAreNotThisExecutor(t *testing.T) {
	pods := newFakePods(
		executorPod(ns, "pi-exec-1", "spark-other", 1),
		executorPod(ns, "pi-exec-2", app, 2, func(p *corev1.Pod) { p.Labels["spark-role"] = "driver" }),
		executorPod(ns, "pi-exec-3", app, 9),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pi-exec-4"}},
	)
	client, _ := newTestClient(t, pods)
	resp, err := client.CreateExecutorPods(context.Background(), createRequest(1, 2, 3, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:FAILED/PermissionDenied", "2:FAILED/PermissionDenied",
		"3:FAILED/PermissionDenied", "4:FAILED/PermissionDenied", "5:CREATED")
	if msg := resp.GetResults()[0].GetMessage(); !strings.Contains(msg, `spark-app-selector="spark-other"`) {
		t.Fatalf("refusal message %q does not say why", msg)
	}
	if p := pods.get(ns, "pi-exec-1"); p.Labels["spark-app-selector"] != "spark-other" {
		t.Fatal("the other application's pod was changed")
	}
}

func TestCreateMapsAPIErrors(t *testing.T) {
	pods := newFakePods()
	pods.fail = func(verb, name string) error {
		if verb != "create" {
			return nil
		}
		switch name {
		case "pi-exec-1":
			return apierrors.NewForbidden(podsResource, name, errors.New("exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10"))
		case "pi-exec-2":
			return apierrors.NewForbidden(podsResource, name, errors.New("violates PodSecurity \"restricted:latest\""))
		case "pi-exec-3":
			return apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, name, nil)
		case "pi-exec-4":
			return &url.Error{Op: "Post", URL: "https://10.0.0.1:6443/api/v1/namespaces/x/pods", Err: errors.New("connection refused")}
		case "pi-exec-5":
			return errors.New("some unexpected client-go internals at 0xdeadbeef")
		case "pi-exec-6":
			return apierrors.NewTooManyRequests("slow down", 1)
		}
		return nil
	}
	client, _ := newTestClient(t, pods)
	resp, err := client.CreateExecutorPods(context.Background(), createRequest(1, 2, 3, 4, 5, 6, 7))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:FAILED/ResourceExhausted", "2:FAILED/PermissionDenied", "3:FAILED/InvalidArgument",
		"4:FAILED/Unavailable", "5:FAILED/Internal", "6:FAILED/ResourceExhausted", "7:CREATED")
	for _, r := range resp.GetResults()[3:5] {
		if strings.Contains(r.GetMessage(), "10.0.0.1") || strings.Contains(r.GetMessage(), "0xdeadbeef") {
			t.Fatalf("message %q leaks a raw client error", r.GetMessage())
		}
	}
	if !strings.Contains(resp.GetResults()[0].GetMessage(), "exceeded quota") {
		t.Fatalf("quota message %q lost the API server's explanation", resp.GetResults()[0].GetMessage())
	}
}

func TestRequestIDAnswersRetriesFromMemory(t *testing.T) {
	pods := newFakePods()
	client, _ := newTestClient(t, pods)
	ctx := context.Background()
	req := createRequest(1, 2)
	req.RequestId = "batch-1"
	first, err := client.CreateExecutorPods(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	calls := pods.calls.Load()
	again, err := client.CreateExecutorPods(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, again.GetResults(), "1:CREATED", "2:CREATED") // the first call's answer
	if pods.calls.Load() != calls {
		t.Fatalf("the retry made %d API calls; want none", pods.calls.Load()-calls)
	}
	wantOutcomes(t, first.GetResults(), outcomes(again.GetResults())...)

	other := createRequest(3)
	other.RequestId = "batch-1"
	_, err = client.CreateExecutorPods(ctx, other)
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("reusing a request id for another batch: %v, want AlreadyExists", err)
	}
}

// TestACreateWhoseReplyWasLostIsOneExecutor: the API server applied a
// create but the connection broke before its reply; the retry under the
// same name finds the pod and reports it as the executor, not a failure
// (which would make the allocator request a replacement beside it). A
// create refused outright is not retried.
func TestACreateWhoseReplyWasLostIsOneExecutor(t *testing.T) {
	pods := newFakePods()
	var lost atomic.Bool
	pods.lostReply = func(name string) error {
		if name == "pi-exec-1" && lost.CompareAndSwap(false, true) {
			return &url.Error{Op: "Post", URL: "https://10.0.0.1:6443/api/v1/namespaces/x/pods", Err: io.ErrUnexpectedEOF}
		}
		return nil
	}
	pods.fail = func(verb, name string) error {
		if verb == "create" && name == "pi-exec-2" {
			return apierrors.NewForbidden(podsResource, name, errors.New("exceeded quota"))
		}
		return nil
	}
	client, _ := newTestClient(t, pods)
	resp, err := client.CreateExecutorPods(context.Background(), createRequest(1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:ALREADY_EXISTS", "2:FAILED/ResourceExhausted", "3:CREATED")
	if n := pods.count(); n != 2 {
		t.Errorf("%d pods exist, want 2", n)
	}
	if got := pods.creates.Load(); got != 3 {
		// pi-exec-1 twice (created, then AlreadyExists on the retry) and
		// pi-exec-3; pi-exec-2 is refused before it.
		t.Errorf("%d creates reached the API server, want 3", got)
	}
}

func TestConcurrentRetriesShareOneCall(t *testing.T) {
	pods := newFakePods()
	gate := make(chan struct{})
	pods.fail = func(verb, _ string) error {
		if verb == "create" {
			<-gate
		}
		return nil
	}
	client, _ := newTestClient(t, pods)
	req := createRequest(1, 2, 3, 4, 5)
	req.RequestId = "r"
	var wg sync.WaitGroup
	results := make([][]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.CreateExecutorPods(context.Background(), req)
			results[i], errs[i] = outcomes(resp.GetResults()), err
		}()
	}
	close(gate)
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || strings.Join(results[i], " ") != "1:CREATED 2:CREATED 3:CREATED 4:CREATED 5:CREATED" {
			t.Fatalf("call %d: %v %v; want every pod CREATED (one call, shared)", i, results[i], errs[i])
		}
	}
	if n := pods.creates.Load(); n != 5 {
		t.Fatalf("%d creates for 4 concurrent identical requests, want 5", n)
	}
}

func TestCreateRejectsInvalidConfigurationNamingTheKey(t *testing.T) {
	pods := newFakePods()
	client, _ := newTestClient(t, pods)
	for key, value := range map[string]string{
		"spark.executor.memory":                     "lots",
		"spark.kubernetes.container.image":          "",
		"spark.kubernetes.executor.request.cores":   "-2",
		"spark.kubernetes.executor.podTemplateFile": "/opt/template.yaml",
	} {
		req := createRequest(1)
		req.SparkConf[key] = value
		_, err := client.CreateExecutorPods(context.Background(), req)
		wantKey := key
		if key == "spark.kubernetes.container.image" {
			wantKey = "spark.kubernetes.executor.container.image"
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), wantKey) {
			t.Errorf("%s=%q: %v; want InvalidArgument naming %s", key, value, err, wantKey)
		}
	}
	req := createRequest(1)
	req.Pods[0].ResourceProfileId = 7
	if _, err := client.CreateExecutorPods(context.Background(), req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown profile: %v, want InvalidArgument", err)
	}
	if pods.calls.Load() != 0 {
		t.Fatalf("invalid requests made %d API calls", pods.calls.Load())
	}
}

func TestCreateNeedsTheDriverPod(t *testing.T) {
	pods := newFakePods(
		executorPod(ns, "pi-driver", app, 0, func(p *corev1.Pod) { p.Labels["spark-role"] = "driver"; p.Status.PodIP = "10.1.2.3" }),
		executorPod(ns, "other-driver", "spark-other", 0),
		executorPod(ns, "pending-driver", app, 0, func(p *corev1.Pod) { p.Labels["spark-role"] = "driver" }),
	)
	client, _ := newTestClient(t, pods)
	req := createRequest(1)
	req.DriverPodName = "missing"
	if _, err := client.CreateExecutorPods(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("missing driver: %v, want FailedPrecondition", err)
	}
	req.DriverPodName = "other-driver"
	if _, err := client.CreateExecutorPods(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("another application's driver: %v, want FailedPrecondition", err)
	}
	req.SparkConf["spark.kubernetes.executor.useDriverPodIP"] = "true"
	req.DriverPodName = "pending-driver"
	if _, err := client.CreateExecutorPods(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("useDriverPodIP with a driver without an IP: %v, want FailedPrecondition", err)
	}
	req.DriverPodName = "pi-driver"
	resp, err := client.CreateExecutorPods(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:CREATED")
	pod := pods.get(ns, "pi-exec-1")
	driver := pods.get(ns, "pi-driver")
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != driver.UID {
		t.Fatalf("owner references %v, want the driver %s", pod.OwnerReferences, driver.UID)
	}
	if pod.Spec.Containers[0].Env[0].Value != "spark://CoarseGrainedScheduler@10.1.2.3:7078" {
		t.Fatalf("driver URL %q", pod.Spec.Containers[0].Env[0].Value)
	}
}

func TestDelete(t *testing.T) {
	now := metav1.Now()
	pods := newFakePods(
		executorPod(ns, "pi-exec-1", app, 1, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
		executorPod(ns, "pi-exec-2", app, 2, func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }),
		executorPod(ns, "pi-exec-3", app, 3, func(p *corev1.Pod) { p.DeletionTimestamp = &now }),
		executorPod(ns, "pi-driver", app, 4, func(p *corev1.Pod) { p.Labels["spark-role"] = "driver" }),
		executorPod(ns, "other-exec-5", "spark-other", 5),
	)
	client, _ := newTestClient(t, pods)
	ctx := context.Background()

	resp, err := client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{
		Namespace: ns, AppId: app, ExecutorIds: []int64{2, 1, 3, 4, 5, 6},
		Phase: sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_PENDING, GracePeriod: durationpb.New(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "2:SKIPPED", "1:DELETED", "3:ALREADY_TERMINATING", "4:FAILED/PermissionDenied", "5:NOT_FOUND", "6:NOT_FOUND")
	if pods.get(ns, "pi-driver") == nil || pods.get(ns, "other-exec-5") == nil {
		t.Fatal("a pod that is not an executor of the application was deleted")
	}

	resp, err = client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, AllExecutors: true})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "2:DELETED", "3:ALREADY_TERMINATING")
	if pods.get(ns, "pi-driver") == nil {
		t.Fatal("deleting all executors deleted the driver")
	}
}

func TestDeleteNeverDeletesAReplacedPod(t *testing.T) {
	pods := newFakePods(executorPod(ns, "pi-exec-1", app, 1))
	replaced := false
	pods.fail = func(verb, name string) error {
		if verb == "delete" && !replaced {
			// Between the list and the delete, the pod is re-created.
			replaced = true
			pods.mu.Lock()
			delete(pods.pods, ns+"/"+name)
			pods.mu.Unlock()
			pods.add(executorPod(ns, name, app, 1))
		}
		return nil
	}
	client, _ := newTestClient(t, pods)
	resp, err := client.DeleteExecutorPods(context.Background(), &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:FAILED/Aborted")
	if pods.get(ns, "pi-exec-1") == nil {
		t.Fatal("the replacement pod was deleted")
	}
}

func TestLabel(t *testing.T) {
	pods := newFakePods(
		executorPod(ns, "pi-exec-1", app, 1),
		executorPod(ns, "pi-driver", app, 2, func(p *corev1.Pod) { p.Labels["spark-role"] = "driver" }),
	)
	client, _ := newTestClient(t, pods)
	ctx := context.Background()
	resp, err := client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
		Namespace: ns, AppId: app, ExecutorIds: []int64{1, 2, 3},
		Labels:      map[string]string{"spark-exec-inactive": "true", "decommissioning": ""},
		Annotations: map[string]string{"controller.kubernetes.io/pod-deletion-cost": "-100"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, resp.GetResults(), "1:LABELED", "2:FAILED/PermissionDenied", "3:NOT_FOUND")
	p := pods.get(ns, "pi-exec-1")
	if p.Labels["spark-exec-inactive"] != "true" || p.Annotations["controller.kubernetes.io/pod-deletion-cost"] != "-100" {
		t.Fatalf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if _, ok := pods.get(ns, "pi-driver").Labels["spark-exec-inactive"]; ok {
		t.Fatal("the driver pod was labelled")
	}
	for _, key := range podspec.IdentityLabels {
		_, err := client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
			Namespace: ns, AppId: app, ExecutorIds: []int64{1}, Labels: map[string]string{key: "x"},
		})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), key) {
			t.Errorf("changing %s: %v, want InvalidArgument naming it", key, err)
		}
	}
}

func TestValidationMessages(t *testing.T) {
	client, _ := newTestClient(t, newFakePods())
	ctx := context.Background()
	for name, tt := range map[string]struct {
		call  func() error
		field string
	}{
		"no namespace": {func() error {
			_, err := client.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{AppId: app})
			return err
		}, "namespace"},
		"bad namespace": {func() error {
			r := createRequest(1)
			r.Namespace = "Not_A_Namespace"
			_, err := client.CreateExecutorPods(ctx, r)
			return err
		}, "namespace"},
		"no app": {func() error {
			_, err := client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AllExecutors: true})
			return err
		}, "app_id"},
		"no pods":   {func() error { _, err := client.CreateExecutorPods(ctx, createRequest()); return err }, "pods"},
		"zero id":   {func() error { _, err := client.CreateExecutorPods(ctx, createRequest(0)); return err }, "pods.executor_id[0]"},
		"duplicate": {func() error { _, err := client.CreateExecutorPods(ctx, createRequest(1, 1)); return err }, "pods.executor_id[1]"},
		"ids and all": {func() error {
			_, err := client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, AllExecutors: true, ExecutorIds: []int64{1}})
			return err
		}, "executor_ids"},
		"negative grace": {func() error {
			_, err := client.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, AllExecutors: true, GracePeriod: durationpb.New(-time.Second)})
			return err
		}, "grace_period"},
		"nothing to label": {func() error {
			_, err := client.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1}})
			return err
		}, "labels"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tt.field+":") {
				t.Fatalf("%v; want InvalidArgument about %s", err, tt.field)
			}
		})
	}
}
