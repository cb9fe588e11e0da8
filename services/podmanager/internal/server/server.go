// Package server implements sparkpods.v1.PodService, the only writer of
// executor pods.
//
// # What it touches
//
// The service acts only on executor pods of the application a request names:
// pods labelled spark-app-selector=<app_id> and spark-role=executor in the
// request's namespace. Deletes and label changes find pods by those labels
// and by spark-exec-id, so another application's pods are never selected; a
// pod of the application that carries an executor id but is not an executor
// (spark-role is not "executor") is reported FAILED with PERMISSION_DENIED
// and left alone. A create that finds its pod name taken by anything other
// than that same executor of that same application also reports FAILED with
// PERMISSION_DENIED. Every write is pinned to the pod that was read (a UID
// precondition), so a pod replaced in between is never deleted or changed
// by mistake.
//
// # Idempotency
//
// Pod names are deterministic (podspec), so creating a pod that exists
// reports ALREADY_EXISTS when it is the same executor of the same
// application. A request_id makes a retry answer from memory: the first
// call's results, without calling the API server again, for as long as the
// bounded cache keeps them; a retry that arrives while the first call runs
// waits for it.
//
// # Budget
//
// Every API call runs on the fair queue: per-application queues served
// round-robin by --create-concurrency workers under one client-side rate
// limit, so one application's 5,000 pods cannot starve another's 10.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// podAPI is the part of the Kubernetes pod API the service uses.
type podAPI interface {
	Create(ctx context.Context, namespace string, pod *corev1.Pod) (*corev1.Pod, error)
	Get(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	List(ctx context.Context, namespace string, selector labels.Selector) ([]corev1.Pod, error)
	Delete(ctx context.Context, namespace, name string, uid types.UID, gracePeriodSeconds *int64) error
	Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte) (*corev1.Pod, error)
}

// callQueue runs API calls under the shared, fair budget.
type callQueue interface {
	Do(ctx context.Context, key string, n int, fn func(ctx context.Context, i int)) error
}

// Defaults of Config.
const (
	DefaultRequestCacheSize = 4096
	DefaultRequestCacheTTL  = 10 * time.Minute
)

// Config configures a Server. Pods and Queue are required.
type Config struct {
	// Pods makes the Kubernetes API calls.
	Pods podAPI
	// Queue runs them fairly under the write budget.
	Queue callQueue
	// Logger receives the service's logs; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives the service's metrics; nil skips them.
	Registerer prometheus.Registerer
	// RequestCacheSize bounds the remembered request ids; 0 means
	// DefaultRequestCacheSize.
	RequestCacheSize int
	// RequestCacheTTL is how long a request id is remembered; 0 means
	// DefaultRequestCacheTTL.
	RequestCacheTTL time.Duration
	// Clock is the cache's clock; nil means the real clock.
	Clock clock.PassiveClock
	// UnknownOutcomeRetry is how long a create whose outcome is unknown (the
	// connection failed or timed out: the API server may have applied it) is
	// retried under the same name; 0 means DefaultUnknownOutcomeRetry, and
	// the call's deadline bounds it too.
	UnknownOutcomeRetry time.Duration
}

// DefaultUnknownOutcomeRetry rides out a kube-apiserver restart.
const DefaultUnknownOutcomeRetry = 20 * time.Second

