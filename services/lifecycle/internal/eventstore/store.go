package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// Defaults of Config.
const (
	DefaultMaxSegmentBytes   = 256 << 10
	DefaultMaxUnacknowledged = 10000
	// hardMaxSegmentBytes keeps a segment well below the API server's 1 MiB
	// object limit whatever the configuration says.
	hardMaxSegmentBytes = 768 << 10
	// writeAttempts bounds the reload-and-retry loop after conflicts.
	writeAttempts = 3
)

// ErrConflict is returned when the application's segments kept changing
// under the store (another writer) for writeAttempts attempts.
var ErrConflict = errors.New("the application's event segments were changed by another writer")

// SequenceError is an acknowledgement beyond the last recorded sequence.
type SequenceError struct {
	Requested, Last int64
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("sequence %d is beyond the last recorded sequence %d", e.Requested, e.Last)
}

// AppKey names an application.
type AppKey struct {
	Namespace string
	AppID     string
}

func (k AppKey) String() string { return k.Namespace + "/" + k.AppID }

// Config configures a Store. ConfigMaps is required.
type Config struct {
	ConfigMaps ConfigMaps
	// Clock stamps events with the time they are recorded; nil is the real
	// clock.
	Clock clock.PassiveClock
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxSegmentBytes bounds the events of one segment; 0 means
	// DefaultMaxSegmentBytes.
	MaxSegmentBytes int
	// MaxUnacknowledged bounds the unacknowledged events kept per
	// application; 0 means DefaultMaxUnacknowledged. See the package doc for
	// what happens past it.
	MaxUnacknowledged int
	// Namespaces are those Load reads, one list each; empty reads all
	// namespaces with one list.
	Namespaces []string
}

// Store is the durable event log of every application. It is safe for
// concurrent use. Writes to one application are serialised; reads never wait
// for a write to the API server.
type Store struct {
	conf    Config
	metrics *metrics

	mu   sync.Mutex
	apps map[AppKey]*appLog
	// created is closed and replaced whenever an application's log is
	// created, to wake readers of applications with no log yet.
	created chan struct{}
}

// appLog is one application's log.
type appLog struct {
	// write serialises the writers of the application.
	write sync.Mutex
	// uncertain, guarded by write, says the last Append failed: its write
	// may have landed all the same (the API server applied it and the reply
	// was lost), so the next Append reads the log back first and looks for
	// its events after uncertainAfter, the last sequence known before it.
	uncertain      bool
	uncertainAfter int64

	// mu guards the fields below; it is held only briefly.
	mu       sync.RWMutex
	segments []*segment
	last     int64
	acked    int64
	// changed is closed and replaced whenever events are recorded.
	changed chan struct{}
}

// New returns an empty Store; call Load before serving.
func New(conf Config) (*Store, error) {
	if conf.ConfigMaps == nil {
		return nil, errors.New("eventstore: ConfigMaps is required")
	}
	if conf.Clock == nil {
		conf.Clock = clock.RealClock{}
	}
	if conf.Logger == nil {
		conf.Logger = slog.New(slog.DiscardHandler)
	}
	if conf.MaxSegmentBytes == 0 {
		conf.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if conf.MaxSegmentBytes < 1<<10 || conf.MaxSegmentBytes > hardMaxSegmentBytes {
		return nil, fmt.Errorf("eventstore: MaxSegmentBytes %d outside [1 KiB, %d KiB]", conf.MaxSegmentBytes, hardMaxSegmentBytes>>10)
	}
	if conf.MaxUnacknowledged == 0 {
		conf.MaxUnacknowledged = DefaultMaxUnacknowledged
	}
	if conf.MaxUnacknowledged < 1 {
		return nil, fmt.Errorf("eventstore: MaxUnacknowledged %d must be positive", conf.MaxUnacknowledged)
	}
	m, err := newMetrics(conf.Registerer)
	if err != nil {
		return nil, err
	}
	return &Store{conf: conf, metrics: m, apps: make(map[AppKey]*appLog), created: make(chan struct{})}, nil
}

func (s *Store) app(key AppKey) *appLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[key]
	if !ok {
		a = &appLog{changed: make(chan struct{})}
		s.apps[key] = a
		close(s.created)
		s.created = make(chan struct{})
	}
	return a
}

