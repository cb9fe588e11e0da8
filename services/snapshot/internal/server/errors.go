package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// errNotSynced: the service has not finished its first list of executor
	// pods, so any answer could be wrong.
	errNotSynced = errors.New("the snapshot service has not finished its first list of executor pods; retry shortly")
	// errStopping: the service is shutting down.
	errStopping = errors.New("the snapshot service is shutting down; reconnect, resuming from the last revision")
)

// toStatus is the one place errors become gRPC statuses. Caller mistakes
// say what to fix; anything unexpected is logged with a reference and
// returned as a masked Internal error.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var bad *invalidArgumentError
	switch {
	case errors.As(err, &bad):
		st := status.New(codes.InvalidArgument, bad.Error())
		if withDetails, derr := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: bad.field, Description: bad.msg}},
		}); derr == nil {
			st = withDetails
		}
		return st.Err()
	case errors.Is(err, errNotSynced), errors.Is(err, errStopping):
		return status.Error(codes.Unavailable, err.Error())
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
