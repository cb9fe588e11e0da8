package server

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

// Limits of the requests, as lifecycle.proto documents them.
const (
	defaultPageSize          = 100
	maxPageSize              = 1000
	defaultHeartbeatInterval = 10 * time.Second
	minHeartbeatInterval     = 100 * time.Millisecond
	maxHeartbeatInterval     = 10 * time.Minute
)

// invalidArgumentError is a request field the caller must fix; the message
// names the field, the value and what is accepted.
type invalidArgumentError struct {
	field string
	msg   string
}

func (e *invalidArgumentError) Error() string { return e.field + ": " + e.msg }

func invalid(field, format string, args ...any) error {
	return &invalidArgumentError{field: field, msg: fmt.Sprintf(format, args...)}
}

// validateApp checks the namespace and application id every request names.
func validateApp(namespace, appID string) (eventstore.AppKey, error) {
	if namespace == "" {
		return eventstore.AppKey{}, invalid("namespace", "required: the Kubernetes namespace of the application's executor pods")
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return eventstore.AppKey{}, invalid("namespace", "%q is not a Kubernetes namespace name: %s", clip(namespace), strings.Join(errs, "; "))
	}
	if appID == "" {
		return eventstore.AppKey{}, invalid("app_id", "required: the Spark application id (spark.app.id), the value of the executor pods' spark-app-selector label")
	}
	if errs := validation.IsValidLabelValue(appID); len(errs) > 0 {
		return eventstore.AppKey{}, invalid("app_id", "%q is not a Spark application id usable as the spark-app-selector label: %s", clip(appID), strings.Join(errs, "; "))
	}
	return eventstore.AppKey{Namespace: namespace, AppID: appID}, nil
}

func validateAfter(after int64) error {
	if after < 0 {
		return invalid("after_sequence", "%d is negative: pass 0 for every recorded event, or the last sequence you processed", after)
	}
	return nil
}

// watchRequest is a validated WatchExecutorEventsRequest.
type watchRequest struct {
	app       eventstore.AppKey
	after     int64
	heartbeat time.Duration
}

func validateWatch(req *sparkpodsv1.WatchExecutorEventsRequest) (watchRequest, error) {
	app, err := validateApp(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return watchRequest{}, err
	}
	if err := validateAfter(req.GetAfterSequence()); err != nil {
		return watchRequest{}, err
	}
	hb, err := heartbeatInterval(req.GetHeartbeatInterval())
	if err != nil {
		return watchRequest{}, err
	}
	return watchRequest{app: app, after: req.GetAfterSequence(), heartbeat: hb}, nil
}

func heartbeatInterval(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return defaultHeartbeatInterval, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid("heartbeat_interval", "not a valid duration: %v", err)
	}
	v := d.AsDuration()
	switch {
	case v == 0:
		return defaultHeartbeatInterval, nil
	case v < minHeartbeatInterval || v > maxHeartbeatInterval:
		return 0, invalid("heartbeat_interval", "%v is outside [%v, %v]; 0 means %v", v, minHeartbeatInterval, maxHeartbeatInterval, defaultHeartbeatInterval)
	}
	return v, nil
}

// listRequest is a validated ListExecutorEventsRequest.
type listRequest struct {
	app      eventstore.AppKey
	after    int64
	pageSize int
}

func validateList(req *sparkpodsv1.ListExecutorEventsRequest) (listRequest, error) {
	app, err := validateApp(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return listRequest{}, err
	}
	if err := validateAfter(req.GetAfterSequence()); err != nil {
		return listRequest{}, err
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size < 0 || size > maxPageSize:
		return listRequest{}, invalid("page_size", "%d is outside [1, %d]; 0 means %d", size, maxPageSize, defaultPageSize)
	}
	return listRequest{app: app, after: req.GetAfterSequence(), pageSize: size}, nil
}

func validateAcknowledge(req *sparkpodsv1.AcknowledgeExecutorEventsRequest) (eventstore.AppKey, int64, error) {
	app, err := validateApp(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return eventstore.AppKey{}, 0, err
	}
	if req.GetSequence() < 0 {
		return eventstore.AppKey{}, 0, invalid("sequence", "%d is negative: pass the sequence of the last event you processed", req.GetSequence())
	}
	return app, req.GetSequence(), nil
}

// clip keeps a repeated input short in messages.
func clip(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
