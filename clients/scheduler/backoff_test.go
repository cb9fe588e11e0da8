package scheduler

import (
	"testing"
	"time"
)

func TestBackoffIsJitteredUnderACappedExponential(t *testing.T) {
	o, err := newOptions([]Option{WithBackoff(10*time.Millisecond, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(o, nil, nil)
	for _, tc := range []struct {
		failures int
		ceiling  time.Duration
	}{
		{0, 10 * time.Millisecond},
		{1, 20 * time.Millisecond},
		{3, 80 * time.Millisecond},
		{7, time.Second},
		{100, time.Second}, // no overflow
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := c.backoff(tc.failures)
			if d <= 0 || d > tc.ceiling {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", tc.failures, d, tc.ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Fatalf("backoff(%d) took only %d values in 200 draws: not jittered", tc.failures, len(seen))
		}
	}
}
