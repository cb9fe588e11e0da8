package allocation

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
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

// The allocator's keys as sparkconf entries: defaults from DefaultConfig,
// bare numbers in the unit Spark's ConfigBuilder declares for each key.
var (
	d                   = DefaultConfig()
	batchSize           = sparkconf.Int(KeyBatchSize, d.BatchSize)
	batchDelay          = sparkconf.Duration(KeyBatchDelay, time.Millisecond, d.BatchDelay)
	allocationMaximum   = sparkconf.Int(KeyAllocationMaximum, d.AllocationMaximum)
	maxPendingPods      = sparkconf.Int(KeyMaxPendingPods, d.MaxPendingPods)
	maxPendingPodsPerRp = sparkconf.Int(KeyMaxPendingPodsPerRp, d.MaxPendingPodsPerRp)
	executorTimeout     = sparkconf.Duration(KeyExecutorTimeout, time.Millisecond, d.ExecutorTimeout)
	executorIdleTimeout = sparkconf.Duration(KeyExecutorIdleTimeout, time.Second, d.ExecutorIdleTimeout)
	deleteOnTermination = sparkconf.Bool(KeyDeleteOnTermination, d.DeleteOnTermination)
)

// ConfigFromSparkConf reads the allocator settings from an application's Spark
// configuration. Unset keys take Spark 4.2's defaults and keys the allocator
// does not read are ignored. Values are parsed as Spark parses them (see
// sparkconf); a value that does not parse is a *sparkconf.Error and one that
// fails Spark's checks a *ConfigError, both naming the key.
func ConfigFromSparkConf(conf map[string]string) (Config, error) {
	c := sparkconf.Conf(conf)
	var (
		cfg Config
		err error
	)
	if cfg.BatchSize, err = batchSize.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.BatchDelay, err = batchDelay.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.AllocationMaximum, err = allocationMaximum.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.MaxPendingPods, err = maxPendingPods.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.MaxPendingPodsPerRp, err = maxPendingPodsPerRp.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.ExecutorTimeout, err = executorTimeout.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.ExecutorIdleTimeout, err = executorIdleTimeout.Get(c); err != nil {
		return Config{}, err
	}
	if cfg.DeleteOnTermination, err = deleteOnTermination.Get(c); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
