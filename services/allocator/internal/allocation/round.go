package allocation

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// candidate is a resource profile that may get new pods this round.
type candidate struct {
	rpID       int32
	podCount   int
	target     int
	notRunning int
}

// OnNewSnapshots runs one allocation round (Spark's onNewSnapshots) over a
// batch of snapshots of the application, oldest first, each the full set of
// the application's executors at one revision. The batch may be empty: a
// round then acts on the last snapshot it saw, as Spark's periodic rounds do.
// registered holds the executors registered with the scheduler now (Spark's
// getExecutorIds); a nil map means none.
//
// The allocator keeps references to the snapshots' executors and never
// modifies them; the caller must not modify them either.
//
// The comments in the body name the steps A to L of Spark's round as the
// project's Spark notes (SPARK.md §4.5) list them. Step C, collecting the
// claim names of persistent volume claims in use, has no counterpart here.
//
// The error is nil for a complete round, even if pod writes failed (they are
// logged); ErrStopped after Stop; a *MaximumExceededError when the round
// stopped at spark.kubernetes.allocation.maximum; or ctx's error when ctx
// ended before the round began or before it requested pods, so that a
// shutting-down caller does not use up executor ids on requests bound to
// fail. A round that stops early leaves the outstanding count and the
// deleted set as they were, except for deletions it already decided.
func (a *Allocator) OnNewSnapshots(ctx context.Context, batch []*sparkpodsv1.ExecutorSnapshot, registered map[int64]bool) error {
	a.round.Lock()
	defer a.round.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}

	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return ErrStopped
	}
	targets := maps.Clone(a.targets)
	// Step G works on a local copy, which the round publishes at its end.
	deleted := maps.Clone(a.deleted)
	a.mu.Unlock()

	now := a.clock.Now()
	a.acknowledge(ctx, now, batch, registered)

	// Step F.
	if len(batch) > 0 {
		last := batch[len(batch)-1]
		a.lastPods = make(map[int64]*sparkpodsv1.Executor, len(last.GetExecutors()))
		for _, e := range last.GetExecutors() {
			a.lastPods[e.GetExecutorId()] = e
		}
		a.lastRevision = last.GetRevision()
	}

	// Step G: forget deleted executors that have left the cluster's view.
	if len(batch) > 0 {
		maps.DeleteFunc(deleted, func(id int64, _ bool) bool {
			_, ok := a.lastPods[id]
			return !ok
		})
	}

	rpIDs := slices.Sorted(maps.Keys(targets))
	groups := a.groupByProfile(rpIDs, deleted)

	// Step I: per profile, in ascending id order.
	views := make(map[int32]*profileView, len(rpIDs))
	var totalPending, totalNotRunning int
	var candidates []candidate
	for _, rpID := range rpIDs {
		target := int(targets[rpID])
		v, podCount := a.evaluateProfile(ctx, now, rpID, target, groups[rpID], registered, deleted)
		views[rpID] = v
		totalPending += v.pendingCount
		totalNotRunning += v.notRunning
		// While a single request of the profile is unseen and unregistered,
		// the profile asks for nothing more. The test reads the requests as
		// they were before any excess deletion, as Spark does.
		if v.blockingRequests == 0 && podCount < target {
			candidates = append(candidates, candidate{rpID: rpID, podCount: podCount, target: target, notRunning: v.notRunning})
		}
	}

	created, roundErr := a.requestForCandidates(ctx, now, candidates, totalNotRunning, views)

	a.mu.Lock()
	defer a.mu.Unlock()
	if roundErr == nil {
		// Step K.
		a.deleted = deleted
		// Step L: requests known to the scheduler and pending pods known to
		// it count as running, so that they do not hold back an immediate
		// round when targets change.
		a.outstanding = totalPending + a.newly.len()
	}
	a.view = roundView{
		profiles:        views,
		totalNotRunning: totalNotRunning + created,
		lastExecutorID:  a.lastID,
		revision:        a.lastRevision,
		failedCreations: a.failedCreations,
		failureStreak:   a.failureStreak,
		backoffUntil:    a.backoffUntil,
		lastFailure:     a.lastFailure,
	}
	for _, rpID := range rpIDs {
		v := views[rpID]
		v.newly = a.newly.forProfile(rpID)
		if len(v.newly) > 0 {
			v.oldestRequest = a.newly.byID[v.newly[0]].created
		}
		v.knownNewly = a.known.forProfile(rpID)
		v.outstanding = v.pendingCount + len(v.newly)
	}
	return roundErr
}

