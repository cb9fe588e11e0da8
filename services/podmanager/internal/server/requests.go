package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/utils/clock"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// maxCachedResults bounds the per-pod results the cache holds in all, so
// that memory stays small (about 60 bytes a result) whatever the batch sizes.
const maxCachedResults = 200_000

// requestCache remembers the responses of recent CreateExecutorPods calls by
// request id, so that a retry answers from memory instead of calling the API
// server again, and a retry that arrives while the first call is still
// running waits for that call's answer. It is bounded in entries and in
// time; an entry whose call failed as a whole is forgotten at once, so a
// retry runs again.
type requestCache struct {
	size  int
	ttl   time.Duration
	clock clock.PassiveClock

	mu      sync.Mutex
	entries map[string]*requestEntry
	lru     *list.List // of *requestEntry, least recently stored first
	results int        // results held by the entries in lru
}

type requestEntry struct {
	key         string
	fingerprint [sha256.Size]byte
	done        chan struct{} // closed when resp or err is set
	resp        *sparkpodsv1.CreateExecutorPodsResponse
	err         error
	stored      time.Time
	elem        *list.Element
}

func newRequestCache(size int, ttl time.Duration, clk clock.PassiveClock) *requestCache {
	return &requestCache{size: size, ttl: ttl, clock: clk, entries: map[string]*requestEntry{}, lru: list.New()}
}

// fingerprint identifies a request's content.
func fingerprint(req proto.Message) ([sha256.Size]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// do returns the remembered response for key, waits for a call in flight
// under key, or runs call and remembers its response. replayed reports an
// answer that did not come from running call.
func (c *requestCache) do(ctx context.Context, key string, fp [sha256.Size]byte,
	call func() (*sparkpodsv1.CreateExecutorPodsResponse, error),
) (resp *sparkpodsv1.CreateExecutorPodsResponse, replayed bool, err error) {
	for {
		c.mu.Lock()
		e, ok := c.entries[key]
		if ok && e.resp != nil && c.clock.Since(e.stored) > c.ttl {
			c.removeLocked(e)
			ok = false
		}
		if !ok {
			e = &requestEntry{key: key, fingerprint: fp, done: make(chan struct{})}
			c.entries[key] = e
			c.mu.Unlock()
			return c.lead(e, call)
		}
		c.mu.Unlock()
		if e.fingerprint != fp {
			return nil, false, errRequestIDReused
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if e.err == nil {
			return e.resp, true, nil
		}
		// The call we waited for failed as a whole (perhaps only its caller
		// gave up); run it again for this caller.
	}
}

func (c *requestCache) lead(e *requestEntry, call func() (*sparkpodsv1.CreateExecutorPodsResponse, error)) (*sparkpodsv1.CreateExecutorPodsResponse, bool, error) {
	resp, err := call()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.resp, e.err = resp, err
	close(e.done)
	if err != nil {
		c.removeLocked(e)
		return nil, false, err
	}
	e.stored = c.clock.Now()
	e.elem = c.lru.PushBack(e)
	c.results += len(resp.GetResults())
	for c.lru.Len() > c.size || (c.results > maxCachedResults && c.lru.Len() > 1) {
		c.removeLocked(c.lru.Front().Value.(*requestEntry))
	}
	return resp, false, nil
}

func (c *requestCache) removeLocked(e *requestEntry) {
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	if e.elem != nil {
		c.lru.Remove(e.elem)
		e.elem = nil
		c.results -= len(e.resp.GetResults())
	}
}