// Server implements sparkpodsv1.PodServiceServer.
type Server struct {
	sparkpodsv1.UnimplementedPodServiceServer

	pods     podAPI
	queue    callQueue
	logger   *slog.Logger
	metrics  *metrics
	requests *requestCache
	retry    time.Duration
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Pods == nil || cfg.Queue == nil {
		return nil, errors.New("server: Pods and Queue are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestCacheSize == 0 {
		cfg.RequestCacheSize = DefaultRequestCacheSize
	}
	if cfg.RequestCacheTTL == 0 {
		cfg.RequestCacheTTL = DefaultRequestCacheTTL
	}
	if cfg.RequestCacheSize < 0 || cfg.RequestCacheTTL < 0 {
		return nil, errors.New("server: RequestCacheSize and RequestCacheTTL must not be negative")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("server: metrics: %w", err)
	}
	return &Server{
		pods:     cfg.Pods,
		queue:    cfg.Queue,
		logger:   cfg.Logger,
		metrics:  m,
		requests: newRequestCache(cfg.RequestCacheSize, cfg.RequestCacheTTL, cfg.Clock),
		retry:    cmp.Or(cfg.UnknownOutcomeRetry, DefaultUnknownOutcomeRetry),
	}, nil
}

// appKey names an application's queue.
func appKey(namespace, appID string) string { return namespace + "/" + appID }

// CreateExecutorPods implements sparkpodsv1.PodServiceServer.
func (s *Server) CreateExecutorPods(ctx context.Context, req *sparkpodsv1.CreateExecutorPodsRequest) (*sparkpodsv1.CreateExecutorPodsResponse, error) {
	if err := validateCreate(req); err != nil {
		return nil, s.callError(err)
	}
	if req.GetRequestId() == "" {
		resp, err := s.create(ctx, req)
		if err != nil {
			return nil, s.callError(err)
		}
		return resp, nil
	}
	fp, err := fingerprint(req)
	if err != nil {
		return nil, s.callError(err)
	}
	key := appKey(req.GetNamespace(), req.GetAppId()) + "/" + req.GetRequestId()
	resp, replayed, err := s.requests.do(ctx, key, fp, func() (*sparkpodsv1.CreateExecutorPodsResponse, error) {
		return s.create(ctx, req)
	})
	if err != nil {
		return nil, s.callError(err)
	}
	if replayed {
		s.metrics.replays.Inc()
		s.logger.DebugContext(ctx, "answered a retried request from the cache", "namespace", req.GetNamespace(),
			"app", req.GetAppId(), "request_id", req.GetRequestId())
	}
	return resp, nil
}

// create builds the request's pods and creates them.
func (s *Server) create(ctx context.Context, req *sparkpodsv1.CreateExecutorPodsRequest) (*sparkpodsv1.CreateExecutorPodsResponse, error) {
	ns, appID := req.GetNamespace(), req.GetAppId()
	// Validate the whole configuration before any API call.
	builder, err := podspec.NewBuilder(podspec.Application{
		Namespace: ns, AppID: appID, Conf: sparkconf.Conf(req.GetSparkConf()), Profiles: req.GetResourceProfiles(),
	})
	if err != nil {
		return nil, err
	}
	if name := req.GetDriverPodName(); name != "" {
		driver, err := s.driver(ctx, ns, appID, name)
		if err != nil {
			return nil, err
		}
		if builder, err = builder.WithDriver(driver); err != nil {
			return nil, err
		}
	}
	pods := make([]*corev1.Pod, len(req.GetPods()))
	for i, p := range req.GetPods() {
		if pods[i], err = builder.Build(p.GetExecutorId(), p.GetResourceProfileId()); err != nil {
			return nil, err
		}
	}

	results := make([]*sparkpodsv1.ExecutorPodResult, len(pods))
	qerr := s.queue.Do(ctx, appKey(ns, appID), len(pods), func(ctx context.Context, i int) {
		results[i] = s.createOne(ctx, appID, req.GetPods()[i].GetExecutorId(), pods[i])
	})
	for i, r := range results {
		if r == nil { // never attempted: the call's deadline, cancellation or shutdown
			results[i] = s.failed(req.GetPods()[i].GetExecutorId(), pods[i].Name, "create "+describe(ns, pods[i].Name), qerr)
		}
	}
	s.metrics.count("create", results)
	s.logOutcome(ctx, "create", ns, appID, results)
	return &sparkpodsv1.CreateExecutorPodsResponse{Results: results}, nil
}

// driver reads the driver pod the executors will be owned by.
func (s *Server) driver(ctx context.Context, ns, appID, name string) (*podspec.DriverPod, error) {
	var (
		pod *corev1.Pod
		err error
	)
	if qerr := s.queue.Do(ctx, appKey(ns, appID), 1, func(ctx context.Context, _ int) {
		pod, err = s.pods.Get(ctx, ns, name)
	}); qerr != nil {
		return nil, qerr
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, &precondition{fmt.Sprintf("driver pod %s/%s does not exist; executors owned by a missing pod would be garbage-collected at once", ns, name)}
	case err != nil:
		return nil, fmt.Errorf("read driver %s: %w", describe(ns, name), err)
	case pod.DeletionTimestamp != nil:
		return nil, &precondition{fmt.Sprintf("driver pod %s/%s is being deleted; its executors would be garbage-collected", ns, name)}
	}
	if got, ok := pod.Labels[podspec.LabelAppID]; ok && got != appID {
		return nil, &precondition{fmt.Sprintf("driver pod %s/%s belongs to application %q (spark-app-selector), not %q", ns, name, got, appID)}
	}
	return &podspec.DriverPod{Name: pod.Name, UID: pod.UID, IP: pod.Status.PodIP}, nil
}

// createOne creates one pod; a pod that exists already is success when it is
// the same executor of the same application.
func (s *Server) createOne(ctx context.Context, appID string, execID int64, pod *corev1.Pod) *sparkpodsv1.ExecutorPodResult {
	what := "create " + describe(pod.Namespace, pod.Name)
	err := s.createRetrying(ctx, pod)
	switch {
	case err == nil:
		return result(execID, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED)
	case !apierrors.IsAlreadyExists(err):
		return s.failed(execID, pod.Name, what, err)
	}
	// The name is taken. Under the same token: see by whom.
	existing, err := s.pods.Get(ctx, pod.Namespace, pod.Name)
	switch {
	case apierrors.IsNotFound(err):
		return s.failed(execID, pod.Name, what, errPodReplaced)
	case err != nil:
		return s.failed(execID, pod.Name, what, err)
	}
	if reason := notExecutorOf(existing, appID, execID); reason != "" {
		return s.failed(execID, pod.Name, what, &refusal{fmt.Sprintf(
			"pod %s/%s already exists and %s; refusing to treat it as executor %d of application %s",
			pod.Namespace, pod.Name, reason, execID, appID)})
	}
	return result(execID, pod.Name, sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_EXISTS)
}

// createRetrying creates pod, retrying for up to s.retry (and within ctx) while the
// outcome is unknown: a create whose connection failed or timed out may have
// been applied, and reporting it failed would make the allocator request a
// replacement under a new id beside a pod that exists. The pod's name is
// its identity, so a retry of a create that landed answers AlreadyExists,
// which createOne recognises as the same executor.
func (s *Server) createRetrying(ctx context.Context, pod *corev1.Pod) error {
	giveUp := time.Now().Add(s.retry)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		_, err := s.pods.Create(ctx, pod.Namespace, pod)
		if err == nil || !outcomeUnknown(err) || time.Now().Add(delay).After(giveUp) {
			return err
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		s.metrics.createRetries.Inc()
	}
}

// outcomeUnknown reports whether a write that failed with err may have been
// applied all the same.
func outcomeUnknown(err error) bool {
	return isTransport(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err)
}

// notExecutorOf says why pod is not the given executor of the application,
// or "" when it is.
func notExecutorOf(pod *corev1.Pod, appID string, execID int64) string {
	l := pod.Labels
	switch {
	case l[podspec.LabelAppID] != appID:
		return fmt.Sprintf("belongs to another application (spark-app-selector=%q)", l[podspec.LabelAppID])
	case l[podspec.LabelRole] != podspec.RoleExecutor:
		return fmt.Sprintf("is not an executor pod (spark-role=%q)", l[podspec.LabelRole])
	case execID != 0 && l[podspec.LabelExecutorID] != strconv.FormatInt(execID, 10):
		return fmt.Sprintf("is another executor (spark-exec-id=%q)", l[podspec.LabelExecutorID])
	}
	return ""
}

func result(execID int64, podName string, outcome sparkpodsv1.PodOutcome) *sparkpodsv1.ExecutorPodResult {
	return &sparkpodsv1.ExecutorPodResult{ExecutorId: execID, PodName: podName, Outcome: outcome}
}

// failed is a FAILED result for err.
func (s *Server) failed(execID int64, podName, what string, err error) *sparkpodsv1.ExecutorPodResult {
	st := s.toStatus(what, err)
	return &sparkpodsv1.ExecutorPodResult{
		ExecutorId: execID, PodName: podName, Outcome: sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED,
		Code: int32(st.Code()), Message: st.Message(),
	}
}

// logOutcome logs a summary of a call's results: failures at warning level
// with the first failure's message, the rest at debug level.
func (s *Server) logOutcome(ctx context.Context, op, ns, appID string, results []*sparkpodsv1.ExecutorPodResult) {
	counts := map[string]int{}
	var first *sparkpodsv1.ExecutorPodResult
	for _, r := range results {
		counts[r.GetOutcome().String()]++
		if r.GetOutcome() == sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED && first == nil {
			first = r
		}
	}
	attrs := []any{"op", op, "namespace", ns, "app", appID, "pods", len(results), "outcomes", counts}
	if first == nil {
		s.logger.DebugContext(ctx, "executor pods written", attrs...)
		return
	}
	attrs = append(attrs, "first_failure_code", codes.Code(first.GetCode()).String(), "first_failure", first.GetMessage())
	s.logger.WarnContext(ctx, "some executor pod writes failed", attrs...)
}
