package allocation

import (
	"fmt"
	"maps"
	"slices"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// profileView is one profile as the last round left it.
type profileView struct {
	running int
	// pending counts the pending pods, registered or not, that the round did
	// not delete.
	pending int
	// pendingCount counts the pending pods unknown to the scheduler that the
	// round did not delete (Spark's pendingCountForRpId).
	pendingCount int
	// podCount and notRunning are Spark's counts after the round's deletions
	// and requests.
	podCount   int
	notRunning int
	// newly and knownNewly are the profile's unseen requests at the end of
	// the round, unregistered and registered.
	newly         []int64
	oldestRequest time.Time
	knownNewly    []int64
	outstanding   int
	// creationErr is why the round's requests for the profile all failed.
	creationErr string
	// blockingRequests counts the unseen, unregistered requests the round
	// started with; any of them keeps the profile from asking for more.
	blockingRequests int
}

// roundView is what the last round left for Status to report.
type roundView struct {
	profiles        map[int32]*profileView
	totalNotRunning int
	lastExecutorID  int64
	revision        int64
	failedCreations int
	failureStreak   int
	backoffUntil    time.Time
	lastFailure     string
}

// Status is the allocator's state for operators and the scheduler API. It is
// a copy; the caller may keep and modify it.
type Status struct {
	// Profiles has one entry per resource profile with a target, ordered by
	// profile id.
	Profiles []ProfileStatus
	// Outstanding is Spark's numOutstandingPods: pending pods and unseen
	// requests, both unknown to the scheduler. SetTotalExpectedExecutors
	// asks for an immediate round only when it is 0. A round stopped by the
	// allocation maximum leaves it unchanged, as in Spark.
	Outstanding int
	// LastExecutorID is the highest executor id issued so far, the
	// high-water mark to persist; the next id is one more.
	LastExecutorID int64
	// DeletedExecutorIDs are the ids IsDeleted reports, ascending.
	DeletedExecutorIDs []int64
	// FailedPodCreations counts the executor pods whose creation failed since
	// the allocator started.
	FailedPodCreations int
	// SnapshotRevision is the revision of the last snapshot a round saw.
	SnapshotRevision int64
}

// ProfileStatus is the allocator's state for one resource profile.
type ProfileStatus struct {
	// ResourceProfileID is the Spark resource profile id.
	ResourceProfileID int32
	// Target is the wanted number of executors, as last set.
	Target int32
	// Running counts the profile's running executors in the last snapshot.
	Running int
	// Pending counts the profile's pending pods in the last snapshot, except
	// those the allocator deleted.
	Pending int
	// NewlyCreatedExecutorIDs are requested executors not yet seen in a
	// snapshot nor registered with the scheduler, oldest first. While there
	// is one, the profile requests nothing more.
	NewlyCreatedExecutorIDs []int64
	// SchedulerKnownNewlyCreatedExecutorIDs are requested executors not yet
	// seen in a snapshot but already registered with the scheduler; they
	// count as running.
	SchedulerKnownNewlyCreatedExecutorIDs []int64
	// Outstanding is the profile's share of Status.Outstanding.
	Outstanding int
	// BlockedReason says, for a person, why the allocator is not requesting
	// the executors the profile still lacks; empty when it lacks none or the
	// next round will request them.
	BlockedReason string
}

// Proto returns p as the scheduler API's ProfileAllocation.
func (p ProfileStatus) Proto() *sparkpodsv1.ProfileAllocation {
	return &sparkpodsv1.ProfileAllocation{
		ResourceProfileId:       p.ResourceProfileID,
		Target:                  p.Target,
		Running:                 int32(p.Running),
		Pending:                 int32(p.Pending),
		NewlyCreatedExecutorIds: slices.Clone(p.NewlyCreatedExecutorIDs),
		Outstanding:             int32(p.Outstanding),
		BlockedReason:           p.BlockedReason,
	}
}

// Status returns the allocator's state as the last round left it, with the
// targets as they are now. It never waits for a round in progress.
func (a *Allocator) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	st := Status{
		Outstanding:        a.outstanding,
		LastExecutorID:     a.view.lastExecutorID,
		DeletedExecutorIDs: slices.Sorted(maps.Keys(a.deleted)),
		FailedPodCreations: a.view.failedCreations,
		SnapshotRevision:   a.view.revision,
	}
	for _, rpID := range slices.Sorted(maps.Keys(a.targets)) {
		v := a.view.profiles[rpID]
		if v == nil {
			v = &profileView{}
		}
		target := a.targets[rpID]
		st.Profiles = append(st.Profiles, ProfileStatus{
			ResourceProfileID:                     rpID,
			Target:                                target,
			Running:                               v.running,
			Pending:                               v.pending,
			NewlyCreatedExecutorIDs:               slices.Clone(v.newly),
			SchedulerKnownNewlyCreatedExecutorIDs: slices.Clone(v.knownNewly),
			Outstanding:                           v.outstanding,
			BlockedReason:                         a.blockedReason(v, int(target), now),
		})
	}
	return st
}

// blockedReason explains why a profile that lacks executors gets none now,
// checking the causes in the order the round meets them.
func (a *Allocator) blockedReason(v *profileView, target int, now time.Time) string {
	if target <= v.podCount {
		return ""
	}
	if a.view.lastExecutorID+1 >= int64(a.cfg.AllocationMaximum) {
		return fmt.Sprintf("allocation maximum reached: executor ids must stay below %s=%d and %d was issued last",
			KeyAllocationMaximum, a.cfg.AllocationMaximum, a.view.lastExecutorID)
	}
	if len(v.newly) > 0 {
		age := humanAge(now.Sub(v.oldestRequest))
		if len(v.newly) == 1 {
			return fmt.Sprintf("waiting for executor %d to appear in a snapshot (requested %s ago)", v.newly[0], age)
		}
		return fmt.Sprintf("waiting for executor %d and %d more to appear in a snapshot (requested %s ago)", v.newly[0], len(v.newly)-1, age)
	}
	if a.view.failureStreak > 0 && now.Before(a.view.backoffUntil) {
		return fmt.Sprintf("backing off after %d failed pod requests in a row, next attempt in %s: %s",
			a.view.failureStreak, humanAge(a.view.backoffUntil.Sub(now)), a.view.lastFailure)
	}
	if v.creationErr != "" {
		return "creating executor pods failed, retrying next round: " + v.creationErr
	}
	if a.view.totalNotRunning >= a.cfg.MaxPendingPods {
		return fmt.Sprintf("maxPendingPods (%d) reached", a.cfg.MaxPendingPods)
	}
	if v.notRunning >= a.cfg.MaxPendingPodsPerRp {
		return fmt.Sprintf("maxPendingPodsPerRp (%d) reached", a.cfg.MaxPendingPodsPerRp)
	}
	return ""
}

// humanAge rounds an age for a status line: to the second above one second,
// to the millisecond below.
func humanAge(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Second).String()
	}
	return max(d, 0).Round(time.Millisecond).String()
}
