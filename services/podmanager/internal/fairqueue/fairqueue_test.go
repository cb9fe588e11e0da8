package fairqueue

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// recorder notes the order in which calls run.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) note(key string) {
	r.mu.Lock()
	r.order = append(r.order, key)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

func startQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return q
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (q *Queue) queuedCalls(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queues[key])
}

// TestSmallApplicationIsNotStarved queues 5,000 calls of a big application,
// then 10 of a small one, on one worker: the small one's calls must be
// interleaved one for one with the big one's, not wait behind them.
func TestSmallApplicationIsNotStarved(t *testing.T) {
	q := startQueue(t, Config{Workers: 1})
	var rec recorder
	gate := make(chan struct{})
	var first sync.Once
	bigDone := make(chan error, 1)
	go func() {
		bigDone <- q.Do(context.Background(), "big", 5000, func(context.Context, int) {
			first.Do(func() { <-gate }) // hold the worker until the small request is queued
			rec.note("big")
		})
	}()
	waitFor(t, "the big application's first call to start", func() bool { return q.queuedCalls("big") == 4999 })

	smallDone := make(chan error, 1)
	go func() {
		smallDone <- q.Do(context.Background(), "small", 10, func(context.Context, int) { rec.note("small") })
	}()
	waitFor(t, "the small application's calls to be queued", func() bool { return q.queuedCalls("small") == 10 })
	close(gate)

	if err := <-smallDone; err != nil {
		t.Fatalf("small Do: %v", err)
	}
	order := rec.snapshot()
	// The big call holding the worker ran first; after it, the two
	// applications alternate, so the small one's 10 calls are done within
	// the first 21 calls.
	smallSeen, lastSmall := 0, -1
	for i, k := range order {
		if k == "small" {
			smallSeen++
			lastSmall = i
		}
	}
	if smallSeen != 10 || lastSmall > 21 {
		t.Fatalf("the small application's 10th call was call %d of %v; want it within the first 21 (round-robin)", lastSmall+1, order[:min(len(order), 30)])
	}
	if err := <-bigDone; err != nil {
		t.Fatalf("big Do: %v", err)
	}
	order = rec.snapshot()
	if len(order) != 5010 {
		t.Fatalf("%d calls ran, want 5010", len(order))
	}
	for i := 1; i < 20; i += 2 {
		if order[i] != "small" || order[i+1] != "big" {
			t.Fatalf("calls %d and %d are %s and %s; want small then big (strict alternation): %v", i+1, i+2, order[i], order[i+1], order[:22])
		}
	}
}

// TestThreeApplicationsShareEvenly checks round-robin over more keys with
// several workers: while all three have work, none gets more than its share.
func TestThreeApplicationsShareEvenly(t *testing.T) {
	q := startQueue(t, Config{Workers: 4})
	var rec recorder
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var holding atomic.Int32
	for _, key := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = q.Do(context.Background(), key, 300, func(context.Context, int) {
				if holding.Add(1) <= 4 {
					<-gate
				}
				rec.note(key)
			})
		}()
	}
	waitFor(t, "all calls queued", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.queued == 900-4
	})
	close(gate)
	wg.Wait()
	order := rec.snapshot()
	counts := map[string]int{}
	for _, k := range order[:600] {
		counts[k]++
	}
	for k, n := range counts {
		if n < 190 || n > 210 {
			t.Fatalf("in the first 600 calls application %s had %d; want about 200 each: %v", k, n, counts)
		}
	}
}

// countingLimiter lets n tokens through, then blocks until ctx ends.
type countingLimiter struct {
	tokens atomic.Int64
	waits  atomic.Int64
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.waits.Add(1)
	if l.tokens.Add(-1) >= 0 {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestEveryCallTakesAToken(t *testing.T) {
	lim := &countingLimiter{}
	lim.tokens.Store(50)
	var waited atomic.Int64
	q := startQueue(t, Config{Workers: 8, Limiter: lim, Observer: Observer{LimiterWait: func(time.Duration) { waited.Add(1) }}})
	var ran atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Do(ctx, "app", 100, func(context.Context, int) { ran.Add(1) }) }()
	waitFor(t, "the tokens to run out", func() bool { return ran.Load() == 50 && lim.waits.Load() >= 58 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do after cancel = %v, want context.Canceled", err)
	}
	if ran.Load() != 50 {
		t.Fatalf("%d calls ran with 50 tokens", ran.Load())
	}
	if q.queuedCalls("app") != 0 {
		t.Fatal("cancelled calls are still queued")
	}
	if waited.Load() == 0 {
		t.Fatal("the limiter wait was not observed")
	}
}

func TestStopDropsQueuedWork(t *testing.T) {
	q, err := New(Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- q.Run(ctx) }()
	gate := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- q.Do(context.Background(), "app", 10, func(context.Context, int) { <-gate })
	}()
	waitFor(t, "the first call to start", func() bool { return q.queuedCalls("app") == 9 })
	cancel()
	waitFor(t, "the queue to stop", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.stopped
	})
	close(gate)
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Fatalf("Do = %v, want ErrStopped", err)
	}
	if err := q.Do(context.Background(), "app", 1, func(context.Context, int) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Do after stop = %v, want ErrStopped", err)
	}
}
