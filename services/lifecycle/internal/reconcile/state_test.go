package reconcile

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// A service killed after recording a round's events and restarted with the
// recorded State must not report the same executors again, nor count their
// failures twice, nor report the failure limit again.
func TestRestoredManagerDoesNotRepeatWhatItsPredecessorReported(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.MaxNumFailures = 0 })
	store := newSnapshotStore(clk)
	store.updatePod(failedExecutor(1))
	first := m.OnNewSnapshots(store.batch(), nil)
	if len(first.Events) != 2 {
		t.Fatalf("first round: got %d events, want removed + limit", len(first.Events))
	}
	saved := m.State()

	clk.Step(time.Second)
	restarted, _ := newTestManager(t, func(c *Config) { c.MaxNumFailures = 0; c.Clock = clk })
	restarted.Restore(saved)
	if diff := cmp.Diff(saved, restarted.State()); diff != "" {
		t.Fatalf("State after Restore differs (-saved +restored):\n%s", diff)
	}
	// The pod was never deleted: the restarted service sees it still failed.
	store.updatePod(failedExecutor(1))
	got := restarted.OnNewSnapshots(store.batch(), nil)
	checkActions(t, "after restore", got, Actions{Delete: []PodRef{podOf(failedExecutor(1))}})
	if n := restarted.NumFailedExecutors(); n != 1 {
		t.Fatalf("failures after restore: got %d, want 1", n)
	}
}

func TestStateLeavesOutExpiredRemovals(t *testing.T) {
	m, clk := newTestManager(t, nil)
	store := newSnapshotStore(clk)
	store.updatePod(deletedExecutor(3))
	m.OnNewSnapshots(store.batch(), nil)
	if got := m.State().RemovedMs; len(got) != 1 {
		t.Fatalf("removed right after the round: %v", got)
	}
	clk.Step(DefaultDeletedExecutorsCacheTimeout)
	if got := m.State().RemovedMs; len(got) != 0 {
		t.Fatalf("removed after the cache timeout: %v, want none", got)
	}
}

func TestNeedsRegisteredOnlyForANewFullSnapshot(t *testing.T) {
	m, clk := newTestManager(t, nil)
	if m.NeedsRegistered(nil) {
		t.Fatal("empty batch needs registered executors")
	}
	incremental := []*sparkpodsv1.ExecutorSnapshot{{Executors: []*sparkpodsv1.Executor{runningExecutor(1)}}}
	if m.NeedsRegistered(incremental) {
		t.Fatal("incremental batch before any full snapshot needs registered executors")
	}
	full := []*sparkpodsv1.ExecutorSnapshot{{FullSnapshotTime: timestamppb.New(clk.Now().Add(time.Minute))}}
	if !m.NeedsRegistered(full) {
		t.Fatal("new full snapshot does not need registered executors")
	}
	m.OnNewSnapshots(full, nil)
	if m.NeedsRegistered(full) {
		t.Fatal("full snapshot already seen needs registered executors again")
	}
}
