package server

import (
	"context"
	"errors"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func TestRequestCacheBoundsAndExpiry(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	c := newRequestCache(2, time.Minute, clk)
	calls := 0
	call := func() (*sparkpodsv1.CreateExecutorPodsResponse, error) {
		calls++
		return &sparkpodsv1.CreateExecutorPodsResponse{Results: []*sparkpodsv1.ExecutorPodResult{{ExecutorId: int64(calls)}}}, nil
	}
	ctx := context.Background()
	fp := [32]byte{1}
	for _, key := range []string{"a", "b", "a", "c", "a"} {
		if _, _, err := c.do(ctx, key, fp, call); err != nil {
			t.Fatal(err)
		}
	}
	// a and b are run; a is replayed; c evicts a (the oldest); a runs again.
	if calls != 4 {
		t.Fatalf("%d calls, want 4 (size 2 evicts the oldest)", calls)
	}
	clk.SetTime(clk.Now().Add(2 * time.Minute))
	if _, replayed, _ := c.do(ctx, "a", fp, call); replayed || calls != 5 {
		t.Fatalf("an expired entry was replayed (calls %d)", calls)
	}
	failing := func() (*sparkpodsv1.CreateExecutorPodsResponse, error) { calls++; return nil, errors.New("boom") }
	if _, _, err := c.do(ctx, "f", fp, failing); err == nil {
		t.Fatal("want the failure")
	}
	if _, replayed, _ := c.do(ctx, "f", fp, call); replayed {
		t.Fatal("a failed call was remembered")
	}
	if _, _, err := c.do(ctx, "f", [32]byte{2}, call); !errors.Is(err, errRequestIDReused) {
		t.Fatalf("another request under the same id: %v", err)
	}
}
