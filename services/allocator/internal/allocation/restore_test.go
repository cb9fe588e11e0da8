package allocation_test

import (
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
)

// restore replaces the scenario's allocator with one restored after a
// restart: it issued ids up to last, and the API server has the pods in
// existing.
func (s *scenario) restore(last int64, existing map[int64]int32) {
	s.t.Helper()
	conf := s.alloc.Config()
	alloc, err := allocation.NewAllocator(allocation.AllocatorConfig{
		Config: conf, Pods: s.pods, Clock: s.clock, Logger: slog.New(slog.DiscardHandler),
		LastExecutorID: last, Existing: existing,
	})
	if err != nil {
		s.t.Fatalf("NewAllocator: %v", err)
	}
	s.alloc = alloc
}

// fullSnapshotNow marks the last buffered snapshot as the result of a full
// re-list made now.
func (s *scenario) fullSnapshotNow() {
	s.buffer[len(s.buffer)-1].FullSnapshotTime = timestamppb.New(s.clock.Now())
}

// A restored allocator whose first snapshot lags behind the cluster (the
// snapshot service lost its watch during an API server outage) does not
// request again the pods the API server has: it waits for them as for its
// own requests, and replaces only those a later full snapshot lacks.
func TestRestoredAllocatorWaitsForExistingPodsTheSnapshotLacks(t *testing.T) {
	s := newScenario(t, nil)
	// Before the restart: ids 1–10 issued; the API server has all ten pods.
	existing := map[int64]int32{}
	for id := int64(1); id <= 10; id++ {
		existing[id] = 0
	}
	s.restore(10, existing)
	s.setTargets(map[int32]int32{0: 10})
	// The first snapshot, stale, shows only 1–7.
	for id := int64(1); id <= 7; id++ {
		s.updatePod(s.running(id, 0))
	}
	s.notify()
	s.wantRequested()
	s.wantOutstanding(3)

	// The snapshot catches up with 8 and 9; executor 10 was deleted in the
	// meantime, and a full re-list after the restore shows it gone.
	s.advance(time.Second)
	s.updatePod(s.running(8, 0))
	s.updatePod(s.running(9, 0))
	s.fullSnapshotNow()
	s.notify()
	// One replacement, with a new id: no id is reused.
	s.wantRequested(ids(11)...)
}

// Without restored pods a restart behaves as before: what the snapshot
// lacks is requested.
func TestRestoredAllocatorWithoutExistingPodsRequestsTheMissing(t *testing.T) {
	s := newScenario(t, nil)
	s.restore(10, nil)
	s.updatePod(s.running(3, 0))
	s.setTargets(map[int32]int32{0: 4})
	s.wantRequested(ids(11, 12, 13)...)
}
