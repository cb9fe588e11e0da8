package snapshotmodel

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

var (
	appA = AppKey{"ns-a", "app-a"}
	appB = AppKey{"ns-b", "app-b"}
)

func rec(id int64, rv uint64, s State) *Executor {
	return &Executor{ID: id, ResourceVersion: rv, State: s, PodName: podName(id)}
}

func podName(id int64) string { return "exec-" + string(rune('0'+id)) }

func newTestStore(t *testing.T, history int) (*Store, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Unix(5000, 0))
	s, err := NewStore(StoreConfig{Clock: clk, HistoryLimit: history, Epoch: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// states returns id → state of an application's snapshot.
func states(s *Store, key AppKey) map[int64]State {
	out := map[int64]State{}
	for _, e := range s.Snapshot(key).Executors {
		out[e.ID] = e.State
	}
	return out
}

func TestUnknownApplicationIsEmpty(t *testing.T) {
	s, _ := newTestStore(t, 0)
	snap := s.Snapshot(appA)
	if snap.Revision != 0 || len(snap.Executors) != 0 || snap.FullSnapshotTime != 0 || snap.App != appA {
		t.Fatalf("unknown application: %+v", snap)
	}
}

func TestUpdateTakesStoreWideRevisions(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StatePending))
	s.Update(appB, rec(1, 11, StatePending))
	s.Update(appA, rec(2, 12, StatePending))
	if got := s.Snapshot(appA).Revision; got != 3 {
		t.Fatalf("app A revision = %d, want 3", got)
	}
	if got := s.Snapshot(appB).Revision; got != 2 {
		t.Fatalf("app B revision = %d, want 2", got)
	}
	if st := s.Stats(); st.Revision != 3 || st.Applications != 2 || st.Executors != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestUpdateNeverRemoves(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StateRunning))
	s.Update(appA, rec(1, 11, StateDeleted))
	if got := states(s, appA); !maps.Equal(got, map[int64]State{1: StateDeleted}) {
		t.Fatalf("states = %v, want executor 1 deleted and kept", got)
	}
	if snap := s.Snapshot(appA); snap.FullSnapshotTime != 0 {
		t.Fatalf("incremental update set the full snapshot time")
	}
}

func TestResourceVersionGuard(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 20, StateFailed))
	if s.Update(appA, rec(1, 19, StateRunning)) {
		t.Fatal("an older resourceVersion replaced a newer record")
	}
	if s.Update(appA, rec(1, 20, StateFailed)) {
		t.Fatal("the same resourceVersion was applied twice")
	}
	if got := states(s, appA)[1]; got != StateFailed {
		t.Fatalf("state went backwards to %v", got)
	}
	if s.Stats().Revision != 1 || s.Stats().Dropped != 2 {
		t.Fatalf("stats = %+v, want revision 1 and 2 dropped", s.Stats())
	}
	if !s.Update(appA, rec(1, 0, StateRunning)) {
		t.Fatal("an update without an ordered resourceVersion was refused")
	}
}

func TestRelistMarksVanishedPodsDeleted(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StateRunning))
	s.Update(appA, rec(2, 11, StateRunning))
	s.Update(appB, rec(1, 12, StateRunning))
	s.Update(appA, rec(3, 40, StatePending)) // created after the list below

	changed := s.Relist("", []Entry{
		{appA, rec(1, 10, StateRunning)}, // unchanged
		{appB, rec(1, 30, StateFailed)},  // changed while nobody watched
	}, 35)
	if changed != 2 {
		t.Fatalf("relist changed %d applications, want 2", changed)
	}
	want := map[int64]State{1: StateRunning, 2: StateDeleted, 3: StatePending}
	if got := states(s, appA); !maps.Equal(got, want) {
		t.Fatalf("app A = %v, want %v", got, want)
	}
	if got := states(s, appB); !maps.Equal(got, map[int64]State{1: StateFailed}) {
		t.Fatalf("app B = %v", got)
	}
	// Applying the same list again changes nothing: no duplicates.
	head := s.Stats().Revision
	if n := s.Relist("", []Entry{{appA, rec(1, 10, StateRunning)}, {appB, rec(1, 30, StateFailed)}}, 35); n != 0 {
		t.Fatalf("second relist changed %d applications", n)
	}
	if s.Stats().Revision != head {
		t.Fatal("second relist took a revision")
	}
	// A late watch event older than the list, about a pod the list showed
	// gone, is dropped.
	if s.Update(appB, rec(5, 33, StateRunning)) {
		t.Fatal("a stale event resurrected a pod the list did not have")
	}
	if !s.Update(appB, rec(5, 36, StatePending)) {
		t.Fatal("a pod created after the list was refused")
	}
}

