package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

var (
	// errNotReady: the service has not restored its events yet.
	errNotReady = errors.New("the lifecycle service is still restoring its recorded events; retry shortly")
	// errStopping: the service is shutting down.
	errStopping = errors.New("the lifecycle service is shutting down; reconnect, resuming after the last sequence you processed")
	// errUnavailable wraps failures of the scheduler service or the API
	// server that a retry may cure.
	errUnavailable = errors.New("a service the lifecycle service depends on is unavailable; retry shortly")
)

// notFoundError: the application is unknown.
type notFoundError struct{ app eventstore.AppKey }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("application %s has no recorded executor events and is not registered with the scheduler service (SchedulerService.RegisterApplication)", e.app)
}

// outOfRangeError: a sequence beyond the last recorded one.
type outOfRangeError struct {
	field       string
	requested   int64
	last        int64
	application eventstore.AppKey
}

func (e *outOfRangeError) Error() string {
	return fmt.Sprintf("%s %d is beyond the last sequence recorded for %s, %d; pass at most %d",
		e.field, e.requested, e.application, e.last, e.last)
}

// toStatus is the one place errors become gRPC statuses. Caller mistakes say
// what to fix; anything unexpected is logged with a reference and returned
// as a masked Internal error.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var (
		bad      *invalidArgumentError
		notFound *notFoundError
		tooFar   *outOfRangeError
		seqErr   *eventstore.SequenceError
	)
	switch {
	case errors.As(err, &bad):
		st := status.New(codes.InvalidArgument, bad.Error())
		if withDetails, derr := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: bad.field, Description: bad.msg}},
		}); derr == nil {
			st = withDetails
		}
		return st.Err()
	case errors.As(err, &notFound):
		return status.Error(codes.NotFound, notFound.Error())
	case errors.As(err, &tooFar):
		return status.Error(codes.OutOfRange, tooFar.Error())
	case errors.As(err, &seqErr):
		return status.Errorf(codes.OutOfRange, "sequence %d is beyond the last recorded sequence %d; acknowledge at most %d", seqErr.Requested, seqErr.Last, seqErr.Last)
	case errors.Is(err, errNotReady), errors.Is(err, errStopping):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, eventstore.ErrConflict):
		return status.Error(codes.Aborted, "the application's events were changed concurrently; retry")
	case errors.Is(err, errUnavailable):
		ref := reference()
		s.logger.WarnContext(ctx, "dependency unavailable", "ref", ref, "err", err)
		return status.Errorf(codes.Unavailable, "%v (reference %s in the service's logs)", errUnavailable, ref)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	}
	// A failed Send on a stream the client already closed carries the
	// transport's own status.
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.Internal {
		return err
	}
	ref := reference()
	s.logger.ErrorContext(ctx, "internal error", "ref", ref, "err", err)
	return status.Errorf(codes.Internal, "internal error (reference %s in the service's logs)", ref)
}

func reference() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
