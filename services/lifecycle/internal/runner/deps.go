package runner

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// ErrNotManaged is returned by a Scheduler for an application it does not
// know: one that never registered with the scheduler service, or that
// unregistered. The runner leaves its executors alone.
var ErrNotManaged = errors.New("application not registered with the scheduler service")

// Snapshots is the stream of executor snapshots of every application, as
// the snapshot watcher delivers it.
type Snapshots interface {
	Run(ctx context.Context, fn func(context.Context, snapshotwatcher.Update) error) error
}

// Scheduler is what the runner asks the scheduler service.
type Scheduler interface {
	// Application returns the application's registration, or ErrNotManaged.
	Application(ctx context.Context, app eventstore.AppKey) (*sparkpodsv1.Application, error)
	// Registered returns the executors registered with the scheduler and
	// when each registered, or ErrNotManaged.
	Registered(ctx context.Context, app eventstore.AppKey) (map[int64]time.Time, error)
	// FailedPodCreations returns how many executor pod creations failed
	// since the allocator took the application over (a counter that only
	// grows, except that it restarts from 0 with the allocator), or
	// ErrNotManaged.
	FailedPodCreations(ctx context.Context, app eventstore.AppKey) (int64, error)
}

// Pods carries out the pod writes of a round, through the pod manager.
type Pods interface {
	// Delete deletes the pods of the executors; pods already gone or going
	// count as deleted. It returns the executors whose deletion failed.
	Delete(ctx context.Context, app eventstore.AppKey, pods []reconcile.PodRef) (failed []reconcile.PodRef, err error)
	// LabelInactive labels the pods spark-exec-inactive=true and returns the
	// executors whose pods could not be labelled.
	LabelInactive(ctx context.Context, app eventstore.AppKey, pods []reconcile.PodRef) (failed []reconcile.PodRef, err error)
}

// Owners finds the object an application's event segments belong to: its
// driver pod.
type Owners interface {
	// DriverPod returns an owner reference to the driver pod, or nil when
	// there is none.
	DriverPod(ctx context.Context, namespace, name string) (*metav1.OwnerReference, error)
}

// Store records events durably.
type Store interface {
	Append(ctx context.Context, app eventstore.AppKey, events []*sparkpodsv1.ExecutorEvent, state reconcile.State, owner *metav1.OwnerReference) ([]*sparkpodsv1.ExecutorEvent, error)
	State(app eventstore.AppKey) (reconcile.State, bool)
}
