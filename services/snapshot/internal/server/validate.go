package server

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

// Limits of the requests, as the proto documents them.
const (
	defaultPageSize          = 500
	maxPageSize              = 5000
	maxBatchInterval         = time.Minute
	defaultHeartbeatInterval = 10 * time.Second
	minHeartbeatInterval     = 100 * time.Millisecond
	maxHeartbeatInterval     = 10 * time.Minute
)

// invalidArgumentError is a request field a caller must fix. Its message
// names the field, the value and what would be accepted.
type invalidArgumentError struct {
	field string
	msg   string
}

func (e *invalidArgumentError) Error() string { return e.field + ": " + e.msg }

func invalid(field, format string, args ...any) error {
	return &invalidArgumentError{field: field, msg: fmt.Sprintf(format, args...)}
}

// validateNamespace checks a namespace name; required says whether empty is
// an error.
func validateNamespace(ns string, required bool) error {
	if ns == "" {
		if required {
			return invalid("namespace", "required: the Kubernetes namespace of the application's executor pods")
		}
		return nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return invalid("namespace", "%q is not a Kubernetes namespace name: %s", clip(ns), strings.Join(errs, "; "))
	}
	return nil
}

func validateAppID(id string, required bool) error {
	if id == "" {
		if required {
			return invalid("app_id", "required: the Spark application id, the value of the pods' %s label", snapshotmodel.LabelAppID)
		}
		return nil
	}
	if errs := validation.IsValidLabelValue(id); len(errs) > 0 {
		return invalid("app_id", "%q cannot be a %s label value, so no executor pod can carry it: %s",
			clip(id), snapshotmodel.LabelAppID, strings.Join(errs, "; "))
	}
	return nil
}

func validateGetSnapshot(req *sparkpodsv1.GetSnapshotRequest) (snapshotmodel.AppKey, error) {
	if err := validateNamespace(req.GetNamespace(), true); err != nil {
		return snapshotmodel.AppKey{}, err
	}
	if err := validateAppID(req.GetAppId(), true); err != nil {
		return snapshotmodel.AppKey{}, err
	}
	return snapshotmodel.AppKey{Namespace: req.GetNamespace(), AppID: req.GetAppId()}, nil
}

// listParams is a validated ListApplicationsRequest.
type listParams struct {
	namespace string
	limit     int
	after     snapshotmodel.AppKey
}

func validateListApplications(req *sparkpodsv1.ListApplicationsRequest) (listParams, error) {
	p := listParams{namespace: req.GetNamespace()}
	if err := validateNamespace(p.namespace, false); err != nil {
		return p, err
	}
	switch size := req.GetPageSize(); {
	case size < 0:
		return p, invalid("page_size", "%d is negative; pass 0 for the default of %d, or up to %d", size, defaultPageSize, maxPageSize)
	case size == 0:
		p.limit = defaultPageSize
	default:
		p.limit = min(int(size), maxPageSize)
	}
	if tok := req.GetPageToken(); tok != "" {
		after, ns, ok := decodePageToken(tok)
		if !ok {
			return p, invalid("page_token", "not a token this service issued; pass next_page_token from the previous response unchanged")
		}
		if ns != p.namespace {
			return p, invalid("page_token", "issued for namespace %q, but this request asks for %q; keep the namespace the same while paging", ns, p.namespace)
		}
		p.after = after
	}
	return p, nil
}

// Page tokens carry the namespace filter and the last key returned.
const pageTokenVersion = "1"

func encodePageToken(namespace string, last snapshotmodel.AppKey) string {
	raw := strings.Join([]string{pageTokenVersion, namespace, last.Namespace, last.AppID}, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodePageToken(tok string) (last snapshotmodel.AppKey, namespace string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return last, "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != pageTokenVersion || parts[2] == "" || parts[3] == "" {
		return last, "", false
	}
	return snapshotmodel.AppKey{Namespace: parts[2], AppID: parts[3]}, parts[1], true
}

// watchParams is a validated WatchSnapshotsRequest.
type watchParams struct {
	namespace, appID string
	startRevision    int64
	epoch            string
	batch            time.Duration
	heartbeat        time.Duration
}

// filter selects the watched applications.
func (p watchParams) filter() snapshotmodel.Filter {
	switch {
	case p.appID != "":
		key := snapshotmodel.AppKey{Namespace: p.namespace, AppID: p.appID}
		return func(k snapshotmodel.AppKey) bool { return k == key }
	case p.namespace != "":
		return func(k snapshotmodel.AppKey) bool { return k.Namespace == p.namespace }
	default:
		return nil
	}
}

func validateWatchSnapshots(req *sparkpodsv1.WatchSnapshotsRequest) (watchParams, error) {
	p := watchParams{
		namespace:     req.GetNamespace(),
		appID:         req.GetAppId(),
		startRevision: req.GetStartRevision(),
		epoch:         req.GetEpoch(),
	}
	if err := validateNamespace(p.namespace, false); err != nil {
		return p, err
	}
	if err := validateAppID(p.appID, false); err != nil {
		return p, err
	}
	if p.appID != "" && p.namespace == "" {
		return p, invalid("namespace", "required when app_id is set: application ids are unique only within a namespace")
	}
	if p.startRevision < 0 {
		return p, invalid("start_revision", "%d is negative; pass 0 to start with full snapshots, or a revision this service sent", p.startRevision)
	}
	if p.startRevision > 0 && p.epoch == "" {
		return p, invalid("epoch", "required with start_revision: pass the epoch of the response that carried revision %d", p.startRevision)
	}
	var err error
	if p.batch, err = duration("batch_interval", req.GetBatchInterval(), 0, 0, maxBatchInterval, "send each change at once"); err != nil {
		return p, err
	}
	if p.heartbeat, err = duration("heartbeat_interval", req.GetHeartbeatInterval(), defaultHeartbeatInterval, minHeartbeatInterval, maxHeartbeatInterval, "the default of 10s"); err != nil {
		return p, err
	}
	return p, nil
}

// duration checks an optional Duration field: unset or zero gives def,
// anything else must be a valid duration within [lo, hi]. zeroMeans says
// what 0 stands for, for the error message.
func duration(field string, d *durationpb.Duration, def, lo, hi time.Duration, zeroMeans string) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid(field, "not a valid duration (seconds %d, nanos %d): seconds and nanos must have the same sign and nanos must be below one second", d.GetSeconds(), d.GetNanos())
	}
	v := d.AsDuration()
	if v == 0 {
		return def, nil
	}
	if v < lo || v > hi {
		return 0, invalid(field, "%v is out of range: use a value from %v to %v, or 0 for %s", v, max(lo, time.Nanosecond), hi, zeroMeans)
	}
	return v, nil
}

// clip shortens a bad value quoted in an error message.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
