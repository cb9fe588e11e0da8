package snapshottest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Recorder follows a snapshot stream through the Go client and remembers
// everything it saw, for tests to wait on and inspect.
type Recorder struct {
	mu      sync.Mutex
	latest  map[snapshotwatcher.AppKey]*sparkpodsv1.ExecutorSnapshot
	states  map[snapshotwatcher.AppKey]map[int64][]*sparkpodsv1.Executor
	updates []snapshotwatcher.Update
	changed chan struct{}
	stopped error
}

// Record runs a snapshotwatcher.Watcher over conn until the test ends.
func Record(t testing.TB, conn grpc.ClientConnInterface, opts ...snapshotwatcher.Option) *Recorder {
	t.Helper()
	w, err := snapshotwatcher.New(conn, append([]snapshotwatcher.Option{snapshotwatcher.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{
		latest:  map[snapshotwatcher.AppKey]*sparkpodsv1.ExecutorSnapshot{},
		states:  map[snapshotwatcher.AppKey]map[int64][]*sparkpodsv1.Executor{},
		changed: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := w.Run(ctx, func(_ context.Context, u snapshotwatcher.Update) error {
			r.apply(u)
			return nil
		})
		r.mu.Lock()
		r.stopped = err
		r.mu.Unlock()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		r.mu.Lock()
		defer r.mu.Unlock()
		if !errors.Is(r.stopped, context.Canceled) {
			t.Errorf("snapshot watcher stopped: %v", r.stopped)
		}
	})
	return r
}

func (r *Recorder) apply(u snapshotwatcher.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
	if u.Reset {
		clear(r.latest)
	}
	for _, key := range u.Removed {
		delete(r.latest, key)
	}
	for _, s := range u.Snapshots {
		key := snapshotwatcher.AppKey{Namespace: s.GetNamespace(), AppID: s.GetAppId()}
		r.latest[key] = s
		if r.states[key] == nil {
			r.states[key] = map[int64][]*sparkpodsv1.Executor{}
		}
		for _, e := range s.GetExecutors() {
			seq := r.states[key][e.GetExecutorId()]
			if len(seq) == 0 || seq[len(seq)-1].GetState() != e.GetState() {
				r.states[key][e.GetExecutorId()] = append(seq, e)
			}
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Snapshot is the latest snapshot of an application, nil if the stream has
// none.
func (r *Recorder) Snapshot(key snapshotwatcher.AppKey) *sparkpodsv1.ExecutorSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest[key]
}

// States is every distinct state an executor was seen in, in order (a state
// is recorded again only after a different one).
func (r *Recorder) States(key snapshotwatcher.AppKey, id int64) []*sparkpodsv1.Executor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sparkpodsv1.Executor(nil), r.states[key][id]...)
}

// Updates is every update received so far.
func (r *Recorder) Updates() []snapshotwatcher.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snapshotwatcher.Update(nil), r.updates...)
}

// WaitFor blocks until cond holds for the recorder, failing the test after
// timeout.
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(*Recorder) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if cond(r) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// ExecutorState is an executor's state in the latest snapshot, UNSPECIFIED
// when it is not there.
func (r *Recorder) ExecutorState(key snapshotwatcher.AppKey, id int64) sparkpodsv1.ExecutorState {
	s := r.Snapshot(key)
	for _, e := range s.GetExecutors() {
		if e.GetExecutorId() == id {
			return e.GetState()
		}
	}
	return sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNSPECIFIED
}
