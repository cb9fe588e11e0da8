package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

var app = AppKey{Namespace: "spark-jobs", AppID: "spark-0123456789abcdef"}

func newTestStore(t *testing.T, cms *fakeConfigMaps, edit func(*Config)) *Store {
	t.Helper()
	conf := Config{ConfigMaps: cms, Clock: testingclock.NewFakePassiveClock(time.UnixMilli(1_700_000_000_000))}
	if edit != nil {
		edit(&conf)
	}
	s, err := New(conf)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func removed(id int64, msgBytes int) *sparkpodsv1.ExecutorEvent {
	return &sparkpodsv1.ExecutorEvent{
		Namespace:  app.Namespace,
		AppId:      app.AppID,
		Type:       sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED,
		ExecutorId: id,
		State:      sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED,
		PodName:    fmt.Sprintf("spark-exec-%d", id),
		Exit: &sparkpodsv1.ExecutorExit{
			ExitCode: 137, ExitCausedByApp: true,
			Message: "\nThe executor with id " + fmt.Sprint(id) + " exited with exit code 137(SIGKILL, possible container OOM).\n" + strings.Repeat("x", msgBytes) + "\n      ",
		},
	}
}

func appendOK(t *testing.T, s *Store, state reconcile.State, events ...*sparkpodsv1.ExecutorEvent) []*sparkpodsv1.ExecutorEvent {
	t.Helper()
	got, err := s.Append(context.Background(), app, events, state, nil)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

func sequences(evs []*sparkpodsv1.ExecutorEvent) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.GetSequence())
	}
	return out
}

func TestAppendNumbersEventsAndAReloadedStoreSeesTheSame(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, nil)
	state := reconcile.State{RemovedMs: map[int64]int64{1: 5, 2: 6}, Failed: []int64{1}, FailureTimesMs: []int64{5}}
	recorded := appendOK(t, s, state, removed(1, 10), removed(2, 10))
	if diff := cmp.Diff([]int64{1, 2}, sequences(recorded)); diff != "" {
		t.Fatalf("sequences (-want +got):\n%s", diff)
	}
	appendOK(t, s, state, removed(3, 10))

	restarted := newTestStore(t, cms, nil)
	page := restarted.Read(app, 0, 0)
	if diff := cmp.Diff(s.Read(app, 0, 0).Events, page.Events, protocmp.Transform()); diff != "" {
		t.Fatalf("events after reload (-before +after):\n%s", diff)
	}
	if page.Last != 3 {
		t.Fatalf("last after reload = %d, want 3", page.Last)
	}
	gotState, ok := restarted.State(app)
	if !ok {
		t.Fatal("no state after reload")
	}
	if diff := cmp.Diff(state, gotState); diff != "" {
		t.Fatalf("state after reload (-want +got):\n%s", diff)
	}
	next := appendOK(t, restarted, state, removed(4, 10))
	if next[0].GetSequence() != 4 {
		t.Fatalf("sequence after reload = %d, want 4", next[0].GetSequence())
	}
}

func TestSegmentsStayUnderTheByteBoundAndEverySequenceSurvives(t *testing.T) {
	cms := newFakeConfigMaps()
	const maxBytes = 8 << 10
	s := newTestStore(t, cms, func(c *Config) { c.MaxSegmentBytes = maxBytes })
	var want []int64
	for i := range 40 {
		evs := appendOK(t, s, reconcile.State{}, removed(int64(2*i+1), 700), removed(int64(2*i+2), 700))
		want = append(want, sequences(evs)...)
	}
	// One batch larger than a segment is split over several.
	var big []*sparkpodsv1.ExecutorEvent
	for i := range 30 {
		big = append(big, removed(int64(100+i), 700))
	}
	want = append(want, sequences(appendOK(t, s, reconcile.State{}, big...))...)

	sizes := cms.sizes()
	if len(sizes) < 10 {
		t.Fatalf("%d segments, want the events spread over many", len(sizes))
	}
	for name, n := range sizes {
		if n > maxBytes {
			t.Errorf("segment %s holds %d bytes, more than %d", name, n, maxBytes)
		}
	}
	got := sequences(newTestStore(t, cms, nil).Read(app, 0, 0).Events)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("sequences after reload (-want +got):\n%s", diff)
	}
}