// acknowledge settles the round's requests against the batch and the
// registered executors: Steps A, B, D and E.
func (a *Allocator) acknowledge(ctx context.Context, now time.Time, batch []*sparkpodsv1.ExecutorSnapshot, registered map[int64]bool) {
	// Step A: every executor in any snapshot of the batch counts as seen, so
	// that a full re-list in the middle of the batch, which drops executors
	// an earlier snapshot had, does not hide them.
	seen := map[int64]bool{}
	for _, s := range batch {
		for _, e := range s.GetExecutors() {
			seen[e.GetExecutorId()] = true
		}
	}
	// Deviation from Spark: the id counter never falls behind an executor
	// the cluster has, so ids stay unique even when the persisted high-water
	// mark was lost, or when executor pods created by someone else (a Spark
	// driver, an earlier allocator) are adopted. Spark has a single allocator
	// per driver and needs no such guard.
	for id := range seen {
		a.lastID = max(a.lastID, id)
	}

	// Step B: requests that appeared in a snapshot are no longer waited for,
	// whatever state their pod is in.
	a.newly.remove(seen)
	a.known.remove(seen)
	a.forgetGoneRestoredPods(batch)

	// Step D: requests whose executor registered with the scheduler before
	// its pod appeared in a snapshot count as effectively running: they
	// neither block their profile nor time out.
	a.newly.removeIf(func(id int64, req request) bool {
		if registered[id] {
			a.known.add(id, req)
			return true
		}
		return false
	})

	// Step E: requests unseen for longer than the creation timeout were
	// either never created or created and deleted with both events missed.
	// Forget them, so that the profile requests replacements this round.
	timeout := a.cfg.PodCreationTimeout()
	timedOut := a.newly.removeIf(func(_ int64, req request) bool {
		return olderThan(now, req.created, timeout)
	})
	if len(timedOut) == 0 {
		return
	}
	a.log.Warn("executor pods were requested but never appeared in a snapshot; the application may have missed their deletion",
		"executorIds", timedOut, "timeout", timeout)
	if a.cfg.DeleteOnTermination {
		// No phase filter, and the ids are not marked deleted: Spark does
		// the same.
		if err := a.pods.DeleteExecutorPods(ctx, timedOut); err != nil {
			a.log.Warn("deleting timed-out executor pods failed", "executorIds", timedOut, "err", err)
		}
	}
}

// groupByProfile groups the executors of the last snapshot that the
// allocator has not deleted by resource profile: Step H.
func (a *Allocator) groupByProfile(rpIDs []int32, deleted map[int64]bool) map[int32][]*sparkpodsv1.Executor {
	groups := map[int32][]*sparkpodsv1.Executor{}
	for id, e := range a.lastPods {
		if deleted[id] {
			continue
		}
		rpID := e.GetResourceProfileId()
		if len(rpIDs) == 1 {
			// Spark's shortcut for applications with a single resource
			// profile groups every executor under it, whatever its label.
			// Deviation from Spark: under the profile that has the target,
			// which Spark assumes is the default profile 0. If a client sets
			// a target only for another profile, Spark would see none of its
			// executors and request pods without end.
			rpID = rpIDs[0]
		}
		groups[rpID] = append(groups[rpID], e)
	}
	return groups
}

