package runner

import (
	"math"
	"time"

	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// The Spark settings the lifecycle service reads, with Spark's units and
// defaults (SPARK.md §5 and §8.2).
var (
	eventProcessingInterval = sparkconf.Duration("spark.kubernetes.executor.eventProcessingInterval",
		time.Second, time.Second).WithCheck(sparkconf.Positive[time.Duration])
	missingPodDetectDelta = sparkconf.Duration("spark.kubernetes.executor.missingPodDetectDelta",
		time.Millisecond, reconcile.DefaultMissingPodDetectDelta).WithCheck(sparkconf.Positive[time.Duration])
	deletedExecutorsCacheTimeout = sparkconf.Duration("spark.kubernetes.executor.deletedExecutorsCacheTimeout",
		time.Second, reconcile.DefaultDeletedExecutorsCacheTimeout).WithCheck(sparkconf.NonNegative[time.Duration])
	maxNumFailures           = sparkconf.Int("spark.executor.maxNumFailures", 0).WithCheck(sparkconf.NonNegative[int])
	failuresValidityInterval = sparkconf.Duration("spark.executor.failuresValidityInterval",
		time.Millisecond, 0).WithCheck(sparkconf.NonNegative[time.Duration])
	dynamicAllocationEnabled = sparkconf.Bool("spark.dynamicAllocation.enabled", false)
	dynamicMaxExecutors      = sparkconf.Int("spark.dynamicAllocation.maxExecutors", math.MaxInt32)
	executorInstances        = sparkconf.Int("spark.executor.instances", 0)
)

// appConfig is what an application's Spark configuration says about its
// lifecycle handling.
type appConfig struct {
	interval  time.Duration
	reconcile reconcile.Config
}

// configFor reads an application's Spark configuration. A value that does
// not parse is an error naming the key.
func configFor(namespace, appID string, conf sparkconf.Conf) (appConfig, error) {
	var (
		c   appConfig
		err error
	)
	rc := reconcile.Config{Namespace: namespace, AppID: appID}
	if c.interval, err = eventProcessingInterval.Get(conf); err != nil {
		return c, err
	}
	if rc.DeleteOnTermination, err = sparkconf.ExecutorDeleteOnTermination.Get(conf); err != nil {
		return c, err
	}
	if rc.MissingPodDetectDelta, err = missingPodDetectDelta.Get(conf); err != nil {
		return c, err
	}
	if rc.DeletedExecutorsCacheTimeout, err = deletedExecutorsCacheTimeout.Get(conf); err != nil {
		return c, err
	}
	if rc.FailuresValidityInterval, err = failuresValidityInterval.Get(conf); err != nil {
		return c, err
	}
	if rc.SparkContainerName, err = sparkconf.ExecutorPodTemplateContainerName.Get(conf); err != nil {
		return c, err
	}
	if rc.MaxNumFailures, err = maxFailures(conf); err != nil {
		return c, err
	}
	c.reconcile = rc
	return c, nil
}

// maxFailures is Spark's ExecutorFailureTracker.maxNumExecutorFailures.
func maxFailures(conf sparkconf.Conf) (int, error) {
	n, set, err := maxNumFailures.Lookup(conf)
	if err != nil || set {
		return n, err
	}
	dynamic, err := dynamicAllocationEnabled.Get(conf)
	if err != nil {
		return 0, err
	}
	executors := executorInstances
	if dynamic {
		executors = dynamicMaxExecutors
	}
	num, err := executors.Get(conf)
	if err != nil {
		return 0, err
	}
	return reconcile.DefaultMaxNumFailures(num), nil
}