func TestRelistIsScopedToItsNamespace(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StateRunning))
	s.Update(appB, rec(1, 11, StateRunning))
	s.Relist(appA.Namespace, nil, 20)
	if got := states(s, appA)[1]; got != StateDeleted {
		t.Fatalf("app A executor = %v, want deleted", got)
	}
	if got := states(s, appB)[1]; got != StateRunning {
		t.Fatalf("app B outside the scope = %v, want running", got)
	}
}

func TestReplaceIsSparksFullReplacement(t *testing.T) {
	s, clk := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StateRunning))
	s.Update(appA, rec(2, 11, StateDeleted))
	s.Update(appA, rec(3, 50, StatePending)) // newer than the list
	s.Update(appA, rec(4, 60, StateFailed))  // the list below has an older copy
	s.Update(appB, rec(1, 12, StateRunning))
	old := s.Snapshot(appA)

	clk.Step(time.Second)
	s.Replace("", []Entry{
		{appA, rec(1, 10, StateRunning)},
		{appA, rec(4, 45, StateRunning)},
		{appA, rec(5, 44, StatePending)},
	}, 45)

	want := map[int64]State{1: StateRunning, 3: StatePending, 4: StateFailed, 5: StatePending}
	if got := states(s, appA); !maps.Equal(got, want) {
		t.Fatalf("app A = %v, want %v", got, want)
	}
	snap := s.Snapshot(appA)
	if snap.FullSnapshotTime != clk.Now().UnixNano() {
		t.Fatalf("full snapshot time = %d, want the store clock's now", snap.FullSnapshotTime)
	}
	if snap.Counts[StatePending] != 2 || snap.Counts[StateFailed] != 1 || snap.Counts.Total() != 4 {
		t.Fatalf("counts = %v", snap.Counts)
	}
	if got := s.Snapshot(appB); got.Revision != 0 || len(got.Executors) != 0 {
		t.Fatalf("app B without listed pods should be dropped, got %+v", got)
	}
	if s.Stats().Applications != 1 || s.Stats().Executors != 4 {
		t.Fatalf("stats = %+v", s.Stats())
	}
	// Snapshots handed out before are untouched.
	if len(old.Executors) != 4 || old.Executors[1].State != StateDeleted {
		t.Fatalf("an earlier snapshot changed: %+v", old.Executors)
	}

	// An unchanged list still takes a revision and a new timestamp.
	head := s.Stats().Revision
	clk.Step(time.Second)
	s.Replace(appA.Namespace, []Entry{{appA, rec(1, 10, StateRunning)}, {appA, rec(3, 50, StatePending)}, {appA, rec(4, 60, StateFailed)}, {appA, rec(5, 44, StatePending)}}, 70)
	snap = s.Snapshot(appA)
	if snap.Revision != head+1 || snap.FullSnapshotTime != clk.Now().UnixNano() {
		t.Fatalf("unchanged full list: revision %d (want %d), time %d", snap.Revision, head+1, snap.FullSnapshotTime)
	}
}

func TestChangesSinceCoalesces(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StatePending)) // 1
	s.Update(appB, rec(1, 11, StatePending)) // 2
	s.Update(appA, rec(1, 12, StateRunning)) // 3
	s.Update(appA, rec(2, 13, StatePending)) // 4
	s.Update(appA, rec(1, 14, StateFailed))  // 5

	ch, err := s.ChangesSince(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Head != 5 || len(ch.Apps) != 1 {
		t.Fatalf("changes = %+v", ch)
	}
	ac := ch.Apps[0]
	if ac.App != appA || ac.Revision != 5 || len(ac.Upserted) != 2 || ac.Upserted[0].State != StateFailed || ac.Upserted[1].ID != 2 {
		t.Fatalf("app change = %+v", ac)
	}

	ch, err = s.ChangesSince(0, func(k AppKey) bool { return k == appB })
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Apps) != 1 || ch.Apps[0].App != appB || ch.Apps[0].Revision != 2 {
		t.Fatalf("filtered changes = %+v", ch.Apps)
	}

	ch, _ = s.ChangesSince(5, nil)
	if len(ch.Apps) != 0 || ch.Head != 5 {
		t.Fatalf("no changes expected, got %+v", ch)
	}
	select {
	case <-ch.Next:
		t.Fatal("Next closed without a change")
	default:
	}
	s.Update(appB, rec(1, 20, StateRunning))
	select {
	case <-ch.Next:
	default:
		t.Fatal("Next not closed by a change")
	}
}

