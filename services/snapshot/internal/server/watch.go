package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

// watcher serves one WatchSnapshots stream. It keeps no buffer of its own:
// it remembers the last revision it sent and, whenever the store moves on,
// reads what changed since then from the store's history. A watcher that
// reads slowly therefore gets its changes coalesced (each executor once, in
// its newest state), and one so slow that the history no longer reaches back
// to its revision gets a reset instead. The store never waits for a watcher,
// and a watcher blocked in Send holds up nobody else.
type watcher struct {
	server *Server
	stream grpc.ServerStreamingServer[sparkpodsv1.WatchSnapshotsResponse]
	params watchParams
	filter snapshotmodel.Filter
	epoch  string

	heartbeat clock.Timer
	lastSend  time.Time
}

func (w *watcher) run(ctx context.Context) error {
	s := w.server
	cursor := w.params.startRevision
	reset := sparkpodsv1.ResetReason_RESET_REASON_UNSPECIFIED
	switch {
	case cursor == 0:
		reset = sparkpodsv1.ResetReason_RESET_REASON_INITIAL
	case w.params.epoch != w.epoch:
		reset = sparkpodsv1.ResetReason_RESET_REASON_EPOCH_CHANGED
	}
	// Until the first batch, a revision that fell out of the history is the
	// client's old revision; after it, the watcher fell behind.
	compacted := sparkpodsv1.ResetReason_RESET_REASON_REVISION_TOO_OLD

	w.lastSend = s.clock.Now()
	w.heartbeat = s.clock.NewTimer(w.params.heartbeat)
	defer w.heartbeat.Stop()
	for {
		if reset != sparkpodsv1.ResetReason_RESET_REASON_UNSPECIFIED {
			head, err := w.sendReset(reset)
			if err != nil {
				return err
			}
			cursor, reset = head, sparkpodsv1.ResetReason_RESET_REASON_UNSPECIFIED
		}
		changes, err := s.store.ChangesSince(cursor, w.filter)
		switch {
		case errors.Is(err, snapshotmodel.ErrRevisionCompacted):
			reset = compacted
			continue
		case errors.Is(err, snapshotmodel.ErrRevisionAhead):
			return invalid("start_revision", "%d is ahead of revision %d, the newest of epoch %q; resume from a revision this service sent, or pass 0",
				cursor, s.store.Stats().Revision, w.epoch)
		case err != nil:
			return err
		}
		compacted = sparkpodsv1.ResetReason_RESET_REASON_SUBSCRIBER_LAGGED
		if len(changes.Apps) > 0 {
			if err := w.sendChanges(cursor, changes); err != nil {
				return err
			}
		}
		cursor = changes.Head
		if err := w.wait(ctx, changes.Next, cursor); err != nil {
			return err
		}
	}
}

// wait returns once the store has changed (and, with a batch interval, once
// that interval has passed since), sending heartbeats meanwhile.
func (w *watcher) wait(ctx context.Context, changed <-chan struct{}, cursor int64) error {
	var batch clock.Timer
	var batchDone <-chan time.Time
	defer func() {
		if batch != nil {
			batch.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.server.stopping:
			return errStopping
		case <-w.heartbeat.C():
			if err := w.maybeHeartbeat(cursor); err != nil {
				return err
			}
		case <-changed:
			if w.params.batch == 0 {
				return nil
			}
			changed = nil
			batch = w.server.clock.NewTimer(w.params.batch)
			batchDone = batch.C()
		case <-batchDone:
			return nil
		}
	}
}

// maybeHeartbeat sends a heartbeat if nothing was sent for a heartbeat
// interval, and arms the timer for the next one.
func (w *watcher) maybeHeartbeat(cursor int64) error {
	now := w.server.clock.Now()
	if idle := now.Sub(w.lastSend); idle < w.params.heartbeat {
		w.heartbeat.Reset(w.params.heartbeat - idle)
		return nil
	}
	err := w.send("heartbeat", &sparkpodsv1.WatchSnapshotsResponse{
		Revision: cursor,
		Event:    &sparkpodsv1.WatchSnapshotsResponse_Heartbeat{Heartbeat: &sparkpodsv1.Heartbeat{Time: timestamppb.New(now)}},
	})
	w.heartbeat.Reset(w.params.heartbeat)
	return err
}

// sendReset sends the watched applications' full snapshots, in chunks of at
// most maxPerChunk executors (an application is never split), and returns the
// revision they are at. Only the last chunk carries that revision: a client
// cut off in the middle of a reset has no revision it could resume from, and
// the 0 of the earlier chunks says so.
func (w *watcher) sendReset(reason sparkpodsv1.ResetReason) (int64, error) {
	head, snaps, _ := w.server.store.Snapshots(w.filter)
	w.server.metrics.resets.WithLabelValues(resetLabel(reason)).Inc()
	for start := 0; ; {
		end, n := start, 0
		for end < len(snaps) && (end == start || n+len(snaps[end].Executors) <= w.server.maxPerChunk) {
			n += len(snaps[end].Executors)
			end++
		}
		last := end == len(snaps)
		chunk := &sparkpodsv1.SnapshotReset{Reason: reason, LastChunk: last, Snapshots: make([]*sparkpodsv1.ExecutorSnapshot, 0, end-start)}
		for _, snap := range snaps[start:end] {
			chunk.Snapshots = append(chunk.Snapshots, snapshotProto(snap))
		}
		resp := &sparkpodsv1.WatchSnapshotsResponse{Event: &sparkpodsv1.WatchSnapshotsResponse_Reset_{Reset_: chunk}}
		if last {
			resp.Revision = head
		}
		if err := w.send("reset", resp); err != nil {
			return 0, err
		}
		if last {
			return head, nil
		}
		start = end
	}
}

// sendChanges sends one coalesced batch, split into messages of at most
// maxPerChunk executors without splitting an application. Every message but
// the last carries the revision before the batch, since only after the last
// is the client at changes.Head; resuming from an earlier one repeats
// changes, which applying twice does not harm.
func (w *watcher) sendChanges(before int64, changes snapshotmodel.Changes) error {
	var (
		part []*sparkpodsv1.ApplicationChange
		n    int
	)
	flush := func(rev int64) error {
		err := w.send("changes", &sparkpodsv1.WatchSnapshotsResponse{
			Revision: rev,
			Event:    &sparkpodsv1.WatchSnapshotsResponse_Changes{Changes: &sparkpodsv1.SnapshotChanges{Changes: part}},
		})
		part, n = nil, 0
		return err
	}
	for i := range changes.Apps {
		c := &changes.Apps[i]
		size := len(c.Upserted) + len(c.Removed)
		if len(part) > 0 && n+size > w.server.maxPerChunk {
			if err := flush(before); err != nil {
				return err
			}
		}
		part = append(part, changeProto(c))
		n += size
	}
	return flush(changes.Head)
}

func (w *watcher) send(kind string, resp *sparkpodsv1.WatchSnapshotsResponse) error {
	resp.Epoch = w.epoch
	if err := w.stream.Send(resp); err != nil {
		return err
	}
	w.lastSend = w.server.clock.Now()
	w.server.metrics.messages.WithLabelValues(kind).Inc()
	return nil
}
