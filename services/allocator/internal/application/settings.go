package application

import (
	"fmt"
	"time"

	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// MaxTarget bounds an executor target: far more executors than any
// application runs, low enough that a typo does not ask for billions.
const MaxTarget = 100_000

// Spark keys the scheduler side of the allocator reads, beyond the
// allocation settings of allocation.ConfigFromSparkConf.
var (
	dynamicAllocationEnabled = sparkconf.Bool("spark.dynamicAllocation.enabled", false)
	dynamicMinExecutors      = sparkconf.Int("spark.dynamicAllocation.minExecutors", 0).WithCheck(inTargetRange)
	dynamicInitialExecutors  = sparkconf.Int("spark.dynamicAllocation.initialExecutors", 0).WithCheck(inTargetRange)
	executorInstances        = sparkconf.Int("spark.executor.instances", 0).WithCheck(inTargetRange)
	// roundOnSnapshot is sparkpods' own key; see Settings.RoundOnSnapshot.
	roundOnSnapshot   = sparkconf.Bool("sparkpods.allocation.roundOnSnapshot", true)
	deleteGracePeriod = sparkconf.Duration("spark.kubernetes.dynamicAllocation.deleteGracePeriod", time.Millisecond, 5*time.Second).
				WithCheck(sparkconf.NonNegative[time.Duration])
)

func inTargetRange(n int) error {
	if n < 0 || n > MaxTarget {
		return fmt.Errorf("must be between 0 and %d", MaxTarget)
	}
	return nil
}

// Settings are what the allocator reads from an application's Spark
// configuration.
type Settings struct {
	// Allocation configures Spark's allocation algorithm.
	Allocation allocation.Config
	// InitialExecutors is the target Spark's start() sets for the default
	// profile: with dynamic allocation the largest of minExecutors,
	// initialExecutors and instances, otherwise instances, or 2.
	InitialExecutors int32
	// DecommissionLabel and DecommissionLabelValue are
	// spark.kubernetes.executor.decommissionLabel(Value); no label is set
	// when DecommissionLabel is empty.
	DecommissionLabel      string
	DecommissionLabelValue string
	// DeleteGracePeriod is spark.kubernetes.dynamicAllocation.deleteGracePeriod:
	// how long killed executors may take to stop before their pods are
	// deleted.
	DeleteGracePeriod time.Duration
	// RoundOnSnapshot is sparkpods.allocation.roundOnSnapshot (default
	// true): besides every batch delay, run a round as soon as a new
	// snapshot arrives, so that the next batch is requested the moment the
	// previous one shows up instead of at the next tick.
	//
	// Deviation from Spark, for speed: Spark runs rounds only every
	// spark.kubernetes.allocation.batch.delay (and when targets change with
	// nothing outstanding), which caps a scale-up at one batch per profile
	// per delay. Every other rule still holds: the batch size, the pending
	// caps, the unseen request that blocks its profile, and the creation
	// backoff. false gives Spark's exact pacing.
	//
	// Spark's own key reaches Spark's pacing too: an application that sets
	// spark.kubernetes.allocation.batch.delay explicitly (and does not set
	// sparkpods.allocation.roundOnSnapshot) gets rounds only at that delay,
	// as its driver would run them.
	RoundOnSnapshot bool
}

// ParseSettings reads the settings from a Spark configuration with Spark's
// defaults. An invalid value is a *allocation.ConfigError or a
// *sparkconf.Error, both naming the key.
func ParseSettings(conf map[string]string) (Settings, error) {
	alloc, err := allocation.ConfigFromSparkConf(conf)
	if err != nil {
		return Settings{}, err
	}
	c := sparkconf.Conf(conf)
	s := Settings{Allocation: alloc}
	dynamic, err := dynamicAllocationEnabled.Get(c)
	if err != nil {
		return Settings{}, err
	}
	instances, instancesSet, err := executorInstances.Lookup(c)
	if err != nil {
		return Settings{}, err
	}
	if dynamic {
		minExecs, err := dynamicMinExecutors.Get(c)
		if err != nil {
			return Settings{}, err
		}
		initial, initialSet, err := dynamicInitialExecutors.Lookup(c)
		if err != nil {
			return Settings{}, err
		}
		if !initialSet {
			initial = minExecs
		}
		s.InitialExecutors = int32(max(minExecs, initial, instances))
	} else {
		s.InitialExecutors = 2
		if instancesSet {
			s.InitialExecutors = int32(instances)
		}
	}
	if s.DecommissionLabel, err = sparkconf.ExecutorDecommissionLabel.Get(c); err != nil {
		return Settings{}, err
	}
	if s.DecommissionLabelValue, err = sparkconf.ExecutorDecommissionLabelValue.Get(c); err != nil {
		return Settings{}, err
	}
	if s.DeleteGracePeriod, err = deleteGracePeriod.Get(c); err != nil {
		return Settings{}, err
	}
	if s.RoundOnSnapshot, err = roundOnSnapshot.Get(c); err != nil {
		return Settings{}, err
	}
	_, roundSet := c.Get(roundOnSnapshot.Key)
	if _, delaySet := c.Get(allocation.KeyBatchDelay); delaySet && !roundSet {
		s.RoundOnSnapshot = false
	}
	return s, nil
}
