package allocation

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Spark configuration keys the allocator reads.
const (
	KeyBatchSize           = "spark.kubernetes.allocation.batch.size"
	KeyBatchDelay          = "spark.kubernetes.allocation.batch.delay"
	KeyAllocationMaximum   = "spark.kubernetes.allocation.maximum"
	KeyMaxPendingPods      = "spark.kubernetes.allocation.maxPendingPods"
	KeyMaxPendingPodsPerRp = "spark.kubernetes.allocation.maxPendingPodsPerRp"
	KeyExecutorTimeout     = "spark.kubernetes.allocation.executor.timeout"
	KeyExecutorIdleTimeout = "spark.dynamicAllocation.executorIdleTimeout"
	KeyDeleteOnTermination = "spark.kubernetes.executor.deleteOnTermination"
)

// Unlimited is Spark's Int.MaxValue, the default of the caps that are off
// unless configured (allocation maximum, pending pods).
const Unlimited = math.MaxInt32

// Config holds the allocator settings of one application, with Spark 4.2's
// meaning and defaults. Build it with DefaultConfig or ConfigFromSparkConf; a
// Config is a plain value and safe to copy.
type Config struct {
	// BatchSize is spark.kubernetes.allocation.batch.size: the most executor
	// pods one round requests for one resource profile. Must be positive.
	BatchSize int
	// BatchDelay is spark.kubernetes.allocation.batch.delay: how often a
	// round runs when nothing triggers one earlier. Must be more than 100ms.
	BatchDelay time.Duration
	// AllocationMaximum is spark.kubernetes.allocation.maximum, a lifetime
	// cap on executor ids: a round that would issue an id >= AllocationMaximum
	// stops with a *MaximumExceededError, so at most AllocationMaximum-1
	// executors are ever requested (none at all with 1). Must be positive.
	AllocationMaximum int
	// MaxPendingPods is spark.kubernetes.allocation.maxPendingPods: the most
	// executors not yet running (pending, or requested and not yet seen)
	// across all resource profiles. Must be positive.
	MaxPendingPods int
	// MaxPendingPodsPerRp is spark.kubernetes.allocation.maxPendingPodsPerRp:
	// the same cap for each resource profile. Must be positive, and unless it
	// is Unlimited, at most MaxPendingPods.
	MaxPendingPodsPerRp int
	// ExecutorTimeout is spark.kubernetes.allocation.executor.timeout, the
	// floor of PodCreationTimeout. Must be positive.
	ExecutorTimeout time.Duration
	// ExecutorIdleTimeout is spark.dynamicAllocation.executorIdleTimeout
	// (whole seconds in Spark): pending pods and requests younger than this
	// are never deleted as excess. It applies with or without dynamic
	// allocation. Must not be negative.
	ExecutorIdleTimeout time.Duration
	// DeleteOnTermination is spark.kubernetes.executor.deleteOnTermination:
	// whether timed-out requests are deleted, and whether stopping the
	// application deletes its executor pods.
	DeleteOnTermination bool
}

// DefaultConfig returns Spark 4.2's defaults.
func DefaultConfig() Config {
	return Config{
		BatchSize:           20,
		BatchDelay:          time.Second,
		AllocationMaximum:   Unlimited,
		MaxPendingPods:      Unlimited,
		MaxPendingPodsPerRp: Unlimited,
		ExecutorTimeout:     600 * time.Second,
		ExecutorIdleTimeout: 60 * time.Second,
		DeleteOnTermination: true,
	}
}

// PodCreationTimeout is how long a requested executor may stay unseen in any
// snapshot before the allocator gives up on it: the larger of five batch
// delays and ExecutorTimeout, as in Spark.
func (c Config) PodCreationTimeout() time.Duration {
	return max(5*c.BatchDelay, c.ExecutorTimeout)
}

// ConfigError reports an invalid allocator setting. Key is the Spark key at
// fault, for a server to name in an InvalidArgument status.
type ConfigError struct {
	// Key is the Spark configuration key.
	Key string
	// Value is the offending value, as given or, for a failed check, in the
	// key's unit as Spark prints it.
	Value string
	msg   string
}