func (s *Store) lookup(key AppKey) (*appLog, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[key]
	return a, ok
}

// Load reads every application's segments in the configured namespaces
// from the API server, replacing what the store holds. Call it once, before
// anything else.
func (s *Store) Load(ctx context.Context) error {
	namespaces := s.conf.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var cms []corev1.ConfigMap
	for _, ns := range namespaces {
		list, err := s.conf.ConfigMaps.List(ctx, ns, Selector)
		if err != nil {
			return fmt.Errorf("list event segments: %w", err)
		}
		cms = append(cms, list...)
	}
	byApp := make(map[AppKey][]*segment)
	for i := range cms {
		key, seg, err := fromConfigMap(&cms[i])
		if err != nil {
			s.metrics.corrupt.Inc()
			s.conf.Logger.ErrorContext(ctx, "skipping unreadable event segment", "namespace", cms[i].Namespace, "name", cms[i].Name, "err", err)
			continue
		}
		byApp[key] = append(byApp[key], seg)
	}
	for key, segs := range byApp {
		a := s.app(key)
		a.mu.Lock()
		a.setSegments(segs)
		a.mu.Unlock()
		s.conf.Logger.InfoContext(ctx, "restored executor events", "app", key, "segments", len(segs), "lastSequence", a.last, "acknowledged", a.acked)
	}
	return nil
}

// setSegments installs segs (any order), deriving the sequences. a.mu must
// be held.
func (a *appLog) setSegments(segs []*segment) {
	slices.SortFunc(segs, func(x, y *segment) int { return cmp.Compare(x.n, y.n) })
	a.segments = segs
	a.last, a.acked = 0, 0
	for _, seg := range segs {
		a.last = max(a.last, seg.last)
		a.acked = max(a.acked, seg.acked)
	}
}