func TestAcknowledgeTrimsAndNeverGoesBack(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, func(c *Config) { c.MaxSegmentBytes = 4 << 10 })
	for i := range 20 {
		appendOK(t, s, reconcile.State{}, removed(int64(i+1), 1000))
	}
	before := len(cms.sizes())
	ctx := context.Background()
	acked, err := s.Acknowledge(ctx, app, 15)
	if err != nil || acked != 15 {
		t.Fatalf("Acknowledge(15) = %d, %v", acked, err)
	}
	if after := len(cms.sizes()); after >= before {
		t.Fatalf("segments: %d before acknowledging, %d after; want fewer", before, after)
	}
	if acked, err := s.Acknowledge(ctx, app, 3); err != nil || acked != 15 {
		t.Fatalf("Acknowledge(3) after 15 = %d, %v; want 15", acked, err)
	}
	var seqErr *SequenceError
	if _, err := s.Acknowledge(ctx, app, 21); !errors.As(err, &seqErr) {
		t.Fatalf("Acknowledge(21) with last 20: err %v, want a SequenceError", err)
	}
	restarted := newTestStore(t, cms, nil)
	page := restarted.Read(app, 0, 0)
	if diff := cmp.Diff([]int64{16, 17, 18, 19, 20}, sequences(page.Events)); diff != "" {
		t.Fatalf("events after acknowledging 15 and reloading (-want +got):\n%s", diff)
	}
	if page.Acknowledged != 15 || page.Last != 20 {
		t.Fatalf("acknowledged %d last %d after reload, want 15 and 20", page.Acknowledged, page.Last)
	}
	// Everything acknowledged: the tail stays, empty, and numbering goes on.
	if _, err := restarted.Acknowledge(ctx, app, 20); err != nil {
		t.Fatal(err)
	}
	if n := len(cms.sizes()); n != 1 {
		t.Fatalf("%d segments after acknowledging all, want the tail only", n)
	}
	if got := appendOK(t, newTestStore(t, cms, nil), reconcile.State{}, removed(30, 10)); got[0].GetSequence() != 21 {
		t.Fatalf("next sequence = %d, want 21", got[0].GetSequence())
	}
}

func TestUnacknowledgedEventsPastTheBoundDropTheOldestSegments(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, func(c *Config) { c.MaxSegmentBytes = 4 << 10; c.MaxUnacknowledged = 10 })
	for i := range 40 {
		appendOK(t, s, reconcile.State{}, removed(int64(i+1), 1000))
	}
	page := s.Read(app, 0, 0)
	if n := len(page.Events); n > 10+4 || n < 10 {
		t.Fatalf("%d events kept, want about the bound of 10", n)
	}
	if page.Last != 40 || page.Events[len(page.Events)-1].GetSequence() != 40 {
		t.Fatalf("newest events lost: last %d, events %v", page.Last, sequences(page.Events))
	}
	// A restart does not drop more.
	if diff := cmp.Diff(sequences(page.Events), sequences(newTestStore(t, cms, nil).Read(app, 0, 0).Events)); diff != "" {
		t.Fatalf("events after reload (-before +after):\n%s", diff)
	}
}

func TestConflictingWriterIsReloadedAndNothingRenumbered(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, nil)
	appendOK(t, s, reconcile.State{}, removed(1, 10))
	// Another replica recorded event 2 meanwhile.
	other := newTestStore(t, cms, nil)
	appendOK(t, other, reconcile.State{}, removed(2, 10))

	got := appendOK(t, s, reconcile.State{}, removed(3, 10))
	if got[0].GetSequence() != 3 {
		t.Fatalf("sequence after conflict = %d, want 3", got[0].GetSequence())
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, sequences(s.Read(app, 0, 0).Events)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

func TestFailedWriteRecordsNothing(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, nil)
	appendOK(t, s, reconcile.State{}, removed(1, 10))
	cms.failNext = errors.New("apiserver unavailable")
	if _, err := s.Append(context.Background(), app, []*sparkpodsv1.ExecutorEvent{removed(2, 10)}, reconcile.State{}, nil); err == nil {
		t.Fatal("Append succeeded with a failing API server")
	}
	if got := sequences(s.Read(app, 0, 0).Events); len(got) != 1 {
		t.Fatalf("events after a failed write: %v, want [1]", got)
	}
	if got := appendOK(t, s, reconcile.State{}, removed(2, 10)); got[0].GetSequence() != 2 {
		t.Fatalf("sequence after a failed write = %d, want 2", got[0].GetSequence())
	}
}

