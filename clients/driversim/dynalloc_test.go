package driversim

import (
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func testSettings() Settings {
	return Settings{
		MaxExecutors:                     100,
		SchedulerBacklogTimeout:          time.Second,
		SustainedSchedulerBacklogTimeout: time.Second,
		ExecutorIdleTimeout:              3 * time.Second,
		TaskCPUs:                         1,
		ExecutorCores:                    1,
	}
}

// run advances the clock in 100ms steps, as Spark's schedule thread runs,
// for d, and returns the target after each whole second. The backlog is
// first seen at 0.1s, so with 1s timeouts requests go out at 1.1s, 2.1s, …
func run(m *allocationManager, clk *clocktesting.FakeClock, profile int32, d time.Duration) []int {
	var targets []int
	for step := time.Duration(0); step < d; step += 100 * time.Millisecond {
		clk.Step(100 * time.Millisecond)
		m.schedule(clk.Now())
		if (step+100*time.Millisecond)%time.Second == 0 {
			targets = append(targets, m.profiles[profile].target)
		}
	}
	return targets
}

func TestRampUpDoublesEverySustainedTimeout(t *testing.T) {
	tests := []struct {
		name     string
		settings func(*Settings)
		tasks    int
		want     []int
	}{
		{name: "exponential up to what the tasks need", tasks: 20, want: []int{0, 1, 3, 7, 15, 20}},
		{name: "capped by maxExecutors", settings: func(s *Settings) { s.MaxExecutors = 10 }, tasks: 50, want: []int{0, 1, 3, 7, 10, 10}},
		{name: "starts from the initial target", settings: func(s *Settings) { s.InitialExecutors = 4 }, tasks: 50, want: []int{4, 5, 7, 11, 19, 35}},
		{name: "no backlog, no request", tasks: 0, want: []int{0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			if tt.settings != nil {
				tt.settings(&s)
			}
			clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
			m := newAllocationManager(s, map[int32]int{0: 1})
			m.setTasks(0, tt.tasks)
			got := run(m, clk, 0, 6*time.Second)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("targets per second = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBacklogTimeoutBeforeFirstRequest(t *testing.T) {
	s := testSettings()
	s.SchedulerBacklogTimeout = 3 * time.Second
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := newAllocationManager(s, map[int32]int{0: 1})
	m.setTasks(0, 100)
	got := run(m, clk, 0, 5*time.Second)
	// The backlog starts at the first round (0.1s); the first request is
	// due 3s later (3.1s), then every sustained timeout (1s).
	if want := []int{0, 0, 0, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("targets per second = %v, want %v", got, want)
	}
}

func TestRegisteredExecutorsAbsorbTheBacklog(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := newAllocationManager(testSettings(), map[int32]int{0: 1, 1: 4})
	// Profile 1 runs four tasks per executor: 8 tasks need 2 executors.
	m.setTasks(1, 8)
	got := run(m, clk, 1, 3*time.Second)
	if want := []int{0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("profile 1 targets = %v, want %v", got, want)
	}
	m.register(1, 1, clk.Now())
	m.register(2, 1, clk.Now())
	before := m.profiles[1].target
	d := m.schedule(clk.Now())
	if d.targetsChanged || m.profiles[1].target != before || !m.profiles[1].addTime.IsZero() {
		t.Fatalf("with every task placed the backlog must end: %+v", m.profiles[1])
	}
}

func TestLoadDropLowersTargetAndReleasesIdleExecutors(t *testing.T) {
	s := testSettings()
	s.MinExecutors = 2
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := newAllocationManager(s, map[int32]int{0: 1})
	m.setTasks(0, 6)
	run(m, clk, 0, 5*time.Second)
	for id := int64(1); id <= 6; id++ {
		m.register(id, 0, clk.Now())
	}
	if got := m.profiles[0].target; got != 6 {
		t.Fatalf("target = %d, want 6", got)
	}

	// One task left: the target drops at once, but not below min.
	m.setTasks(0, 1)
	d := m.schedule(clk.Now())
	if !d.targetsChanged || m.profiles[0].target != 2 {
		t.Fatalf("after the load drop: changed=%t target=%d, want true and 2", d.targetsChanged, m.profiles[0].target)
	}
	if len(d.release) != 0 {
		t.Fatalf("released %v before the idle timeout", d.release)
	}

	// Just before the idle timeout nothing goes; at it, the idle executors
	// above the target go, highest ids first, and the busy one stays.
	clk.Step(s.ExecutorIdleTimeout - time.Millisecond)
	if d := m.schedule(clk.Now()); len(d.release) != 0 {
		t.Fatalf("released %v before the idle timeout", d.release)
	}
	clk.Step(time.Millisecond)
	d = m.schedule(clk.Now())
	if want := []int64{3, 4, 5, 6}; !slices.Equal(d.release, want) {
		t.Fatalf("released %v, want %v", d.release, want)
	}
	// Released executors are not released twice.
	clk.Step(time.Second)
	if d := m.schedule(clk.Now()); len(d.release) != 0 {
		t.Fatalf("released %v again", d.release)
	}
}

func TestBusyExecutorsAreNeverReleased(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := newAllocationManager(testSettings(), map[int32]int{0: 2})
	for id := int64(1); id <= 3; id++ {
		m.register(id, 0, clk.Now())
	}
	m.profiles[0].target = 3
	m.setTasks(0, 6) // two slots each: all three busy
	for range 100 {
		clk.Step(100 * time.Millisecond)
		if d := m.schedule(clk.Now()); len(d.release) != 0 {
			t.Fatalf("released busy executors %v", d.release)
		}
	}
}

func TestSettingsFromConf(t *testing.T) {
	s, err := SettingsFromConf(map[string]string{
		"spark.dynamicAllocation.minExecutors":            "2",
		"spark.executor.instances":                        "5",
		"spark.dynamicAllocation.maxExecutors":            "50",
		"spark.dynamicAllocation.schedulerBacklogTimeout": "500ms",
		"spark.dynamicAllocation.executorIdleTimeout":     "2min",
		"spark.decommission.enabled":                      "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		MinExecutors: 2, InitialExecutors: 5, MaxExecutors: 50,
		SchedulerBacklogTimeout: 500 * time.Millisecond, SustainedSchedulerBacklogTimeout: 500 * time.Millisecond,
		ExecutorIdleTimeout: 2 * time.Minute, Decommission: true, TaskCPUs: 1, ExecutorCores: 1,
	}
	if s != want {
		t.Fatalf("settings = %+v, want %+v", s, want)
	}
	for _, bad := range []map[string]string{
		{"spark.dynamicAllocation.minExecutors": "5", "spark.dynamicAllocation.maxExecutors": "2"},
		{"spark.dynamicAllocation.executorIdleTimeout": "soon"},
		{"spark.dynamicAllocation.maxExecutors": "0"},
		{"spark.task.cpus": "2"},
	} {
		if _, err := SettingsFromConf(bad); err == nil {
			t.Errorf("SettingsFromConf(%v) succeeded, want an error", bad)
		}
	}
}
