package driversim

import (
	"slices"
	"time"
)

// allocationManager is Spark's ExecutorAllocationManager reduced to what a
// scheduler client decides: a target per resource profile, raised
// exponentially while tasks are backlogged and lowered when they are not,
// and the idle executors to release. It is a pure value driven by schedule
// calls with the current time; the Driver owns it under its lock.
type allocationManager struct {
	settings Settings
	profiles map[int32]*profileState
	// executors are the registered executors.
	executors map[int64]*executorState
}

type profileState struct {
	id int32
	// slots is how many tasks one executor runs at once.
	slots int
	// tasks is the profile's workload: pending plus running tasks.
	tasks int
	// target is numExecutorsTargetPerResourceProfileId.
	target int
	// toAdd is numExecutorsToAddPerResourceProfileId: 1, 2, 4, …
	toAdd int
	// addTime is when the next request is due while backlogged; zero when
	// the scheduler queue is empty (Spark's NOT_SET).
	addTime time.Time
}

type executorState struct {
	id         int64
	profile    int32
	registered time.Time
	// idleSince is when the executor last ran out of tasks; zero while busy.
	idleSince time.Time
	// removing is set once the manager (or the caller) asked for the
	// executor to go: it runs no more tasks and no longer counts.
	removing bool
}

// decision is what one schedule call wants sent to the allocator.
type decision struct {
	// targetsChanged reports that some profile's target moved.
	targetsChanged bool
	// release are idle executors to kill (or decommission), ordered by id.
	release []int64
}

func newAllocationManager(s Settings, profiles map[int32]int) *allocationManager {
	m := &allocationManager{settings: s, profiles: map[int32]*profileState{}, executors: map[int64]*executorState{}}
	for id, cores := range profiles {
		m.profiles[id] = &profileState{id: id, slots: max(cores/s.TaskCPUs, 1), target: s.InitialExecutors, toAdd: 1}
	}
	return m
}

// setTasks sets a profile's workload: how many tasks are pending or running.
func (m *allocationManager) setTasks(profile int32, tasks int) bool {
	p, ok := m.profiles[profile]
	if ok {
		p.tasks = max(tasks, 0)
	}
	return ok
}

func (m *allocationManager) register(id int64, profile int32, at time.Time) {
	if _, ok := m.executors[id]; !ok {
		m.executors[id] = &executorState{id: id, profile: profile, registered: at}
	}
}

func (m *allocationManager) unregister(id int64) { delete(m.executors, id) }

// markRemoving takes executors out of task scheduling, as Spark does for
// executors pending removal or decommission.
func (m *allocationManager) markRemoving(ids []int64) {
	for _, id := range ids {
		if e, ok := m.executors[id]; ok {
			e.removing = true
		}
	}
}

// schedule is one run of Spark's schedule(): update each profile's target
// (updateAndSyncNumExecutorsTarget), then release executors idle past
// executorIdleTimeout (removeExecutors). Spark runs it every 100ms.
func (m *allocationManager) schedule(now time.Time) decision {
	var d decision
	for _, p := range m.sortedProfiles() {
		live := m.live(p.id)
		m.trackBacklog(p, len(live), now)
		maxNeeded := (p.tasks + p.slots - 1) / p.slots
		switch {
		case maxNeeded < p.target:
			// The load is gone: lower the target at once, never below min.
			newTarget := max(maxNeeded, m.settings.MinExecutors)
			if newTarget != p.target {
				p.target = newTarget
				d.targetsChanged = true
			}
			p.toAdd = 1
		case !p.addTime.IsZero() && !now.Before(p.addTime):
			if m.addExecutors(p, maxNeeded, len(live)) != 0 {
				d.targetsChanged = true
			}
			p.addTime = now.Add(m.settings.SustainedSchedulerBacklogTimeout)
		}
		m.trackIdle(p, live, now)
		d.release = append(d.release, m.removeIdle(p, live, now)...)
	}
	slices.Sort(d.release)
	return d
}

// trackBacklog is Spark's onSchedulerBacklogged / onSchedulerQueueEmpty:
// tasks that no live executor slot can take start the backlog clock.
func (m *allocationManager) trackBacklog(p *profileState, live int, now time.Time) {
	backlogged := p.tasks > live*p.slots
	switch {
	case backlogged && p.addTime.IsZero():
		p.addTime = now.Add(m.settings.SchedulerBacklogTimeout)
	case !backlogged:
		p.addTime = time.Time{}
		p.toAdd = 1
	}
}

// addExecutors is Spark's addExecutors: raise the target by toAdd, capped by
// what the tasks need and by max, and double toAdd when the full step was
// taken. It returns the change of the target.
func (m *allocationManager) addExecutors(p *profileState, maxNeeded, existing int) int {
	old := p.target
	if old >= m.settings.MaxExecutors {
		p.toAdd = 1
		return 0
	}
	// No point ramping up to executors we already have.
	target := max(p.target, existing)
	target += p.toAdd
	target = min(target, maxNeeded)
	target = max(min(target, m.settings.MaxExecutors), m.settings.MinExecutors)
	p.target = target
	delta := target - old
	if delta == p.toAdd {
		p.toAdd *= 2
	} else {
		p.toAdd = 1
	}
	return delta
}

// trackIdle hands the profile's tasks to its live executors, oldest (lowest
// id) first, and notes when each one ran out of work.
func (m *allocationManager) trackIdle(p *profileState, live []*executorState, now time.Time) {
	busy := min((p.tasks+p.slots-1)/p.slots, len(live))
	for i, e := range live {
		switch {
		case i < busy:
			e.idleSince = time.Time{}
		case e.idleSince.IsZero():
			e.idleSince = now
		}
	}
}

// removeIdle is Spark's removeExecutors: executors idle for the timeout go,
// highest id first, as long as the profile keeps at least its target and
// min executors.
func (m *allocationManager) removeIdle(p *profileState, live []*executorState, now time.Time) []int64 {
	remaining := len(live)
	var out []int64
	for i := len(live) - 1; i >= 0; i-- {
		e := live[i]
		if e.idleSince.IsZero() || now.Sub(e.idleSince) < m.settings.ExecutorIdleTimeout {
			continue
		}
		if remaining-1 < m.settings.MinExecutors || remaining-1 < p.target {
			break
		}
		e.removing = true
		remaining--
		out = append(out, e.id)
	}
	return out
}

// live lists a profile's registered executors that are not being removed,
// lowest id first.
func (m *allocationManager) live(profile int32) []*executorState {
	var out []*executorState
	for _, e := range m.executors {
		if e.profile == profile && !e.removing {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *executorState) int { return cmpInt64(a.id, b.id) })
	return out
}

func (m *allocationManager) sortedProfiles() []*profileState {
	out := make([]*profileState, 0, len(m.profiles))
	for _, p := range m.profiles {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *profileState) int { return int(a.id) - int(b.id) })
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
