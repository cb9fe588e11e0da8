package snapshotmodel

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"

	"k8s.io/utils/clock"
)

// DefaultHistoryLimit is how many changes a Store keeps for readers resuming
// from a revision when StoreConfig.HistoryLimit is zero. A change costs about
// 80 bytes whatever the executors hold.
const DefaultHistoryLimit = 16384

// StoreConfig configures a Store.
type StoreConfig struct {
	// Clock stamps full replacements (Spark's fullSnapshotTs); nil means the
	// real clock.
	Clock clock.PassiveClock
	// HistoryLimit is how many changes are kept for ChangesSince; zero means
	// DefaultHistoryLimit.
	HistoryLimit int
	// Epoch names this store's revision sequence; empty picks a random one.
	// A restarted service must use a new epoch.
	Epoch string
}

// Entry is one listed executor pod and the application it belongs to.
type Entry struct {
	App      AppKey
	Executor *Executor
}

// Store holds the executor snapshots of every application, with one revision
// counter for all of them and a bounded history of changes. It is safe for
// concurrent use; writes are serialized, so every reader sees the changes in
// the same order.
//
// A per-executor resourceVersion guard keeps state from going backwards: an
// update older than (or as old as) the record it would replace is dropped,
// so a relist or a list that races with the watch neither loses nor repeats
// a change.
type Store struct {
	clock clock.PassiveClock
	epoch string

	mu        sync.RWMutex
	head      int64
	apps      map[AppKey]*appState
	executors int
	history   history
	// changed is closed and replaced whenever head moves.
	changed chan struct{}
	// listedAt is the resourceVersion of the newest full list applied per
	// scope (a namespace, or "" for all namespaces). An event about an
	// executor the store does not hold, at or below it, is older than a list
	// that already showed the pod gone.
	listedAt map[string]uint64
	// dropped counts updates the resourceVersion guard refused.
	dropped uint64
}

// NewStore returns an empty store at revision 0.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.HistoryLimit < 0 {
		return nil, errors.New("snapshotmodel: HistoryLimit must not be negative")
	}
	if cfg.HistoryLimit == 0 {
		cfg.HistoryLimit = DefaultHistoryLimit
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Epoch == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		cfg.Epoch = hex.EncodeToString(b[:])
	}
	return &Store{
		clock:    cfg.Clock,
		epoch:    cfg.Epoch,
		apps:     make(map[AppKey]*appState),
		history:  newHistory(cfg.HistoryLimit),
		changed:  make(chan struct{}),
		listedAt: make(map[string]uint64),
	}, nil
}

// Epoch names the store's revision sequence.
func (s *Store) Epoch() string { return s.epoch }

// Update applies one pod seen by the watch: Spark's withUpdate. The executor
// is added or replaced, never removed; a deleted pod maps to StateDeleted
// through its deletion timestamp. It reports whether the store changed: an
// update no newer than what the store holds is dropped.
func (s *Store) Update(key AppKey, e *Executor) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[key]
	var old *Executor
	if app != nil {
		old = app.executors[e.ID]
	}
	if !s.newer(key.Namespace, old, e) {
		s.dropped++
		return false
	}
	if app == nil {
		app = newAppState(key)
		s.apps[key] = app
	}
	if app.put(e) {
		s.executors++
	}
	s.commit(app, change{ids: []int64{e.ID}})
	s.broadcast()
	return true
}

// newer reports whether e may replace old (nil when the store holds no
// record for its id).
func (s *Store) newer(namespace string, old, e *Executor) bool {
	if e.ResourceVersion == 0 {
		return true // cannot order; take it, as Spark does
	}
	if old != nil {
		return old.ResourceVersion == 0 || e.ResourceVersion > old.ResourceVersion
	}
	return e.ResourceVersion > max(s.listedAt[""], s.listedAt[namespace])
}

// Relist applies a list the watch made when it started over (at startup, or
// after its resourceVersion expired): the full set of executor pods in scope
// (a namespace, or "" for all) at resourceVersion rv. Listed executors are
// updated as by Update. An executor whose pod is no longer listed (deleted,
// or labelled inactive), and that the store has seen no newer than rv, left
// while nobody watched: it is marked StateDeleted, never removed, because
// this is still the watch's incremental half. It returns the number of
// applications that changed.
func (s *Store) Relist(scope string, entries []Entry, rv uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	touched := map[*appState][]int64{}
	listed := make(map[podKey]struct{}, len(entries))
	for _, en := range entries {
		listed[podKey{en.App.Namespace, en.Executor.PodName}] = struct{}{}
		app := s.apps[en.App]
		var old *Executor
		if app != nil {
			old = app.executors[en.Executor.ID]
		}
		if !s.newer(en.App.Namespace, old, en.Executor) {
			continue
		}
		if app == nil {
			app = newAppState(en.App)
			s.apps[en.App] = app
		}
		if app.put(en.Executor) {
			s.executors++
		}
		touched[app] = append(touched[app], en.Executor.ID)
	}
	for key, app := range s.apps {
		if !inScope(scope, key) {
			continue
		}
		for id, e := range app.executors {
			if _, ok := listed[podKey{key.Namespace, e.PodName}]; ok {
				continue
			}
			if e.State == StateDeleted || (rv != 0 && e.ResourceVersion > rv) {
				continue
			}
			app.put(e.withState(StateDeleted, max(rv, e.ResourceVersion)))
			touched[app] = append(touched[app], id)
		}
	}
	s.listedAt[scope] = max(s.listedAt[scope], rv)
	for _, app := range sortedApps(touched) {
		s.commit(app, change{ids: dedupe(touched[app])})
	}
	s.broadcast()
	return len(touched)
}