// Error names the key and says what is wrong, in Spark's words where Spark
// has them.
func (e *ConfigError) Error() string { return e.msg }

// invalid reports a value that parsed but failed Spark's check, worded as
// Spark's ConfigBuilder.checkValue words it.
func invalid(key, value, reason string) *ConfigError {
	return &ConfigError{Key: key, Value: value, msg: fmt.Sprintf("'%s' in %s is invalid. %s", value, key, reason)}
}

// Validate checks c with Spark's checks and messages, in the order Spark's
// allocator reads the settings.
func (c Config) Validate() error {
	switch {
	case c.BatchSize <= 0:
		return invalid(KeyBatchSize, strconv.Itoa(c.BatchSize), "Allocation batch size should be a positive integer")
	case c.BatchDelay <= 100*time.Millisecond:
		return invalid(KeyBatchDelay, strconv.FormatInt(c.BatchDelay.Milliseconds(), 10), "Allocation batch delay must be greater than 0.1s.")
	case c.AllocationMaximum <= 0:
		return invalid(KeyAllocationMaximum, strconv.Itoa(c.AllocationMaximum), "Allocation maximum should be a positive integer")
	case c.MaxPendingPods <= 0:
		return invalid(KeyMaxPendingPods, strconv.Itoa(c.MaxPendingPods), "Maximum number of pending pods should be a positive integer")
	case c.MaxPendingPodsPerRp <= 0:
		return invalid(KeyMaxPendingPodsPerRp, strconv.Itoa(c.MaxPendingPodsPerRp), "Maximum number of pending pods per resource profile should be a positive integer")
	case c.MaxPendingPodsPerRp != Unlimited && c.MaxPendingPodsPerRp > c.MaxPendingPods:
		// Spark checks this with require() when it builds the allocator.
		return &ConfigError{
			Key:   KeyMaxPendingPodsPerRp,
			Value: strconv.Itoa(c.MaxPendingPodsPerRp),
			msg: fmt.Sprintf("requirement failed: Maximum pending pods per resource profile ID (%d) must be less than or equal to maximum pending pods (%d). (%s=%d, %s=%d)",
				c.MaxPendingPodsPerRp, c.MaxPendingPods, KeyMaxPendingPodsPerRp, c.MaxPendingPodsPerRp, KeyMaxPendingPods, c.MaxPendingPods),
		}
	case c.ExecutorTimeout <= 0:
		return invalid(KeyExecutorTimeout, strconv.FormatInt(c.ExecutorTimeout.Milliseconds(), 10), "Allocation executor timeout must be a positive time value.")
	case c.ExecutorIdleTimeout < 0:
		return invalid(KeyExecutorIdleTimeout, strconv.FormatInt(int64(c.ExecutorIdleTimeout/time.Second), 10), "Timeout must be >= 0.")
	}
	return nil
}

