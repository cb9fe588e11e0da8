package scheduler

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// AppSpec describes an application to register.
type AppSpec struct {
	// Namespace of the driver and executor pods (spark.kubernetes.namespace).
	// Required.
	Namespace string
	// AppID is Spark's application id (spark.app.id), the
	// spark-app-selector label. Required.
	AppID string
	// DriverPodName is the driver pod (spark.kubernetes.driver.pod.name);
	// executor pods are owned by it. Empty in client mode.
	DriverPodName string
	// SparkConf is the driver's whole SparkConf. The allocator needs at least
	// spark.kubernetes.container.image and spark.driver.host.
	SparkConf map[string]string
	// ResourceProfiles beyond the default profile 0, which SparkConf
	// implies.
	ResourceProfiles []*sparkpodsv1.ResourceProfile
}

// Register registers an application (Spark's
// KubernetesClusterSchedulerBackend.start) and returns a handle on it.
// Registering again with the same spec succeeds; a different spec is
// FailedPrecondition.
func (c *Client) Register(ctx context.Context, spec AppSpec) (*Application, error) {
	if spec.Namespace == "" || spec.AppID == "" {
		return nil, errors.New("scheduler: register: Namespace and AppID are required")
	}
	a := c.Application(spec.Namespace, spec.AppID)
	err := c.call(ctx, "register "+a.String(), func(ctx context.Context) error {
		_, err := c.scheduler.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
			Namespace:        spec.Namespace,
			AppId:            spec.AppID,
			DriverPodName:    spec.DriverPodName,
			SparkConf:        spec.SparkConf,
			ResourceProfiles: spec.ResourceProfiles,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Application returns a handle on an application registered earlier, for
// example by a previous run of the scheduler. It makes no call.
func (c *Client) Application(namespace, appID string) *Application {
	return &Application{c: c, namespace: namespace, appID: appID}
}

// Application is a handle on one registered application. It is safe for
// concurrent use.
type Application struct {
	c         *Client
	namespace string
	appID     string
}

// Namespace is the application's namespace.
func (a *Application) Namespace() string { return a.namespace }

// AppID is the application's Spark application id.
func (a *Application) AppID() string { return a.appID }

// String is "namespace/appID".
func (a *Application) String() string { return a.namespace + "/" + a.appID }

// Get returns the registration and the allocator's state per profile.
func (a *Application) Get(ctx context.Context) (*sparkpodsv1.GetApplicationResponse, error) {
	var resp *sparkpodsv1.GetApplicationResponse
	err := a.c.call(ctx, "get "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: a.namespace, AppId: a.appID})
		return err
	})
	return resp, err
}

// SetTargets sets the total executors wanted per resource profile id
// (Spark's requestTotalExecutors); profiles left out keep their target. It
// returns the allocator's state per profile after the change.
func (a *Application) SetTargets(ctx context.Context, targets map[int32]int32) ([]*sparkpodsv1.ProfileAllocation, error) {
	req := &sparkpodsv1.SetExecutorTargetsRequest{Namespace: a.namespace, AppId: a.appID}
	for _, id := range slices.Sorted(maps.Keys(targets)) {
		req.Targets = append(req.Targets, &sparkpodsv1.ExecutorTarget{ResourceProfileId: id, TotalExecutors: targets[id]})
	}
	var resp *sparkpodsv1.SetExecutorTargetsResponse
	err := a.c.call(ctx, "set targets of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.SetExecutorTargets(ctx, req)
		return err
	})
	return resp.GetProfiles(), err
}

// ReportRegistered replaces the set of executors registered with the
// scheduler, by id with their registration times (Spark's getExecutorIds).
// Call it whenever the set changes. It returns how many the allocator holds.
func (a *Application) ReportRegistered(ctx context.Context, registered map[int64]time.Time) (int32, error) {
	req := &sparkpodsv1.ReportRegisteredExecutorsRequest{Namespace: a.namespace, AppId: a.appID}
	for _, id := range slices.Sorted(maps.Keys(registered)) {
		req.Executors = append(req.Executors, &sparkpodsv1.RegisteredExecutor{ExecutorId: id, RegisterTime: timestamppb.New(registered[id])})
	}
	var resp *sparkpodsv1.ReportRegisteredExecutorsResponse
	err := a.c.call(ctx, "report registered executors of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.ReportRegisteredExecutors(ctx, req)
		return err
	})
	return resp.GetRegisteredCount(), err
}

// Kill removes executors (Spark's doKillExecutors) and returns the ids the
// allocator accepted; ids it does not know are left out.
func (a *Application) Kill(ctx context.Context, ids []int64) ([]int64, error) {
	var resp *sparkpodsv1.KillExecutorsResponse
	err := a.c.call(ctx, "kill executors of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{Namespace: a.namespace, AppId: a.appID, ExecutorIds: ids})
		return err
	})
	return resp.GetAcceptedExecutorIds(), err
}

// Decommission labels executors for decommissioning and kills those still
// running after grace; zero grace uses the application's
// spark.kubernetes.dynamicAllocation.deleteGracePeriod. It returns the ids
// the allocator accepted.
func (a *Application) Decommission(ctx context.Context, ids []int64, grace time.Duration) ([]int64, error) {
	req := &sparkpodsv1.DecommissionExecutorsRequest{Namespace: a.namespace, AppId: a.appID, ExecutorIds: ids}
	if grace > 0 {
		req.GracePeriod = durationpb.New(grace)
	}
	var resp *sparkpodsv1.DecommissionExecutorsResponse
	err := a.c.call(ctx, "decommission executors of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.DecommissionExecutors(ctx, req)
		return err
	})
	return resp.GetAcceptedExecutorIds(), err
}

// Executors lists the application's executors and the allocator's view of
// them (registered executors, per-profile state, deleted ids).
func (a *Application) Executors(ctx context.Context) (*sparkpodsv1.ListExecutorsResponse, error) {
	var resp *sparkpodsv1.ListExecutorsResponse
	err := a.c.call(ctx, "list executors of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: a.namespace, AppId: a.appID})
		return err
	})
	return resp, err
}

// Unregister stops executor management (Spark's stop()): the executor pods
// are deleted unless spark.kubernetes.executor.deleteOnTermination is false.
// It returns how many pod deletions were requested. A retry that finds the
// application gone (the answer to an earlier attempt was lost) counts as
// success, with 0 deletions.
func (a *Application) Unregister(ctx context.Context) (int32, error) {
	var resp *sparkpodsv1.UnregisterApplicationResponse
	retry := false
	err := a.c.call(ctx, "unregister "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.scheduler.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{Namespace: a.namespace, AppId: a.appID})
		if retry && status.Code(err) == codes.NotFound {
			return nil
		}
		retry = true
		return err
	})
	return resp.GetDeletedPods(), err
}

// Acknowledge tells the lifecycle service that every event up to sequence
// is processed, so it may forget them, and returns the acknowledged
// sequence it now holds (which never decreases).
func (a *Application) Acknowledge(ctx context.Context, sequence int64) (int64, error) {
	var resp *sparkpodsv1.AcknowledgeExecutorEventsResponse
	err := a.c.call(ctx, "acknowledge events of "+a.String(), func(ctx context.Context) (err error) {
		resp, err = a.c.lifecycle.AcknowledgeExecutorEvents(ctx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{
			Namespace: a.namespace, AppId: a.appID, Sequence: sequence,
		})
		return err
	})
	return resp.GetAcknowledgedSequence(), err
}
