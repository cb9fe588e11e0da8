package snapshotmodel

import (
	"errors"
	"slices"
)

// Errors of Store.ChangesSince.
var (
	// ErrRevisionCompacted: the changes after the revision are no longer all
	// in the history; the reader needs full snapshots instead.
	ErrRevisionCompacted = errors.New("revision is older than the retained history")
	// ErrRevisionAhead: the revision is newer than any the store has made.
	ErrRevisionAhead = errors.New("revision is ahead of the store")
)

// change is one entry of the history: which executors of one application a
// revision touched. It holds ids, not records, so that the history costs the
// same whatever the executors hold; readers take the executors' current
// records, which is also what coalesces a slow reader's changes.
type change struct {
	rev        int64
	app        AppKey
	ids        []int64
	full       bool
	appRemoved bool
}

// history is a ring of the most recent changes, one per revision.
type history struct {
	ring  []change
	start int // index of the oldest change
	n     int
}

func newHistory(limit int) history { return history{ring: make([]change, limit)} }

func (h *history) push(c change) {
	if h.n < len(h.ring) {
		h.ring[(h.start+h.n)%len(h.ring)] = c
		h.n++
		return
	}
	h.ring[h.start] = c
	h.start = (h.start + 1) % len(h.ring)
}

// at returns the i-th oldest change.
func (h *history) at(i int) *change { return &h.ring[(h.start+i)%len(h.ring)] }

// AppChange is what changed in one application between two revisions,
// already coalesced: each executor appears once, with its current record.
type AppChange struct {
	App AppKey
	// Revision is the application's revision after the change.
	Revision int64
	// Upserted are the executors added or replaced, by id.
	Upserted []*Executor
	// Removed are the executor ids dropped by a full list, ascending.
	Removed []int64
	// FullResync is true when a full list replaced the snapshot in between;
	// FullSnapshotTime is then its new value.
	FullResync       bool
	FullSnapshotTime int64
	// AppRemoved is true when the application has no executor left and the
	// store dropped it.
	AppRemoved bool
}

// Changes is a reader's view of what changed after its revision.
type Changes struct {
	// Head is the revision the changes bring the reader to.
	Head int64
	// Apps are the changed applications that passed the filter, ordered by
	// revision.
	Apps []AppChange
	// Next is closed at the first change after Head.
	Next <-chan struct{}
}

// Filter selects applications; nil selects all.
type Filter func(AppKey) bool

// ChangesSince returns the changes after revision since, coalesced per
// application and filtered. It fails with ErrRevisionCompacted when the
// history no longer holds every change after since, and with
// ErrRevisionAhead when since is newer than the store.
func (s *Store) ChangesSince(since int64, filter Filter) (Changes, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case since > s.head:
		return Changes{}, ErrRevisionAhead
	case since < s.head-int64(s.history.n):
		return Changes{}, ErrRevisionCompacted
	}
	type pending struct {
		ids  map[int64]struct{}
		full bool
		last int64
	}
	var (
		order []AppKey
		byApp = map[AppKey]*pending{}
	)
	first := s.history.n - int(s.head-since)
	for i := first; i < s.history.n; i++ {
		c := s.history.at(i)
		if filter != nil && !filter(c.app) {
			continue
		}
		p := byApp[c.app]
		if p == nil {
			p = &pending{ids: make(map[int64]struct{}, len(c.ids))}
			byApp[c.app] = p
			order = append(order, c.app)
		}
		for _, id := range c.ids {
			p.ids[id] = struct{}{}
		}
		p.full = p.full || c.full
		p.last = c.rev
	}
	out := Changes{Head: s.head, Next: s.changed, Apps: make([]AppChange, 0, len(order))}
	for _, key := range order {
		p := byApp[key]
		ac := AppChange{App: key, Revision: p.last, FullResync: p.full}
		ids := make([]int64, 0, len(p.ids))
		for id := range p.ids {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		app := s.apps[key]
		if app == nil {
			ac.AppRemoved = true
			ac.Removed = ids
			out.Apps = append(out.Apps, ac)
			continue
		}
		ac.Revision = app.rev
		ac.FullSnapshotTime = app.fullTime
		for _, id := range ids {
			if e, ok := app.executors[id]; ok {
				ac.Upserted = append(ac.Upserted, e)
			} else {
				ac.Removed = append(ac.Removed, id)
			}
		}
		out.Apps = append(out.Apps, ac)
	}
	slices.SortStableFunc(out.Apps, func(a, b AppChange) int {
		switch {
		case a.Revision < b.Revision:
			return -1
		case a.Revision > b.Revision:
			return 1
		}
		return 0
	})
	return out, nil
}