// evaluateProfile counts one profile's executors and deletes its excess
// pending pods and requests: the body of Step I. It returns the profile's
// view and its pod count as Spark's candidate test reads it, before the
// deletion.
func (a *Allocator) evaluateProfile(ctx context.Context, now time.Time, rpID int32, target int, pods []*sparkpodsv1.Executor, registered, deleted map[int64]bool) (*profileView, int) {
	var running, knownPending int
	var unknownPending []*sparkpodsv1.Executor
	for _, e := range pods {
		switch e.GetState() {
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING:
			running++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING:
			if registered[e.GetExecutorId()] {
				knownPending++
			} else {
				unknownPending = append(unknownPending, e)
			}
		}
		// Executors in any other state (succeeded, failed, deleted,
		// terminating, unknown) hold no slot: a replacement can be requested
		// in this very round.
	}
	newlyRP := a.newly.forProfile(rpID)
	knownNewlyRP := a.known.forProfile(rpID)
	notRunning := len(unknownPending) + knownPending + len(newlyRP) + len(knownNewlyRP)
	podCount := running + notRunning
	pendingCount := len(unknownPending)
	removed := 0

	if podCount > target {
		toDelete, newlyToDelete, pendingToDelete := a.excess(now, podCount-target, newlyRP, unknownPending)
		if len(toDelete) > 0 {
			a.log.Info("deleting excess executor pod requests", "resourceProfileId", rpID, "count", len(toDelete), "executorIds", toDelete)
			// The ids count as deleted from the moment the decision is
			// taken, whatever the call's outcome, as in Spark.
			for _, id := range toDelete {
				deleted[id] = true
			}
			a.publishDeleted(toDelete)
			if err := a.pods.DeletePendingExecutorPods(ctx, slices.Sorted(slices.Values(toDelete))); err != nil {
				a.log.Warn("deleting excess executor pods failed", "executorIds", toDelete, "err", err)
			} else {
				a.newly.remove(setOf(newlyToDelete))
				pendingCount -= len(pendingToDelete)
				notRunning -= len(toDelete)
				removed = len(toDelete)
			}
		}
	}
	return &profileView{
		running:          running,
		pending:          knownPending + pendingCount,
		pendingCount:     pendingCount,
		podCount:         podCount - removed,
		notRunning:       notRunning,
		blockingRequests: len(newlyRP),
	}, podCount
}

// requestForCandidates shares what maxPendingPods leaves among the
// candidate profiles and requests their pods: Step J. It returns how many
// pods were requested successfully, and the error that ended the round
// early, if any.
func (a *Allocator) requestForCandidates(ctx context.Context, now time.Time, candidates []candidate, totalNotRunning int, views map[int32]*profileView) (int, error) {
	remaining := a.cfg.MaxPendingPods - totalNotRunning
	if remaining <= 0 || len(candidates) == 0 {
		return 0, nil
	}
	// Deviation from Spark: after a request in which no pod could be
	// created (a quota, an admission webhook, an unreachable pod manager),
	// Spark asks again every batch delay for as long as the cause lasts.
	// Here, from the second such request in a row, the requests back off
	// exponentially up to maxCreationBackoff, and no executor ids are used
	// up meanwhile; the first pod created ends the backoff.
	if a.failureStreak > 0 && now.Before(a.backoffUntil) {
		return 0, nil
	}
	created := 0
	slots := splitSlots(len(candidates), remaining)
	for i, c := range candidates {
		if err := ctx.Err(); err != nil {
			return created, err
		}
		n := min(c.target-c.podCount, a.cfg.BatchSize, slots[i], a.cfg.MaxPendingPodsPerRp-c.notRunning)
		if n <= 0 {
			continue
		}
		a.log.Info("requesting executor pods", "resourceProfileId", c.rpID, "count", n,
			"target", c.target, "known", c.podCount, "sharedSlotsFromPendingPods", slots[i])
		res, err := a.requestNewExecutors(ctx, n, c.rpID)
		a.noteCreations(now, res)
		v := views[c.rpID]
		v.podCount += res.created
		v.notRunning += res.created
		if res.created == 0 && res.lastErr != nil {
			v.creationErr = res.lastErr.Error()
		}
		created += res.created
		if err != nil {
			// Spark throws here, which ends the round: Steps K and L do not
			// run.
			return created, err
		}
	}
	return created, nil
}

