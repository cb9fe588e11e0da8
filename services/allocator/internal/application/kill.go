package application

import (
	"context"
	"slices"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Kill labels the executors for decommission (when the application
// configures a label) and, after grace, deletes those of their pods still
// running (Spark's doKillExecutors). It returns at once with the ids the
// allocator knows, which are the ones it acts on.
func (a *App) Kill(ctx context.Context, ids []int64, grace time.Duration) ([]int64, error) {
	known := a.knownIDs()
	var accepted []int64
	for _, id := range ids {
		if known[id] {
			accepted = append(accepted, id)
		}
	}
	slices.Sort(accepted)
	accepted = slices.Compact(accepted)
	if len(accepted) == 0 {
		return nil, nil
	}
	select {
	case a.kills <- killOrder{ids: accepted, grace: grace}:
		return accepted, nil
	case <-a.stop:
		return nil, ErrNotFound
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// DeleteGracePeriod is the application's
// spark.kubernetes.dynamicAllocation.deleteGracePeriod.
func (a *App) DeleteGracePeriod() time.Duration { return a.settings.DeleteGracePeriod }

// knownIDs are the executors the allocator knows of: in its latest
// snapshot, requested and not yet seen, or registered with the scheduler.
func (a *App) knownIDs() map[int64]bool {
	known := map[int64]bool{}
	a.mu.Lock()
	for _, e := range a.latest.GetExecutors() {
		known[e.GetExecutorId()] = true
	}
	for id := range a.registered {
		known[id] = true
	}
	a.mu.Unlock()
	for _, p := range a.alloc.Status().Profiles {
		for _, id := range p.NewlyCreatedExecutorIDs {
			known[id] = true
		}
		for _, id := range p.SchedulerKnownNewlyCreatedExecutorIDs {
			known[id] = true
		}
	}
	return known
}

// kill carries out one kill order: label, wait, delete what still runs.
func (a *App) kill(ctx context.Context, o killOrder) {
	if a.settings.DecommissionLabel != "" {
		ctx, cancel := context.WithTimeout(ctx, podCallTimeout)
		_, err := a.pods.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{
			Namespace:   a.key.Namespace,
			AppId:       a.key.AppID,
			ExecutorIds: o.ids,
			Labels:      map[string]string{a.settings.DecommissionLabel: a.settings.DecommissionLabelValue},
		})
		cancel()
		if err != nil {
			a.log.Warn("labelling executors for decommission failed", "executorIds", o.ids, "err", err)
		}
	}
	select {
	case <-ctx.Done():
		return
	case <-a.clock.After(o.grace):
	}
	n, err := a.deletePods(ctx, o.ids, sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_RUNNING)
	a.metrics.podsDeleted.WithLabelValues("kill").Add(float64(n))
	if err != nil {
		a.log.Warn("deleting killed executors' pods failed", "executorIds", o.ids, "err", err)
		return
	}
	if n > 0 {
		a.log.Info("forcefully deleted pods still running after the graceful shutdown period",
			"deleted", n, "of", len(o.ids), "executorIds", o.ids)
	}
}
