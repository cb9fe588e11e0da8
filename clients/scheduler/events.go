package scheduler

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Events follows the application's executor events with a sequence greater
// than afterSequence (0: every event the service still keeps), in sequence
// order, each exactly once, across reconnects.
//
// The iteration ends when the caller breaks out of the loop (no error), or
// with one final (nil, err): ctx's error when ctx ends, or the wrapped
// status of a failure retrying cannot cure (NotFound, InvalidArgument,
// OutOfRange, FailedPrecondition, PermissionDenied, Unauthenticated,
// Unimplemented). Everything else (Unavailable, a broken connection, a
// silent stream) reconnects with backoff, resuming after the last event
// yielded. Each range over the result opens its own stream, starting again
// at afterSequence.
//
// To resume across restarts of the caller, persist the last sequence
// processed (or acknowledge it, see WithAcknowledgeInterval) and pass it as
// afterSequence next time.
func (a *Application) Events(ctx context.Context, afterSequence int64) iter.Seq2[*sparkpodsv1.ExecutorEvent, error] {
	return func(yield func(*sparkpodsv1.ExecutorEvent, error) bool) {
		s := &eventStream{app: a, last: afterSequence, acked: afterSequence, ackedAt: time.Now()}
		if err := s.run(ctx, yield); err != nil && !errors.Is(err, errStopped) {
			yield(nil, err)
		}
	}
}

// errStopped means the caller broke out of the loop.
var errStopped = errors.New("the caller stopped iterating")

// eventStream is one iteration of Events; it is owned by the iterating
// goroutine.
type eventStream struct {
	app     *Application
	last    int64 // the last sequence yielded
	acked   int64 // the last sequence acknowledged
	ackedAt time.Time
}

func (s *eventStream) run(ctx context.Context, yield func(*sparkpodsv1.ExecutorEvent, error) bool) error {
	c := s.app.c
	failures := 0
	for {
		progressed, err := s.follow(ctx, yield)
		if errors.Is(err, errStopped) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if terminal(err) {
			return fmt.Errorf("scheduler: executor events of %s: %w", s.app, err)
		}
		if progressed {
			failures = 0
		}
		delay := c.backoff(failures)
		failures++
		c.opts.logger.WarnContext(ctx, "executor event stream ended; resuming", "app", s.app.String(),
			"err", err, "in", delay, "after", s.last)
		if err := wait(ctx, delay); err != nil {
			return err
		}
	}
}

// terminal reports errors that retrying the same request cannot cure.
func terminal(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition,
		codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	}
	return false
}

// follow runs one stream until it fails or the caller stops. progressed
// reports whether any message arrived, which resets the backoff.
func (s *eventStream) follow(ctx context.Context, yield func(*sparkpodsv1.ExecutorEvent, error) bool) (progressed bool, err error) {
	c := s.app.c
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := c.lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace:         s.app.namespace,
		AppId:             s.app.appID,
		AfterSequence:     s.last,
		HeartbeatInterval: durationpb.New(c.opts.heartbeat),
	})
	if err != nil {
		return false, err
	}
	// A stream silent past three heartbeats is dead even if TCP has not
	// noticed. The watchdog is stopped while the caller handles an event.
	silence := 3 * c.opts.heartbeat
	errSilent := fmt.Errorf("no message for %v", silence)
	watchdog := time.AfterFunc(silence, func() { cancel(errSilent) })
	defer watchdog.Stop()
	for {
		msg, err := stream.Recv()
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errSilent) {
				err = cause
			}
			return progressed, err
		}
		progressed = true
		if ev := msg.GetEvent(); ev != nil && ev.GetSequence() > s.last {
			watchdog.Stop()
			s.last = ev.GetSequence()
			if !yield(ev, nil) {
				return progressed, errStopped
			}
		}
		// Events at or below s.last are repeats after a resume: dropped.
		s.maybeAcknowledge(ctx)
		watchdog.Reset(silence)
	}
}

// maybeAcknowledge acknowledges the events yielded so far when the
// acknowledge interval has passed. A failure is logged and retried later:
// the events stay recorded meanwhile, which costs only memory.
func (s *eventStream) maybeAcknowledge(ctx context.Context) {
	c := s.app.c
	if c.opts.ackInterval <= 0 || s.last <= s.acked || time.Since(s.ackedAt) < c.opts.ackInterval {
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, c.opts.callTimeout)
	defer cancel()
	_, err := c.lifecycle.AcknowledgeExecutorEvents(callCtx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{
		Namespace: s.app.namespace, AppId: s.app.appID, Sequence: s.last,
	})
	s.ackedAt = time.Now()
	if err != nil {
		c.opts.logger.WarnContext(ctx, "acknowledge executor events", "app", s.app.String(), "sequence", s.last, "err", err)
		return
	}
	s.acked = s.last
}
