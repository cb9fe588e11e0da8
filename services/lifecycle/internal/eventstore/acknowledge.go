package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Acknowledge records that the client processed every event up to seq, and
// returns the acknowledged sequence, which never decreases. A seq beyond the
// last recorded sequence is a *SequenceError.
func (s *Store) Acknowledge(ctx context.Context, key AppKey, seq int64) (int64, error) {
	a := s.app(key)
	a.write.Lock()
	defer a.write.Unlock()
	var err error
	for range writeAttempts {
		var acked int64
		acked, err = s.tryAcknowledge(ctx, key, a, seq)
		if !isConflict(err) {
			if err != nil {
				if _, ok := errors.AsType[*SequenceError](err); !ok {
					s.metrics.writes.WithLabelValues("acknowledge", "error").Inc()
				}
				return acked, err
			}
			return acked, nil
		}
		s.metrics.writes.WithLabelValues("acknowledge", "conflict").Inc()
		if err := s.reload(ctx, key, a); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("acknowledge events of %s: %w (last: %w)", key, ErrConflict, err)
}

func (s *Store) tryAcknowledge(ctx context.Context, key AppKey, a *appLog, seq int64) (int64, error) {
	a.mu.RLock()
	segments, last, acked := slices.Clone(a.segments), a.last, a.acked
	a.mu.RUnlock()
	if seq > last {
		return acked, &SequenceError{Requested: seq, Last: last}
	}
	if seq <= acked || len(segments) == 0 {
		return acked, nil
	}
	tail := segments[len(segments)-1].without(seq)
	tail.acked = seq
	if err := s.write(ctx, key, tail, nil, false); err != nil {
		return acked, err
	}
	s.metrics.writes.WithLabelValues("acknowledge", "ok").Inc()
	kept := []*segment{}
	for _, seg := range segments[:len(segments)-1] {
		if seg.last <= seq {
			if err := s.delete(ctx, key, seg); err == nil {
				continue
			}
			// Left for the next acknowledgement; reads skip its events.
		}
		kept = append(kept, seg)
	}
	kept = append(kept, tail)
	a.mu.Lock()
	a.segments, a.acked = kept, seq
	a.mu.Unlock()
	return seq, nil
}

// trim deletes the oldest segments while more than MaxUnacknowledged
// unacknowledged events are kept. The tail stays.
func (s *Store) trim(ctx context.Context, key AppKey, a *appLog) {
	for {
		a.mu.RLock()
		segments, acked := a.segments, a.acked
		a.mu.RUnlock()
		unacked := 0
		for _, seg := range segments {
			unacked += seg.unacknowledged(acked)
		}
		if len(segments) < 2 || unacked <= s.conf.MaxUnacknowledged {
			return
		}
		oldest := segments[0]
		dropped := oldest.unacknowledged(acked)
		if err := s.delete(ctx, key, oldest); err != nil {
			s.conf.Logger.ErrorContext(ctx, "could not drop the oldest event segment", "app", key, "segment", oldest.name, "err", err)
			return
		}
		s.metrics.dropped.Add(float64(dropped))
		s.conf.Logger.WarnContext(ctx, "too many unacknowledged executor events: dropped the oldest segment",
			"app", key, "segment", oldest.name, "droppedEvents", dropped, "unacknowledged", unacked, "max", s.conf.MaxUnacknowledged)
		a.mu.Lock()
		a.segments = slices.DeleteFunc(slices.Clone(a.segments), func(seg *segment) bool { return seg == oldest })
		a.mu.Unlock()
	}
}

// unacknowledged counts the segment's events after acked.
func (s *segment) unacknowledged(acked int64) int {
	n := 0
	for _, ev := range s.events {
		if ev.GetSequence() > acked {
			n++
		}
	}
	return n
}

func (s *Store) delete(ctx context.Context, key AppKey, seg *segment) error {
	err := s.conf.ConfigMaps.Delete(ctx, key.Namespace, seg.name, seg.resourceVersion)
	if err != nil && !apierrors.IsNotFound(err) {
		s.metrics.writes.WithLabelValues("delete", resultOf(err)).Inc()
		return fmt.Errorf("delete event segment %s/%s: %w", key.Namespace, seg.name, err)
	}
	s.metrics.writes.WithLabelValues("delete", "ok").Inc()
	return nil
}
