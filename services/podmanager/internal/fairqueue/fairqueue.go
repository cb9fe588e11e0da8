// Package fairqueue shares one write budget among Spark applications: every
// application has its own FIFO queue of API calls, and a fixed number of
// workers serve the queues round-robin, one call per application per turn,
// each call first taking a token from a shared rate limiter. An application
// asking for 5,000 pods therefore cannot starve one asking for 10: after
// the 10-pod request is queued, its calls are interleaved one for one with
// the big one's, whatever arrived first.
package fairqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// ErrStopped is the error of work that was queued when the queue stopped, or
// submitted after it stopped.
var ErrStopped = errors.New("fairqueue: stopped")

// Limiter hands out tokens for API calls; *rate.Limiter is one.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Observer receives what the queue does, for metrics. Any field may be nil.
type Observer struct {
	// LimiterWait is called with the time each call waited for a token.
	LimiterWait func(time.Duration)
	// Queued is called with the number of calls waiting for a worker
	// whenever it changes.
	Queued func(calls, applications int)
}

// Config configures a Queue.
type Config struct {
	// Workers is how many calls run at once. Required.
	Workers int
	// Limiter rate-limits the calls; nil means no limit.
	Limiter Limiter
	// Observer receives the queue's measurements.
	Observer Observer
}

// Queue runs calls for many keys (applications) fairly. Create it with New,
// run its workers with Run, submit work with Do.
type Queue struct {
	workers  int
	limiter  Limiter
	observer Observer

	mu      sync.Mutex
	cond    *sync.Cond
	queues  map[string][]*task
	ring    []string // keys with queued work, in round-robin order
	next    int      // index in ring of the key served next
	queued  int
	stopped bool
}

// task is one call of a batch.
type task struct {
	b     *batch
	index int
}

// batch is the calls of one Do.
type batch struct {
	ctx       context.Context
	key       string
	fn        func(ctx context.Context, i int)
	remaining int // calls neither finished nor dropped; guarded by Queue.mu
	done      chan struct{}
	err       error // why calls were dropped; guarded by Queue.mu
}

// New validates cfg and returns a queue whose workers are not yet running.
func New(cfg Config) (*Queue, error) {
	if cfg.Workers <= 0 {
		return nil, fmt.Errorf("fairqueue: Workers must be positive, got %d", cfg.Workers)
	}
	q := &Queue{workers: cfg.Workers, limiter: cfg.Limiter, observer: cfg.Observer, queues: map[string][]*task{}}
	q.cond = sync.NewCond(&q.mu)
	return q, nil
}

// Run serves the queues until ctx ends, then drops the calls still queued
// (their Do returns ErrStopped) and returns after the running calls finish.
// Stop the users of the queue (the gRPC server) before ending ctx, so that
// accepted requests are served.
func (q *Queue) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.stopped = true
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	var g errgroup.Group
	for range q.workers {
		g.Go(func() error {
			for {
				t, ok := q.take()
				if !ok {
					return nil
				}
				q.run(t)
			}
		})
	}
	err := g.Wait()
	q.mu.Lock()
	for _, key := range q.ring {
		for _, t := range q.queues[key] {
			q.dropLocked(t, ErrStopped)
		}
		delete(q.queues, key)
	}
	q.ring, q.queued = nil, 0
	q.mu.Unlock()
	return err
}

// Do runs fn(ctx, i) for every i in [0, n) on the queue's workers, taking
// turns with the other keys' work, and returns once no call is running or
// queued. A call that cannot start, because ctx ended, its token would come
// after ctx's deadline or the queue stopped, is not made; Do then returns
// the reason, and the caller treats the calls fn never saw as failed with it.
// fn must return promptly once its ctx ends.
func (q *Queue) Do(ctx context.Context, key string, n int, fn func(ctx context.Context, i int)) error {
	if n == 0 {
		return nil
	}
	b := &batch{ctx: ctx, key: key, fn: fn, remaining: n, done: make(chan struct{})}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return ErrStopped
	}
	if len(q.queues[key]) == 0 {
		// A key without queued work joins the round just before the key
		// served next: a small application's first call is the next one
		// made, however much the others have queued.
		q.ring = append(q.ring, "")
		copy(q.ring[q.next+1:], q.ring[q.next:])
		q.ring[q.next] = key
	}
	for i := range n {
		q.queues[key] = append(q.queues[key], &task{b: b, index: i})
	}
	q.queued += n
	q.observeLocked()
	q.cond.Broadcast()
	q.mu.Unlock()

	select {
	case <-b.done:
	case <-ctx.Done():
		q.cancel(b, ctx.Err())
		<-b.done
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return b.err
}

// take blocks until a call is due, and returns it; false once stopped.
func (q *Queue) take() (*task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ring) == 0 && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped {
		return nil, false
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	key := q.ring[q.next]
	queue := q.queues[key]
	t := queue[0]
	queue[0] = nil
	if queue = queue[1:]; len(queue) == 0 {
		delete(q.queues, key)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.queues[key] = queue
		q.next++
	}
	q.queued--
	q.observeLocked()
	return t, true
}

// run waits for a token and makes the call.
func (q *Queue) run(t *task) {
	ctx := t.b.ctx
	if q.limiter != nil {
		began := time.Now()
		err := q.limiter.Wait(ctx)
		if q.observer.LimiterWait != nil {
			q.observer.LimiterWait(time.Since(began))
		}
		if err != nil {
			if ctx.Err() == nil {
				// x/time/rate refuses a wait that would end after the
				// deadline, before the deadline has passed.
				err = context.DeadlineExceeded
			} else {
				err = ctx.Err()
			}
			q.mu.Lock()
			q.dropLocked(t, err)
			q.mu.Unlock()
			return
		}
	}
	t.b.fn(ctx, t.index)
	q.mu.Lock()
	q.finishLocked(t.b)
	q.mu.Unlock()
}

// cancel drops the batch's calls that have not started.
func (q *Queue) cancel(b *batch, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	queue := q.queues[b.key]
	kept := queue[:0]
	for _, t := range queue {
		if t.b == b {
			q.dropLocked(t, err)
			q.queued--
			continue
		}
		kept = append(kept, t)
	}
	for i := len(kept); i < len(queue); i++ {
		queue[i] = nil
	}
	if len(kept) > 0 {
		q.queues[b.key] = kept
	} else if len(queue) > 0 {
		delete(q.queues, b.key)
		for i, k := range q.ring {
			if k == b.key {
				q.ring = append(q.ring[:i], q.ring[i+1:]...)
				if q.next > i {
					q.next--
				}
				break
			}
		}
	}
	q.observeLocked()
}

func (q *Queue) dropLocked(t *task, err error) {
	if t.b.err == nil {
		t.b.err = err
	}
	q.finishLocked(t.b)
}

func (q *Queue) finishLocked(b *batch) {
	b.remaining--
	if b.remaining == 0 {
		close(b.done)
	}
}

func (q *Queue) observeLocked() {
	if q.observer.Queued != nil {
		q.observer.Queued(q.queued, len(q.ring))
	}
}
