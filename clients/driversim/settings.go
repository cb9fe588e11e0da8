package driversim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Settings are the spark.dynamicAllocation.* values the simulator acts on,
// with Spark's defaults.
type Settings struct {
	// MinExecutors is spark.dynamicAllocation.minExecutors (default 0).
	MinExecutors int
	// InitialExecutors is the starting target of every profile:
	// max(minExecutors, initialExecutors, spark.executor.instances).
	InitialExecutors int
	// MaxExecutors is spark.dynamicAllocation.maxExecutors (default
	// unbounded).
	MaxExecutors int
	// SchedulerBacklogTimeout is how long tasks must be backlogged before
	// the first request (spark.dynamicAllocation.schedulerBacklogTimeout,
	// 1s).
	SchedulerBacklogTimeout time.Duration
	// SustainedSchedulerBacklogTimeout is the interval of the following,
	// doubling requests while the backlog lasts
	// (spark.dynamicAllocation.sustainedSchedulerBacklogTimeout, default
	// the backlog timeout).
	SustainedSchedulerBacklogTimeout time.Duration
	// ExecutorIdleTimeout is how long an executor runs no task before it is
	// released (spark.dynamicAllocation.executorIdleTimeout, 60s).
	ExecutorIdleTimeout time.Duration
	// Decommission releases idle executors with DecommissionExecutors
	// instead of KillExecutors (spark.decommission.enabled, false).
	Decommission bool
	// TaskCPUs is spark.task.cpus (1); an executor runs cores/TaskCPUs
	// tasks at once.
	TaskCPUs int
	// ExecutorCores is spark.executor.cores (1), the default profile's
	// cores.
	ExecutorCores int
}

// SettingsFromConf reads Settings from a Spark configuration, as Spark's
// ExecutorAllocationManager does, and validates them the same way.
func SettingsFromConf(conf map[string]string) (Settings, error) {
	var (
		s   Settings
		err error
	)
	intKey := func(key string, def int) int {
		v, ok := conf[key]
		if !ok || err != nil {
			return def
		}
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if perr != nil {
			err = fmt.Errorf("%s=%q: not an integer", key, v)
		}
		return n
	}
	durKey := func(key string, def time.Duration) time.Duration {
		v, ok := conf[key]
		if !ok || err != nil {
			return def
		}
		d, perr := parseSparkDuration(v)
		if perr != nil {
			err = fmt.Errorf("%s=%q: %w", key, v, perr)
		}
		return d
	}
	s.MinExecutors = intKey("spark.dynamicAllocation.minExecutors", 0)
	initial := intKey("spark.dynamicAllocation.initialExecutors", s.MinExecutors)
	instances := intKey("spark.executor.instances", 0)
	s.InitialExecutors = max(s.MinExecutors, initial, instances)
	s.MaxExecutors = intKey("spark.dynamicAllocation.maxExecutors", math.MaxInt32)
	s.SchedulerBacklogTimeout = durKey("spark.dynamicAllocation.schedulerBacklogTimeout", time.Second)
	s.SustainedSchedulerBacklogTimeout = durKey("spark.dynamicAllocation.sustainedSchedulerBacklogTimeout", s.SchedulerBacklogTimeout)
	s.ExecutorIdleTimeout = durKey("spark.dynamicAllocation.executorIdleTimeout", 60*time.Second)
	s.TaskCPUs = intKey("spark.task.cpus", 1)
	s.ExecutorCores = intKey("spark.executor.cores", 1)
	if v, ok := conf["spark.decommission.enabled"]; ok && err == nil {
		s.Decommission, err = strconv.ParseBool(strings.TrimSpace(v))
	}
	if err != nil {
		return Settings{}, err
	}
	return s, s.validate()
}

// validate applies the checks of Spark's validateSettings.
func (s Settings) validate() error {
	switch {
	case s.MinExecutors < 0 || s.MaxExecutors < 0:
		return fmt.Errorf("spark.dynamicAllocation.minExecutors (%d) and maxExecutors (%d) must not be negative", s.MinExecutors, s.MaxExecutors)
	case s.MaxExecutors == 0:
		return fmt.Errorf("spark.dynamicAllocation.maxExecutors cannot be 0")
	case s.MinExecutors > s.MaxExecutors:
		return fmt.Errorf("spark.dynamicAllocation.minExecutors (%d) must be at most maxExecutors (%d)", s.MinExecutors, s.MaxExecutors)
	case s.InitialExecutors > s.MaxExecutors:
		return fmt.Errorf("initial executors (%d) must be at most spark.dynamicAllocation.maxExecutors (%d)", s.InitialExecutors, s.MaxExecutors)
	case s.SchedulerBacklogTimeout <= 0 || s.SustainedSchedulerBacklogTimeout <= 0:
		return fmt.Errorf("spark.dynamicAllocation.schedulerBacklogTimeout and sustainedSchedulerBacklogTimeout must be positive")
	case s.ExecutorIdleTimeout <= 0:
		return fmt.Errorf("spark.dynamicAllocation.executorIdleTimeout must be positive")
	case s.TaskCPUs <= 0 || s.ExecutorCores < s.TaskCPUs:
		return fmt.Errorf("spark.executor.cores (%d) must be at least spark.task.cpus (%d) and positive", s.ExecutorCores, s.TaskCPUs)
	}
	return nil
}

// parseSparkDuration reads Spark's time strings: a number with a unit (us,
// ms, s, m or min, h, d), or a bare number of seconds.
func parseSparkDuration(v string) (time.Duration, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	units := []struct {
		suffix string
		unit   time.Duration
	}{
		{"us", time.Microsecond}, {"ms", time.Millisecond}, {"min", time.Minute},
		{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour},
	}
	unit, num := time.Second, v
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			unit, num = u.unit, strings.TrimSuffix(v, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a Spark time string (like 500ms, 1s, 2min)")
	}
	return time.Duration(n) * unit, nil
}