// TestAWriteWhoseReplyWasLostIsNotRecordedTwice: the API server applied the
// write but the reply was lost, so Append failed; the caller's retry with
// the same events records nothing again, whether the write created a
// segment or updated one, and later events keep their own numbers.
func TestAWriteWhoseReplyWasLostIsNotRecordedTwice(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, nil)
	ctx := context.Background()
	for _, batch := range [][]*sparkpodsv1.ExecutorEvent{
		{removed(23, 10)},                  // creates the first segment
		{removed(24, 10), removed(25, 10)}, // updates it
	} {
		cms.loseReplyAt = 1
		if _, err := s.Append(ctx, app, batch, reconcile.State{}, nil); err == nil {
			t.Fatal("Append succeeded although the reply was lost")
		}
		got := appendOK(t, s, reconcile.State{}, batch...)
		if len(got) != len(batch) {
			t.Fatalf("the retry returned %d events for %d", len(got), len(batch))
		}
		for i, ev := range got {
			if ev.GetExecutorId() != batch[i].GetExecutorId() {
				t.Errorf("the retry returned executor %d for %d", ev.GetExecutorId(), batch[i].GetExecutorId())
			}
		}
	}
	appendOK(t, s, reconcile.State{}, removed(26, 10))
	want := []int64{23, 24, 25, 26}
	for name, st := range map[string]*Store{"this store": s, "a reloaded store": newTestStore(t, cms, nil)} {
		var ids, seqs []int64
		for _, ev := range st.Read(app, 0, 0).Events {
			ids, seqs = append(ids, ev.GetExecutorId()), append(seqs, ev.GetSequence())
		}
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("%s: executors (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff([]int64{1, 2, 3, 4}, seqs); diff != "" {
			t.Errorf("%s: sequences (-want +got):\n%s", name, diff)
		}
	}
}