// Replace applies a periodic full list: Spark's replaceSnapshot for every
// application in scope (a namespace, or "" for all). Each application's
// executors become exactly the listed ones, its full snapshot time becomes
// the store clock's now, and it takes a new revision even when nothing else
// changed, because the lifecycle service acts on each new full snapshot.
//
// Two departures make a cluster-wide list safe to apply while the watch runs:
// a listed executor older than the store's record keeps the record, and an
// executor the store saw after rv stays although the list (made before it
// existed) lacks it. An application left without executors is dropped.
func (s *Store) Replace(scope string, entries []Entry, rv uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UnixNano()
	byApp := map[AppKey][]*Executor{}
	for _, en := range entries {
		byApp[en.App] = append(byApp[en.App], en.Executor)
	}
	for key := range s.apps {
		if inScope(scope, key) {
			if _, ok := byApp[key]; !ok {
				byApp[key] = nil
			}
		}
	}
	keys := make([]AppKey, 0, len(byApp))
	for key := range byApp {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, compareKeys)

	for _, key := range keys {
		app := s.apps[key]
		if app == nil {
			app = newAppState(key)
			s.apps[key] = app
		}
		next := make(map[int64]*Executor, len(byApp[key]))
		for _, e := range byApp[key] {
			next[e.ID] = e // a later duplicate id wins, as in Spark
		}
		for id, e := range next {
			if old := app.executors[id]; old != nil && old.ResourceVersion != 0 && e.ResourceVersion != 0 && old.ResourceVersion >= e.ResourceVersion {
				next[id] = old
			}
		}
		var ids []int64
		for id, old := range app.executors {
			if _, ok := next[id]; ok {
				continue
			}
			if rv != 0 && old.ResourceVersion > rv {
				next[id] = old // appeared after the list was made
				continue
			}
			ids = append(ids, id)
		}
		for id, e := range next {
			if app.executors[id] != e {
				ids = append(ids, id)
			}
		}
		s.executors += len(next) - len(app.executors)
		app.executors = next
		app.counts = Counts{}
		for _, e := range next {
			app.counts[e.State]++
		}
		app.fullTime = now
		slices.Sort(ids)
		c := change{ids: ids, full: true}
		if len(next) == 0 {
			delete(s.apps, key)
			c.appRemoved = true
		}
		s.commit(app, c)
	}
	s.listedAt[scope] = max(s.listedAt[scope], rv)
	s.broadcast()
}

// commit gives app the next revision and records the change. The caller holds
// the write lock and calls broadcast once its whole operation is done.
func (s *Store) commit(app *appState, c change) {
	s.head++
	app.rev = s.head
	app.view.Store(nil)
	c.rev = s.head
	c.app = app.key
	s.history.push(c)
}

func (s *Store) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Snapshot returns one application's current snapshot; an application the
// store does not hold gets an empty snapshot at revision 0.
func (s *Store) Snapshot(key AppKey) *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if app := s.apps[key]; app != nil {
		return app.snapshot()
	}
	return &Snapshot{App: key}
}

// Snapshots returns the current snapshots of the applications filter selects,
// ordered by key, all at revision head, and a channel closed at the first
// change after head.
func (s *Store) Snapshots(filter Filter) (head int64, snaps []*Snapshot, next <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for key, app := range s.apps {
		if filter == nil || filter(key) {
			snaps = append(snaps, app.snapshot())
		}
	}
	slices.SortFunc(snaps, func(a, b *Snapshot) int { return compareKeys(a.App, b.App) })
	return s.head, snaps, s.changed
}

// Applications returns up to limit application summaries in key order,
// starting after the key after (the zero key starts at the beginning), in
// namespace only unless it is empty. more reports whether any follow.
func (s *Store) Applications(namespace string, after AppKey, limit int) (apps []Summary, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []AppKey
	for key := range s.apps {
		if (namespace == "" || key.Namespace == namespace) && (after == AppKey{} || after.Less(key)) {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, compareKeys)
	if len(keys) > limit {
		keys, more = keys[:limit], true
	}
	apps = make([]Summary, len(keys))
	for i, key := range keys {
		apps[i] = s.apps[key].summary()
	}
	return apps, more
}

// Stats describe the store's size.
type Stats struct {
	// Revision is the newest revision; OldestRevision the oldest change the
	// history still holds (Revision+1 when it holds none).
	Revision, OldestRevision int64
	Applications, Executors  int
	// Dropped counts updates refused because they were not newer than the
	// record they would replace.
	Dropped uint64
}

// Stats returns the store's current size.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{
		Revision:       s.head,
		OldestRevision: s.head - int64(s.history.n) + 1,
		Applications:   len(s.apps),
		Executors:      s.executors,
		Dropped:        s.dropped,
	}
}

type podKey struct{ namespace, name string }

func inScope(scope string, key AppKey) bool { return scope == "" || key.Namespace == scope }

func compareKeys(a, b AppKey) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

func sortedApps(m map[*appState][]int64) []*appState {
	apps := make([]*appState, 0, len(m))
	for app := range m {
		apps = append(apps, app)
	}
	slices.SortFunc(apps, func(a, b *appState) int { return compareKeys(a.key, b.key) })
	return apps
}

func dedupe(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}
