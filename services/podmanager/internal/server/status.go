package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/services/internal/podspec"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/fairqueue"
)

// maxMessageLength bounds the messages the service sends.
const maxMessageLength = 1024

// refusal is a pod the service will not touch because it is not an executor
// pod of the named application. Refusals are PERMISSION_DENIED.
type refusal struct{ reason string }

func (e *refusal) Error() string { return e.reason }

// precondition is a state of the cluster that prevents the call, such as a
// missing driver pod. Preconditions are FAILED_PRECONDITION.
type precondition struct{ reason string }

func (e *precondition) Error() string { return e.reason }

// errRequestIDReused is a request_id sent again with a different request.
var errRequestIDReused = errors.New("request_id was already used for a different request; use a new request_id for a new batch")

// errPodReplaced is a pod deleted and re-created under the same name between
// the service's read and its write.
var errPodReplaced = errors.New("the pod was replaced by a new pod of the same name since it was read, so it was left alone; retry to act on the new pod")

// toStatus is the service's one translation of errors into gRPC statuses, for
// whole calls and for the per-pod results alike. what says what was being
// done ("create pod x"), for messages about Kubernetes API errors. Errors
// from the Kubernetes client never reach the caller as they are: API errors
// keep only the API server's message; anything unexpected becomes a masked
// Internal status whose details are logged under a reference.
func (s *Server) toStatus(what string, err error) *status.Status {
	var (
		field *fieldError
		conf  *sparkconf.Error
		prof  *podspec.ProfileError
		ref   *refusal
		pre   *precondition
		api   apierrors.APIStatus
	)
	switch {
	case err == nil:
		return status.New(codes.OK, "")
	case errors.As(err, &field), errors.As(err, &conf), errors.As(err, &prof):
		return newStatus(codes.InvalidArgument, err.Error())
	case errors.As(err, &ref):
		return newStatus(codes.PermissionDenied, ref.reason)
	case errors.As(err, &pre):
		return newStatus(codes.FailedPrecondition, pre.reason)
	case errors.Is(err, podspec.ErrDriverHasNoIP):
		return newStatus(codes.FailedPrecondition, err.Error()+"; retry once the driver pod is running")
	case errors.Is(err, errRequestIDReused):
		return newStatus(codes.AlreadyExists, err.Error())
	case errors.Is(err, errPodReplaced):
		return newStatus(codes.Aborted, prefix(what, err.Error()))
	case errors.Is(err, fairqueue.ErrStopped):
		return newStatus(codes.Unavailable, "podmanager is shutting down; retry")
	case errors.Is(err, context.Canceled):
		return newStatus(codes.Canceled, prefix(what, "canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return newStatus(codes.DeadlineExceeded, prefix(what, "deadline exceeded (the request's deadline left no time for this call under the rate limit)"))
	case errors.As(err, &api) && api.Status().Status == metav1.StatusFailure:
		return s.apiStatus(what, err, api.Status())
	default:
		return s.internal(what, err)
	}
}

// apiStatus maps a Kubernetes API error.
func (s *Server) apiStatus(what string, err error, st metav1.Status) *status.Status {
	msg := prefix(what, st.Message)
	switch {
	case apierrors.IsAlreadyExists(err):
		return newStatus(codes.AlreadyExists, msg)
	case apierrors.IsNotFound(err):
		return newStatus(codes.NotFound, msg)
	case apierrors.IsConflict(err), apierrors.IsGone(err), apierrors.IsResourceExpired(err):
		return newStatus(codes.Aborted, msg)
	case apierrors.IsForbidden(err):
		switch {
		case strings.Contains(st.Message, "exceeded quota"):
			return newStatus(codes.ResourceExhausted, msg)
		case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			return newStatus(codes.FailedPrecondition, msg)
		}
		return newStatus(codes.PermissionDenied, msg)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return newStatus(codes.InvalidArgument, msg)
	case apierrors.IsTooManyRequests(err):
		return newStatus(codes.ResourceExhausted, msg)
	case apierrors.IsUnauthorized(err):
		return newStatus(codes.Unavailable, prefix(what, "the Kubernetes API server does not accept podmanager's credentials"))
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsServiceUnavailable(err),
		apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err):
		return newStatus(codes.Unavailable, msg)
	}
	return s.internal(what, err)
}

// internal logs an unexpected error under a reference and masks it.
func (s *Server) internal(what string, err error) *status.Status {
	ref := make([]byte, 6)
	_, _ = rand.Read(ref)
	id := hex.EncodeToString(ref)
	s.logger.Error("unexpected error", "ref", id, "op", what, "err", err)
	if isTransport(err) {
		return newStatus(codes.Unavailable, prefix(what, "the Kubernetes API server is unreachable (ref "+id+")"))
	}
	return newStatus(codes.Internal, prefix(what, "internal error (ref "+id+")"))
}

// isTransport reports whether err is a failure to reach the API server
// rather than an answer from it.
func isTransport(err error) bool {
	var (
		urlErr *url.Error
		netErr net.Error
	)
	return errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isUIDMismatch reports whether a patch was refused because the pod's UID
// differs from the one the patch carries: the pod was replaced.
func isUIDMismatch(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	var api apierrors.APIStatus
	if !errors.As(err, &api) || api.Status().Details == nil {
		return false
	}
	for _, c := range api.Status().Details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

func prefix(what, msg string) string {
	if what == "" {
		return msg
	}
	return what + ": " + msg
}

func newStatus(code codes.Code, msg string) *status.Status {
	if len(msg) > maxMessageLength {
		msg = msg[:maxMessageLength-len("…")] + "…"
	}
	return status.New(code, msg)
}

// callError is the error a handler returns for a failed call.
func (s *Server) callError(err error) error {
	return s.toStatus("", err).Err()
}

// describe formats a pod for messages.
func describe(namespace, name string) string { return fmt.Sprintf("pod %s/%s", namespace, name) }