// TestABatchCutShortIsCompletedOnceByTheRetry: a batch larger than one
// segment fails after its first segment was written (its second write is
// refused, or applied with its reply lost); the retry records only what is
// missing.
func TestABatchCutShortIsCompletedOnceByTheRetry(t *testing.T) {
	for name, failing := range map[string]func(*fakeConfigMaps) ConfigMaps{
		"second write refused":    func(c *fakeConfigMaps) ConfigMaps { return &refuseAfter{fakeConfigMaps: c, writes: 1} },
		"second write reply lost": func(c *fakeConfigMaps) ConfigMaps { c.loseReplyAt = 2; return c },
	} {
		t.Run(name, func(t *testing.T) {
			cms := newFakeConfigMaps()
			s := newTestStore(t, cms, func(c *Config) { c.MaxSegmentBytes = 4 << 10 })
			var batch []*sparkpodsv1.ExecutorEvent
			for i := range 12 {
				batch = append(batch, removed(int64(i+1), 700))
			}
			s.conf.ConfigMaps = failing(cms)
			if _, err := s.Append(context.Background(), app, batch, reconcile.State{}, nil); err == nil {
				t.Fatal("Append succeeded although a write failed")
			}
			s.conf.ConfigMaps = cms
			appendOK(t, s, reconcile.State{}, batch...)
			var ids []int64
			for _, ev := range newTestStore(t, cms, nil).Read(app, 0, 0).Events {
				ids = append(ids, ev.GetExecutorId())
			}
			if diff := cmp.Diff([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, ids); diff != "" {
				t.Errorf("executors recorded (-want +got):\n%s", diff)
			}
		})
	}
}

// refuseAfter lets writes through to fakeConfigMaps until writes are used
// up, then refuses every further write.
type refuseAfter struct {
	*fakeConfigMaps
	writes int
}

func (r *refuseAfter) Create(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	if r.writes == 0 {
		return nil, errors.New("apiserver unavailable")
	}
	r.writes--
	return r.fakeConfigMaps.Create(ctx, cm)
}

func TestReadPagesAndWakesReaders(t *testing.T) {
	s := newTestStore(t, newFakeConfigMaps(), nil)
	first := s.Read(app, 0, 0)
	if first.Last != 0 || len(first.Events) != 0 {
		t.Fatalf("empty app: %+v", first)
	}
	appendOK(t, s, reconcile.State{}, removed(1, 1), removed(2, 1), removed(3, 1))
	select {
	case <-first.Changed:
	default:
		t.Fatal("Changed not closed by Append")
	}
	if got := sequences(s.Read(app, 1, 1).Events); !cmp.Equal(got, []int64{2}) {
		t.Fatalf("Read(after 1, limit 1) = %v, want [2]", got)
	}
}

func TestNewSegmentsAreOwnedByTheDriverPod(t *testing.T) {
	cms := newFakeConfigMaps()
	s := newTestStore(t, cms, nil)
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "driver", UID: "uid-1"}
	if _, err := s.Append(context.Background(), app, []*sparkpodsv1.ExecutorEvent{removed(1, 1)}, reconcile.State{}, owner); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, reconcile.State{}, removed(2, 1))
	list, _ := cms.List(context.Background(), app.Namespace, AppSelector(app.AppID))
	if len(list) != 1 || len(list[0].OwnerReferences) != 1 || list[0].OwnerReferences[0].UID != "uid-1" {
		t.Fatalf("segments %+v: want one owned by the driver pod", list)
	}
}

func TestSegmentNamesAreValidAndDistinct(t *testing.T) {
	a := segmentName("spark-3f2a", 1)
	b := segmentName("Spark_3F2A", 1)
	if a == b {
		t.Fatalf("distinct ids share the name %s", a)
	}
	long := segmentName(strings.Repeat("a", 200), 12345)
	if len(long) > 253 || strings.ContainsAny(long, "_.") {
		t.Fatalf("invalid name %q", long)
	}
}

// TestLoadReadsOnlyTheConfiguredNamespaces checks that a store limited to
// some namespaces lists each of them, never all namespaces (which a
// namespaced ServiceAccount may not do), and restores only their
// applications.
func TestLoadReadsOnlyTheConfiguredNamespaces(t *testing.T) {
	cms := newFakeConfigMaps()
	writer := newTestStore(t, cms, nil)
	other := AppKey{Namespace: "spark-other", AppID: app.AppID}
	appendOK(t, writer, reconcile.State{}, removed(1, 10))
	if _, err := writer.Append(context.Background(), other, []*sparkpodsv1.ExecutorEvent{removed(1, 10)}, reconcile.State{}, nil); err != nil {
		t.Fatalf("Append: %v", err)
	}

	cms.listed = nil
	s := newTestStore(t, cms, func(c *Config) { c.Namespaces = []string{app.Namespace, "spark-empty"} })
	if diff := cmp.Diff([]string{app.Namespace, "spark-empty"}, cms.listed); diff != "" {
		t.Fatalf("listed namespaces (-want +got):\n%s", diff)
	}
	if got := s.Read(app, 0, 0).Last; got != 1 {
		t.Errorf("%s: last sequence %d after Load, want 1", app, got)
	}
	if _, ok := s.State(other); ok {
		t.Errorf("%s, outside the namespaces, was restored", other)
	}

	cms.listed = nil
	all := newTestStore(t, cms, nil)
	if diff := cmp.Diff([]string{""}, cms.listed); diff != "" {
		t.Fatalf("listed namespaces with none configured (-want +got):\n%s", diff)
	}
	if _, ok := all.State(other); !ok {
		t.Errorf("%s not restored with no namespaces configured", other)
	}
}