// reload re-reads one application after a conflict.
func (s *Store) reload(ctx context.Context, key AppKey, a *appLog) error {
	cms, err := s.conf.ConfigMaps.List(ctx, key.Namespace, AppSelector(key.AppID))
	if err != nil {
		return fmt.Errorf("reload event segments of %s: %w", key, err)
	}
	var segs []*segment
	for i := range cms {
		k, seg, err := fromConfigMap(&cms[i])
		if err != nil || k != key {
			continue
		}
		segs = append(segs, seg)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setSegments(segs)
	return nil
}

// State returns the reconcile state recorded with the application's latest
// events, and whether there is one.
func (s *Store) State(key AppKey) (reconcile.State, bool) {
	a, ok := s.lookup(key)
	if !ok {
		return reconcile.State{}, false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.segments) == 0 {
		return reconcile.State{}, false
	}
	return a.segments[len(a.segments)-1].state, true
}

// Page is what Read returns.
type Page struct {
	// Events are recorded, unacknowledged events after the requested
	// sequence, in sequence order. They are shared: do not modify them.
	Events []*sparkpodsv1.ExecutorEvent
	// Last is the application's last recorded sequence (0 if none).
	Last int64
	// Acknowledged is the application's acknowledged sequence.
	Acknowledged int64
	// Changed is closed when events are recorded after this read.
	Changed <-chan struct{}
}

// Read returns up to limit (all if limit <= 0) events after sequence after.
// Reading an application the store has no log for creates nothing.
func (s *Store) Read(key AppKey, after int64, limit int) Page {
	s.mu.Lock()
	a, ok := s.apps[key]
	created := s.created
	s.mu.Unlock()
	if !ok {
		return Page{Changed: created}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	p := Page{Last: a.last, Acknowledged: a.acked, Changed: a.changed}
	from := max(after, a.acked)
	for _, seg := range a.segments {
		if seg.last <= from {
			continue
		}
		for _, ev := range seg.events {
			if ev.GetSequence() <= from {
				continue
			}
			if limit > 0 && len(p.Events) >= limit {
				return p
			}
			p.Events = append(p.Events, ev)
		}
	}
	return p
}

// Append records events (in order) and state for the application, giving
// each event the next sequence number and the current time, and returns the
// recorded events. The write is conditional on what the store read; on a
// conflict the application is reloaded and the write tried again. When
// Append fails, the events may still have been recorded, wholly or in part:
// the API server may have applied a write whose reply was lost, or a batch
// too large for one segment may have been cut short. The caller retries
// with the same events, and the retry records each only once: after a
// failed write, Append first reads the log back, and after any reload it
// returns the events the log already holds beyond what it knew instead of
// recording them again (see alreadyRecorded). owner, if not nil, becomes
// the owner of new segments.
func (s *Store) Append(ctx context.Context, key AppKey, events []*sparkpodsv1.ExecutorEvent, state reconcile.State, owner *metav1.OwnerReference) ([]*sparkpodsv1.ExecutorEvent, error) {
	a := s.app(key)
	a.write.Lock()
	defer a.write.Unlock()
	a.mu.RLock()
	known := a.last
	a.mu.RUnlock()
	var found []*sparkpodsv1.ExecutorEvent
	if a.uncertain {
		// A failed batch may have installed the part it wrote: look for the
		// events from before it.
		known = min(known, a.uncertainAfter)
		if err := s.reload(ctx, key, a); err != nil {
			return nil, err
		}
		a.uncertain = false
		found, events = a.alreadyRecorded(known, events)
	}
	var err error
	for range writeAttempts {
		var recorded []*sparkpodsv1.ExecutorEvent
		recorded, err = s.tryAppend(ctx, key, a, events, state, owner)
		if !isConflict(err) {
			if err != nil {
				a.uncertain, a.uncertainAfter = true, known
				s.metrics.writes.WithLabelValues("append", "error").Inc()
				return nil, err
			}
			s.metrics.writes.WithLabelValues("append", "ok").Inc()
			s.trim(ctx, key, a)
			return append(found, recorded...), nil
		}
		s.metrics.writes.WithLabelValues("append", "conflict").Inc()
		s.conf.Logger.WarnContext(ctx, "event segment conflict; reloading", "app", key, "err", err)
		if err := s.reload(ctx, key, a); err != nil {
			return nil, err
		}
		var more []*sparkpodsv1.ExecutorEvent
		more, events = a.alreadyRecorded(known, events)
		found = append(found, more...)
	}
	a.uncertain, a.uncertainAfter = true, known
	return nil, fmt.Errorf("record events of %s: %w (last: %w)", key, ErrConflict, err)
}

// eventIdentity is what makes two events report the same thing: an
// executor (or the application, for FAILURE_LIMIT_EXCEEDED) is reported
// once per event type and pod.
type eventIdentity struct {
	typ      sparkpodsv1.ExecutorEventType
	executor int64
	pod      string
}

func identityOf(ev *sparkpodsv1.ExecutorEvent) eventIdentity {
	return eventIdentity{ev.GetType(), ev.GetExecutorId(), ev.GetPodName()}
}

// alreadyRecorded splits pending into the events the log already holds
// with a sequence after known (returned as recorded there) and the rest.
// Events past known that this writer did not see land are its own lost
// replies, or another replica's report of the same ends: either way they
// are recorded, and recording them again would deliver them twice.
func (a *appLog) alreadyRecorded(known int64, pending []*sparkpodsv1.ExecutorEvent) (found, rest []*sparkpodsv1.ExecutorEvent) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	landed := map[eventIdentity][]*sparkpodsv1.ExecutorEvent{}
	for _, seg := range a.segments {
		for _, ev := range seg.events {
			if ev.GetSequence() > known {
				id := identityOf(ev)
				landed[id] = append(landed[id], ev)
			}
		}
	}
	for _, ev := range pending {
		id := identityOf(ev)
		if same := landed[id]; len(same) > 0 {
			found, landed[id] = append(found, same[0]), same[1:]
			continue
		}
		rest = append(rest, ev)
	}
	return found, rest
}

func (s *Store) tryAppend(ctx context.Context, key AppKey, a *appLog, events []*sparkpodsv1.ExecutorEvent, state reconcile.State, owner *metav1.OwnerReference) ([]*sparkpodsv1.ExecutorEvent, error) {
	a.mu.RLock()
	segments, last, acked := slices.Clone(a.segments), a.last, a.acked
	a.mu.RUnlock()

	stateJSON, err := json.Marshal(state)
	if err != nil {
		return nil, fmt.Errorf("encode reconcile state: %w", err)
	}
	now := timestamppb.New(s.conf.Clock.Now())
	recorded := make([]*sparkpodsv1.ExecutorEvent, len(events))
	lines := make([][]byte, len(events))
	newBytes := 0
	for i, ev := range events {
		r := proto.CloneOf(ev)
		r.Sequence = last + int64(i) + 1
		r.Time = now
		if lines[i], err = encodeEvent(r); err != nil {
			return nil, err
		}
		recorded[i], newBytes = r, newBytes+len(lines[i])+1
	}
	newLast := last + int64(len(events))
	budget := s.conf.MaxSegmentBytes

	var tail *segment
	if len(segments) > 0 {
		tail = segments[len(segments)-1]
	}
	if tail != nil {
		kept := tail.without(acked)
		if kept.size()+newBytes+len(stateJSON) <= budget || len(events) == 0 {
			kept.events = append(kept.events, recorded...)
			kept.lines = append(kept.lines, lines...)
			kept.last, kept.acked, kept.state = newLast, acked, state
			if err := s.write(ctx, key, kept, owner, false); err != nil {
				return nil, err
			}
			a.install(append(segments[:len(segments)-1], kept), newLast, acked)
			return recorded, nil
		}
	}
	// New segments: as many as the events need. Only the last carries the
	// new state; an earlier one carries the state from before this batch, so
	// that a crash half-way reports the unwritten events again rather than
	// losing them.
	var prevState reconcile.State
	next := 1
	if tail != nil {
		prevState, next = tail.state, tail.n+1
	}
	start := 0
	for start < len(events) {
		seg := &segment{n: next, name: segmentName(key.AppID, next), acked: acked, state: prevState}
		size := 0
		end := start
		for end < len(events) && (end == start || size+len(lines[end])+1+len(stateJSON) <= budget) {
			size += len(lines[end]) + 1
			end++
		}
		seg.events, seg.lines = recorded[start:end:end], lines[start:end:end]
		seg.last = recorded[end-1].GetSequence()
		if end == len(events) {
			seg.state = state
		}
		if err := s.write(ctx, key, seg, owner, true); err != nil {
			if start > 0 {
				a.install(segments, recorded[start-1].GetSequence(), acked)
			}
			return nil, err
		}
		segments = append(segments, seg)
		start, next = end, next+1
	}
	if len(events) == 0 { // no tail yet and nothing to record: state only
		seg := &segment{n: next, name: segmentName(key.AppID, next), acked: acked, last: last, state: state}
		if err := s.write(ctx, key, seg, owner, true); err != nil {
			return nil, err
		}
		segments = append(segments, seg)
	}
	a.install(segments, newLast, acked)
	return recorded, nil
}

// without returns a copy of s without the events up to acked.
func (s *segment) without(acked int64) *segment {
	c := *s
	c.events, c.lines = nil, nil
	for i, ev := range s.events {
		if ev.GetSequence() > acked {
			c.events = append(c.events, ev)
			c.lines = append(c.lines, s.lines[i])
		}
	}
	return &c
}

// write creates or updates seg, and records its new resourceVersion.
func (s *Store) write(ctx context.Context, key AppKey, seg *segment, owner *metav1.OwnerReference, create bool) error {
	if create && owner != nil {
		seg.owners = []metav1.OwnerReference{*owner}
	}
	cm, err := seg.toConfigMap(key)
	if err != nil {
		return err
	}
	if create {
		cm.ResourceVersion = ""
		cm, err = s.conf.ConfigMaps.Create(ctx, cm)
	} else {
		cm, err = s.conf.ConfigMaps.Update(ctx, cm)
	}
	if err != nil {
		return fmt.Errorf("write event segment %s/%s: %w", key.Namespace, seg.name, err)
	}
	seg.resourceVersion = cm.ResourceVersion
	return nil
}

// install publishes a new view of the application and wakes its readers.
func (a *appLog) install(segments []*segment, last, acked int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.segments, a.last, a.acked = segments, last, acked
	close(a.changed)
	a.changed = make(chan struct{})
}

func isConflict(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

func resultOf(err error) string {
	if isConflict(err) {
		return "conflict"
	}
	return "error"
}
