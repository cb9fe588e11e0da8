package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
	"github.com/sparkpods/sparkpods/services/allocator/internal/application"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// maxMessage bounds a status message.
const maxMessage = 2000

// toStatus is the one place where the service's errors become gRPC
// statuses. Errors the caller can act on keep their message; failures of
// the pod manager or the Kubernetes API become Unavailable with a generic
// message, and anything unexpected becomes Internal, both logged in full
// with a reference the message repeats, so nothing from client-go leaks.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var (
		field   *application.FieldError
		confErr *allocation.ConfigError
		sparkE  *sparkconf.Error
		precond *application.PreconditionError
		dep     *application.DependencyError
		profile *podspec.ProfileError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	case errors.As(err, &field):
		return status.Error(codes.InvalidArgument, truncate(field.Error()))
	case errors.As(err, &confErr):
		return status.Error(codes.InvalidArgument, truncate(confErr.Error()))
	case errors.As(err, &sparkE):
		return status.Error(codes.InvalidArgument, truncate(sparkE.Error()))
	case errors.As(err, &profile):
		return status.Error(codes.InvalidArgument, truncate("resource_profiles: "+profile.Error()))
	case errors.Is(err, application.ErrNotFound):
		return status.Error(codes.NotFound, "the application is not registered")
	case errors.Is(err, application.ErrNotReady):
		return status.Error(codes.Unavailable, application.ErrNotReady.Error())
	case errors.As(err, &precond):
		return status.Error(codes.FailedPrecondition, truncate(precond.Error()))
	case errors.As(err, &dep):
		ref := reference(err)
		log.Warn("dependency failed", "method", method, "service", dep.Service, "op", dep.Op, "err", dep.Err, "ref", ref)
		return status.Errorf(codes.Unavailable, "%s unavailable: could not %s; retry (ref %s)", dep.Service, dep.Op, ref)
	default:
		ref := reference(err)
		log.Error("internal error", "method", method, "err", err, "ref", ref)
		return status.Errorf(codes.Internal, "internal error (ref %s)", ref)
	}
}

// reference is a short hash of an error that a masked status message
// repeats, so an operator can find the full error in the logs.
func reference(err error) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(err.Error()))
	return fmt.Sprintf("%08x", h.Sum32())
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "…"
}
