package snapshotmodel

import (
	"slices"
	"sync/atomic"
)

// Snapshot is one application's executors at one revision: Spark's
// ExecutorPodsSnapshot. It is immutable; the Store hands the same value to
// every reader until the application changes again.
type Snapshot struct {
	App AppKey
	// Revision is the store revision of the application's last change; 0 for
	// an application the store does not hold.
	Revision int64
	// FullSnapshotTime is Spark's fullSnapshotTs in Unix nanoseconds: when the
	// last full list replaced the snapshot; 0 before the first one.
	FullSnapshotTime int64
	// Executors are ordered by executor id.
	Executors []*Executor
	// Counts counts Executors by state.
	Counts Counts
}

// Summary is an application without its executors.
type Summary struct {
	App              AppKey
	Revision         int64
	FullSnapshotTime int64
	Counts           Counts
}

// appState is the Store's mutable record of one application. Fields other
// than view change only under the Store's write lock.
type appState struct {
	key       AppKey
	rev       int64
	fullTime  int64
	executors map[int64]*Executor
	counts    Counts
	// view caches the immutable Snapshot of the current revision; readers
	// holding the Store's read lock build it on first use.
	view atomic.Pointer[Snapshot]
}

func newAppState(key AppKey) *appState {
	return &appState{key: key, executors: make(map[int64]*Executor)}
}

// put stores e under its id and keeps the counts right.
func (a *appState) put(e *Executor) (added bool) {
	old, ok := a.executors[e.ID]
	if ok {
		a.counts[old.State]--
	}
	a.executors[e.ID] = e
	a.counts[e.State]++
	return !ok
}

func (a *appState) snapshot() *Snapshot {
	if v := a.view.Load(); v != nil {
		return v
	}
	execs := make([]*Executor, 0, len(a.executors))
	for _, e := range a.executors {
		execs = append(execs, e)
	}
	slices.SortFunc(execs, func(x, y *Executor) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
	v := &Snapshot{App: a.key, Revision: a.rev, FullSnapshotTime: a.fullTime, Executors: execs, Counts: a.counts}
	// Readers racing here build equal values; either may win.
	a.view.Store(v)
	return v
}

func (a *appState) summary() Summary {
	return Summary{App: a.key, Revision: a.rev, FullSnapshotTime: a.fullTime, Counts: a.counts}
}