// maxCreationBackoff bounds the wait between pod requests after repeated
// creation failures.
const maxCreationBackoff = 5 * time.Minute

// noteCreations updates the failure streak and the backoff after one
// profile's pod requests. A first failure is retried at the next round, as
// Spark does; from the second in a row on, the wait doubles from one batch
// delay up to maxCreationBackoff.
func (a *Allocator) noteCreations(now time.Time, res requestResult) {
	switch {
	case res.created > 0:
		a.failureStreak, a.backoffUntil, a.lastFailure = 0, time.Time{}, ""
	case res.failed > 0:
		a.failureStreak++
		a.lastFailure = res.lastErr.Error()
		if a.failureStreak < 2 {
			return
		}
		delay := maxCreationBackoff
		if a.failureStreak <= 22 {
			delay = min(maxCreationBackoff, a.cfg.BatchDelay<<(a.failureStreak-2))
		}
		a.backoffUntil = now.Add(delay)
		a.log.Warn("no executor pod could be created again; backing off", "consecutiveFailures", a.failureStreak,
			"retryIn", delay, "err", res.lastErr)
	}
}

// excess picks which of a profile's requests and pending pods to delete when
// it has excess executors: first requests, oldest first, then pending pods
// unknown to the scheduler, oldest creation first, taking only those older
// than the executor idle timeout so that a target that dips and recovers
// does not churn pods. Running executors and anything registered with the
// scheduler are never picked.
func (a *Allocator) excess(now time.Time, excess int, newlyRP []int64, unknownPending []*sparkpodsv1.Executor) (toDelete, newlyToDelete, pendingToDelete []int64) {
	idle := a.cfg.ExecutorIdleTimeout
	for _, id := range newlyRP {
		if len(newlyToDelete) == excess {
			break
		}
		if olderThan(now, a.newly.byID[id].created, idle) {
			newlyToDelete = append(newlyToDelete, id)
		}
	}
	// Spark walks the pending pods in hash order; oldest first (a pod
	// without a creation time counts as oldest), then lowest id, is
	// deterministic and deletes the pods that waited longest.
	slices.SortFunc(unknownPending, func(x, y *sparkpodsv1.Executor) int {
		xt, xok := createTime(x)
		yt, yok := createTime(y)
		switch {
		case xok != yok:
			if !xok {
				return -1
			}
			return 1
		case xok && !xt.Equal(yt):
			return xt.Compare(yt)
		}
		return cmp.Compare(x.GetExecutorId(), y.GetExecutorId())
	})
	for _, e := range unknownPending {
		if len(newlyToDelete)+len(pendingToDelete) >= excess {
			break
		}
		t, ok := createTime(e)
		if !ok {
			// Spark cannot parse the creation timestamp either and then
			// treats the pod as old enough.
			a.log.Warn("executor pod has no valid creation time; treating it as idle", "executorId", e.GetExecutorId(), "pod", e.GetPodName())
		}
		if !ok || olderThan(now, t, idle) {
			pendingToDelete = append(pendingToDelete, e.GetExecutorId())
		}
	}
	toDelete = slices.Concat(newlyToDelete, pendingToDelete)
	return toDelete, newlyToDelete, pendingToDelete
}

// requestResult is the outcome of one profile's pod requests in a round.
type requestResult struct {
	created int
	failed  int
	lastErr error
}

