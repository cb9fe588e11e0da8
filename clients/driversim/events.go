package driversim

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// followEvents streams the application's executor events, resuming after
// the last sequence processed across disconnects and dropping repeats
// (delivery is at-least-once). Each event removes its executor from the
// registered set, as Spark's doRemoveExecutor does, and is acknowledged so
// the service can forget it.
func (d *Driver) followEvents(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		progressed, err := d.followEventStream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
			return fmt.Errorf("executor events: %w", err)
		}
		if progressed {
			backoff = 100 * time.Millisecond
		}
		d.cfg.Logger.Warn("executor event stream ended; resuming", "err", err, "in", backoff, "after", d.sequence())
		t := d.cfg.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (d *Driver) sequence() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastSequence
}

func (d *Driver) followEventStream(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := d.lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace:         d.cfg.Namespace,
		AppId:             d.cfg.AppID,
		AfterSequence:     d.sequence(),
		HeartbeatInterval: durationpb.New(2 * time.Second),
	})
	if err != nil {
		return false, err
	}
	var acked int64
	for {
		msg, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		switch m := msg.GetMessage().(type) {
		case *sparkpodsv1.WatchExecutorEventsResponse_Event:
			d.handleEvent(m.Event)
		case *sparkpodsv1.WatchExecutorEventsResponse_Heartbeat:
		}
		// Acknowledge on heartbeats and every 100 events, not per event.
		seq := d.sequence()
		if seq > acked && (msg.GetHeartbeat() != nil || seq-acked >= 100) {
			if _, err := d.lifecycle.AcknowledgeExecutorEvents(ctx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{
				Namespace: d.cfg.Namespace, AppId: d.cfg.AppID, Sequence: seq,
			}); err != nil {
				return progressed, fmt.Errorf("acknowledge: %w", err)
			}
			acked = seq
		}
	}
}

func (d *Driver) handleEvent(ev *sparkpodsv1.ExecutorEvent) {
	d.mu.Lock()
	if ev.GetSequence() <= d.lastSequence {
		d.mu.Unlock()
		return // a repeat after a resume
	}
	d.lastSequence = ev.GetSequence()
	id := ev.GetExecutorId()
	requested := d.requested[id]
	profile := ev.GetResourceProfileId()
	if e, ok := d.alloc.executors[id]; ok {
		profile = e.profile // a missing executor's event may not know it
	}
	if ev.GetType() != sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED {
		d.lost[id] = true
		delete(d.requested, id)
		if _, ok := d.alloc.executors[id]; ok {
			d.alloc.unregister(id)
			d.reportGen++
		}
	}
	d.mu.Unlock()
	if d.cfg.OnLoss != nil {
		d.cfg.OnLoss(Loss{Event: ev, Requested: requested, ResourceProfileID: profile})
	}
	d.poke()
}