// ConfigFromSparkConf reads the allocator settings from an application's Spark
// configuration. Unset keys take Spark 4.2's defaults and keys the allocator
// does not read are ignored. Values are parsed as Spark parses them: integers
// and booleans after trimming, durations with a unit suffix (us, ms, s, m,
// min, h, d) or as a bare number in the key's own unit (milliseconds for the
// batch delay and the executor timeout, seconds for the idle timeout),
// truncated to that unit. Any error is a *ConfigError naming the key.
func ConfigFromSparkConf(conf map[string]string) (Config, error) {
	c := DefaultConfig()
	var err error
	if c.BatchSize, err = intSetting(conf, KeyBatchSize, c.BatchSize); err != nil {
		return Config{}, err
	}
	if c.BatchDelay, err = timeSetting(conf, KeyBatchDelay, time.Millisecond, c.BatchDelay); err != nil {
		return Config{}, err
	}
	if c.AllocationMaximum, err = intSetting(conf, KeyAllocationMaximum, c.AllocationMaximum); err != nil {
		return Config{}, err
	}
	if c.MaxPendingPods, err = intSetting(conf, KeyMaxPendingPods, c.MaxPendingPods); err != nil {
		return Config{}, err
	}
	if c.MaxPendingPodsPerRp, err = intSetting(conf, KeyMaxPendingPodsPerRp, c.MaxPendingPodsPerRp); err != nil {
		return Config{}, err
	}
	if c.ExecutorTimeout, err = timeSetting(conf, KeyExecutorTimeout, time.Millisecond, c.ExecutorTimeout); err != nil {
		return Config{}, err
	}
	if c.ExecutorIdleTimeout, err = timeSetting(conf, KeyExecutorIdleTimeout, time.Second, c.ExecutorIdleTimeout); err != nil {
		return Config{}, err
	}
	if c.DeleteOnTermination, err = boolSetting(conf, KeyDeleteOnTermination, c.DeleteOnTermination); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// javaTrim trims what Java's String.trim trims: every character up to U+0020.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

func intSetting(conf map[string]string, key string, def int) (int, error) {
	raw, ok := conf[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseInt(javaTrim(raw), 10, 32)
	if err != nil {
		return 0, &ConfigError{Key: key, Value: raw, msg: fmt.Sprintf("%s should be int, but was %s", key, raw)}
	}
	return int(v), nil
}

func boolSetting(conf map[string]string, key string, def bool) (bool, error) {
	raw, ok := conf[key]
	if !ok {
		return def, nil
	}
	switch v := javaTrim(raw); {
	case strings.EqualFold(v, "true"):
		return true, nil
	case strings.EqualFold(v, "false"):
		return false, nil
	}
	return false, &ConfigError{Key: key, Value: raw, msg: fmt.Sprintf("%s should be boolean, but was %s", key, raw)}
}

// sparkTime is the form Spark's JavaUtils.timeStringAs accepts.
var sparkTime = regexp.MustCompile(`^(-?[0-9]+)([a-z]+)?$`)

// timeSuffixes are Spark's duration suffixes.
var timeSuffixes = map[string]time.Duration{
	"us":  time.Microsecond,
	"ms":  time.Millisecond,
	"s":   time.Second,
	"m":   time.Minute,
	"min": time.Minute,
	"h":   time.Hour,
	"d":   24 * time.Hour,
}

// timeSetting parses a Spark duration into a count of unit (the key's unit in
// Spark's ConfigBuilder), truncating as Java's TimeUnit.convert does, and
// returns it as a time.Duration.
func timeSetting(conf map[string]string, key string, unit, def time.Duration) (time.Duration, error) {
	raw, ok := conf[key]
	if !ok {
		return def, nil
	}
	bad := func(why string) error {
		return &ConfigError{Key: key, Value: raw, msg: fmt.Sprintf(
			"%s should be a time such as 50s, 100ms or 250us (suffixes us, ms, s, m or min, h, d; a bare number is in %s), but was %s: %s",
			key, unitName(unit), raw, why)}
	}
	m := sparkTime.FindStringSubmatch(strings.ToLower(javaTrim(raw)))
	if m == nil {
		return 0, bad("not a whole number with an optional suffix")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, bad("number out of range")
	}
	from := unit
	if m[2] != "" {
		var ok bool
		if from, ok = timeSuffixes[m[2]]; !ok {
			return 0, bad(fmt.Sprintf("unknown suffix %q", m[2]))
		}
	}
	// Convert to a whole count of unit first, truncating toward zero, so that
	// "1500ms" for a key in seconds is 1s as in Spark.
	var count int64
	if from >= unit {
		f := int64(from / unit)
		if n > math.MaxInt64/f || n < math.MinInt64/f {
			return 0, bad("too large")
		}
		count = n * f
	} else {
		count = n / int64(unit/from)
	}
	if count > int64(math.MaxInt64/unit) || count < int64(math.MinInt64/unit) {
		return 0, bad("too large")
	}
	return time.Duration(count) * unit, nil
}

func unitName(unit time.Duration) string {
	if unit == time.Second {
		return "seconds"
	}
	return "milliseconds"
}