// requestNewExecutors issues n new executor ids for rpID and asks the
// PodWriter for their pods (Spark's requestNewExecutors). A failed creation
// consumes its id and is counted, and the round goes on (Spark 4.2). It
// returns a *MaximumExceededError, after requesting the pods of the ids
// issued before, when an id reaches the allocation maximum; that id is
// consumed too, as Spark's counter is.
func (a *Allocator) requestNewExecutors(ctx context.Context, n int, rpID int32) (requestResult, error) {
	ids := make([]int64, 0, n)
	var maxErr error
	for range n {
		a.lastID++
		if a.lastID >= int64(a.cfg.AllocationMaximum) {
			maxErr = &MaximumExceededError{Maximum: a.cfg.AllocationMaximum}
			break
		}
		ids = append(ids, a.lastID)
	}
	var res requestResult
	if len(ids) > 0 {
		failed, err := a.pods.CreateExecutorPods(ctx, rpID, ids)
		at := a.clock.Now()
		var failedIDs []int64
		for _, id := range ids {
			ferr := failed[id]
			if err != nil {
				ferr = err
			}
			if ferr != nil {
				failedIDs = append(failedIDs, id)
				res.failed++
				res.lastErr = ferr
				continue
			}
			a.newly.add(id, request{rpID: rpID, created: at})
			res.created++
		}
		if len(failedIDs) > 0 {
			a.failedCreations += len(failedIDs)
			a.log.Error("creating executor pods failed", "resourceProfileId", rpID, "executorIds", failedIDs,
				"totalFailures", a.failedCreations, "err", res.lastErr)
		}
	}
	if maxErr != nil {
		a.log.Error("executor ids reached the allocation maximum; no more pods can be requested",
			"resourceProfileId", rpID, "maximum", a.cfg.AllocationMaximum)
	}
	return res, maxErr
}

// publishDeleted makes ids visible to IsDeleted at once.
//
// Deviation from Spark: Spark publishes its deleted set only when the round
// ends, after the delete call and the pod requests that follow, and not at
// all when the round stops at the allocation maximum. An executor
// registering in between was accepted. Here it is refused from the moment
// the allocator decides to delete its pod.
func (a *Allocator) publishDeleted(ids []int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.deleted[id] = true
	}
}

// splitSlots shares slots among n consumers as Spark's splitSlots does: each
// gets slots/n, and the first slots%n get one more.
func splitSlots(n, slots int) []int {
	out := make([]int, n)
	d, r := slots/n, slots%n
	for i := range out {
		out[i] = d
		if i < r {
			out[i]++
		}
	}
	return out
}

// olderThan reports whether more than d passed between t and now, compared
// in whole milliseconds as Spark compares its clock readings.
func olderThan(now, t time.Time, d time.Duration) bool {
	return now.UnixMilli()-t.UnixMilli() > d.Milliseconds()
}

// createTime returns when the executor's pod was created, and false if the
// snapshot does not say.
func createTime(e *sparkpodsv1.Executor) (time.Time, bool) {
	ts := e.GetCreateTime()
	if ts == nil || ts.CheckValid() != nil {
		return time.Time{}, false
	}
	return ts.AsTime(), true
}

func setOf(ids []int64) map[int64]bool {
	s := make(map[int64]bool, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}

// forgetGoneRestoredPods drops the restored requests (see
// AllocatorConfig.Existing) once the batch has a full snapshot taken after
// the restore: a pod it lacks was deleted since, and waiting for it until
// the creation timeout would hold back its replacement.
func (a *Allocator) forgetGoneRestoredPods(batch []*sparkpodsv1.ExecutorSnapshot) {
	if a.restoredAt.IsZero() {
		return
	}
	fresh := slices.ContainsFunc(batch, func(s *sparkpodsv1.ExecutorSnapshot) bool {
		return s.GetFullSnapshotTime() != nil && s.GetFullSnapshotTime().AsTime().After(a.restoredAt)
	})
	if !fresh {
		return
	}
	gone := a.newly.removeIf(func(_ int64, req request) bool { return req.restored })
	if len(gone) > 0 {
		a.log.Info("executor pods that existed at the restore are gone from a later full snapshot; no longer waiting for them", "executorIds", gone)
	}
	a.restoredAt = time.Time{}
}