func TestChangesSinceOrdersByRevision(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StatePending))
	s.Update(appB, rec(1, 11, StatePending))
	s.Update(appA, rec(1, 12, StateRunning))
	ch, _ := s.ChangesSince(0, nil)
	if len(ch.Apps) != 2 || ch.Apps[0].App != appB || ch.Apps[1].App != appA {
		t.Fatalf("order = %v, want B (rev 2) then A (rev 3)", []AppKey{ch.Apps[0].App, ch.Apps[1].App})
	}
}

func TestChangesSinceAfterRemoval(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appA, rec(1, 10, StateRunning))
	s.Update(appA, rec(2, 11, StateRunning))
	s.Update(appB, rec(1, 12, StateRunning))
	s.Replace("", []Entry{{appA, rec(1, 10, StateRunning)}}, 20)

	ch, err := s.ChangesSince(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	byApp := map[AppKey]AppChange{}
	for _, ac := range ch.Apps {
		byApp[ac.App] = ac
	}
	a := byApp[appA]
	if !a.FullResync || a.FullSnapshotTime == 0 || !slices.Equal(a.Removed, []int64{2}) || len(a.Upserted) != 0 {
		t.Fatalf("app A change = %+v", a)
	}
	b := byApp[appB]
	if !b.AppRemoved || !slices.Equal(b.Removed, []int64{1}) {
		t.Fatalf("app B change = %+v", b)
	}

	// Removed and back again: the reader learns the old executors are gone.
	s.Update(appB, rec(3, 30, StatePending))
	ch, _ = s.ChangesSince(3, func(k AppKey) bool { return k == appB })
	b = ch.Apps[0]
	if b.AppRemoved || !slices.Equal(b.Removed, []int64{1}) || len(b.Upserted) != 1 || b.Upserted[0].ID != 3 {
		t.Fatalf("app B after coming back = %+v", b)
	}
}

func TestChangesSinceBounds(t *testing.T) {
	s, _ := newTestStore(t, 3)
	for i := range 5 {
		s.Update(appA, rec(1, uint64(10+i), StateRunning))
	}
	if _, err := s.ChangesSince(1, nil); !errors.Is(err, ErrRevisionCompacted) {
		t.Fatalf("revision 1 with 3 of 5 changes kept: err = %v, want compacted", err)
	}
	if _, err := s.ChangesSince(2, nil); err != nil {
		t.Fatalf("revision 2 with changes 3..5 kept: %v", err)
	}
	if _, err := s.ChangesSince(6, nil); !errors.Is(err, ErrRevisionAhead) {
		t.Fatalf("revision 6 of 5: err = %v, want ahead", err)
	}
	if st := s.Stats(); st.OldestRevision != 3 {
		t.Fatalf("oldest revision = %d, want 3", st.OldestRevision)
	}
}

func TestApplicationsPaging(t *testing.T) {
	s, _ := newTestStore(t, 0)
	keys := []AppKey{{"a", "x"}, {"a", "y"}, {"b", "x"}, {"c", "z"}}
	for i, k := range keys {
		s.Update(k, rec(1, uint64(10+i), StateRunning))
	}
	var got []AppKey
	after := AppKey{}
	for {
		page, more := s.Applications("", after, 3)
		for _, a := range page {
			got = append(got, a.App)
		}
		if !more {
			break
		}
		after = page[len(page)-1].App
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("paged = %v, want %v", got, keys)
	}
	page, more := s.Applications("a", AppKey{}, 10)
	if len(page) != 2 || more || page[0].Counts[StateRunning] != 1 {
		t.Fatalf("namespace a = %+v more=%v", page, more)
	}
}

func TestSnapshotsAreConsistent(t *testing.T) {
	s, _ := newTestStore(t, 0)
	s.Update(appB, rec(1, 10, StateRunning))
	s.Update(appA, rec(1, 11, StateRunning))
	head, snaps, next := s.Snapshots(nil)
	if head != 2 || len(snaps) != 2 || snaps[0].App != appA {
		t.Fatalf("head %d snaps %v", head, snaps)
	}
	if s.Snapshot(appA) != snaps[0] {
		t.Fatal("an unchanged application's snapshot was rebuilt")
	}
	s.Update(appA, rec(2, 12, StateRunning))
	<-next
	if len(snaps[0].Executors) != 1 {
		t.Fatal("a snapshot changed after it was handed out")
	}
}
