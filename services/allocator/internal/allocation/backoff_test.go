package allocation_test

import (
	"strings"
	"testing"
	"time"
)

// Deviation from Spark: repeated creation failures back off instead of
// hammering the API server every batch delay.
func TestRepeatedCreationFailuresBackOff(t *testing.T) {
	s := newScenario(t, nil) // batch delay 1s
	s.pods.createErr = errQuota
	s.setTargets(map[int32]int32{0: 1})
	s.wantRequested(ids(1)...)

	// The first failure is retried at the next round, as in Spark.
	s.advance(time.Second)
	s.notify()
	s.wantRequested(ids(1, 2)...)

	// The second in a row waits one batch delay, the third two, and no
	// executor id is used up meanwhile.
	s.notify()
	s.wantRequested(ids(1, 2)...)
	if got := s.profile(0).BlockedReason; !strings.HasPrefix(got, "backing off after 2 failed pod requests in a row") {
		t.Errorf("blocked reason = %q, want the backoff", got)
	}
	s.advance(time.Second)
	s.notify()
	s.wantRequested(ids(1, 2, 3)...)
	s.advance(time.Second)
	s.notify()
	s.wantRequested(ids(1, 2, 3)...)
	s.advance(time.Second)
	s.notify()
	s.wantRequested(ids(1, 2, 3, 4)...)

	// A success ends the backoff.
	s.pods.createErr = nil
	s.advance(4 * time.Second)
	s.notify()
	s.wantRequested(ids(1, 2, 3, 4, 5)...)
	s.setTargets(map[int32]int32{0: 1})
	if got := s.profile(0).BlockedReason; got != "" {
		t.Errorf("blocked reason after a success = %q", got)
	}
}
