package reconcile

import (
	"errors"
	"fmt"
	"math"
	"time"

	"k8s.io/utils/clock"
)

// Spark's defaults for the settings a Manager reads.
const (
	// DefaultSparkContainerName is the executor container's name unless
	// spark.kubernetes.executor.podTemplateContainerName renames it.
	DefaultSparkContainerName = "spark-kubernetes-executor"
	// DefaultMissingPodDetectDelta is spark.kubernetes.executor.missingPodDetectDelta.
	DefaultMissingPodDetectDelta = 30 * time.Second
	// DefaultDeletedExecutorsCacheTimeout is
	// spark.kubernetes.executor.deletedExecutorsCacheTimeout.
	DefaultDeletedExecutorsCacheTimeout = 180 * time.Second
)

// Config is what a Manager needs to know about one application. The
// durations, the container name and the clock have defaults; the rest must be
// set from the application's Spark configuration.
type Config struct {
	// Namespace of the application's executor pods; copied into every event.
	// Required.
	Namespace string
	// AppID is the Spark application id; copied into every event. Required.
	AppID string

	// DeleteOnTermination is spark.kubernetes.executor.deleteOnTermination,
	// whose Spark default is true: finished pods are deleted. When false they
	// are kept and labelled spark-exec-inactive=true instead.
	DeleteOnTermination bool
	// MissingPodDetectDelta is spark.kubernetes.executor.missingPodDetectDelta:
	// how long after registering an executor may be absent from a full
	// snapshot before it is reported missing. Zero means 30s.
	MissingPodDetectDelta time.Duration
	// DeletedExecutorsCacheTimeout is
	// spark.kubernetes.executor.deletedExecutorsCacheTimeout: how long an
	// executor already reported removed is not reported again. Zero means 180s.
	DeletedExecutorsCacheTimeout time.Duration

	// MaxNumFailures is how many executor failures the application tolerates:
	// spark.executor.maxNumFailures, or DefaultMaxNumFailures when that key is
	// unset. A FAILURE_LIMIT_EXCEEDED event is reported once the failures
	// counted are more than this. Zero is allowed, as in Spark: the first
	// failure exceeds it.
	MaxNumFailures int
	// FailuresValidityInterval is spark.executor.failuresValidityInterval:
	// failures older than this stop counting. Zero means they never expire.
	FailuresValidityInterval time.Duration

	// SparkContainerName is the executor container, whose exit code is the
	// executor's (spark.kubernetes.executor.podTemplateContainerName). Empty
	// means DefaultSparkContainerName.
	SparkContainerName string

	// Clock tells the time of failures and of the removed-executors cache.
	// Nil means the real clock.
	Clock clock.PassiveClock
}

// DefaultMaxNumFailures is Spark's value of spark.executor.maxNumFailures when
// the key is unset (ExecutorFailureTracker.maxNumExecutorFailures): twice the
// number of executors, and at least 3. numExecutors is
// spark.dynamicAllocation.maxExecutors (Spark's default: math.MaxInt32) when
// dynamic allocation is enabled, and spark.executor.instances (0 when unset)
// otherwise. Above math.MaxInt32/2 executors the limit is math.MaxInt32.
func DefaultMaxNumFailures(numExecutors int) int {
	if numExecutors > math.MaxInt32/2 {
		return math.MaxInt32
	}
	return max(3, 2*numExecutors)
}

// withDefaults validates conf and fills in its defaults.
func (conf Config) withDefaults() (Config, error) {
	var errs []error
	if conf.Namespace == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if conf.AppID == "" {
		errs = append(errs, errors.New("application id is required"))
	}
	if conf.MissingPodDetectDelta < 0 {
		errs = append(errs, fmt.Errorf("missing pod detect delta %v is negative", conf.MissingPodDetectDelta))
	}
	if conf.DeletedExecutorsCacheTimeout < 0 {
		errs = append(errs, fmt.Errorf("deleted executors cache timeout %v is negative", conf.DeletedExecutorsCacheTimeout))
	}
	if conf.MaxNumFailures < 0 || conf.MaxNumFailures > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("max number of failures %d is outside [0, %d]", conf.MaxNumFailures, math.MaxInt32))
	}
	if conf.FailuresValidityInterval < 0 {
		errs = append(errs, fmt.Errorf("failures validity interval %v is negative", conf.FailuresValidityInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("lifecycle reconcile config for %s/%s: %w", conf.Namespace, conf.AppID, err)
	}
	if conf.MissingPodDetectDelta == 0 {
		conf.MissingPodDetectDelta = DefaultMissingPodDetectDelta
	}
	if conf.DeletedExecutorsCacheTimeout == 0 {
		conf.DeletedExecutorsCacheTimeout = DefaultDeletedExecutorsCacheTimeout
	}
	if conf.SparkContainerName == "" {
		conf.SparkContainerName = DefaultSparkContainerName
	}
	if conf.Clock == nil {
		conf.Clock = clock.RealClock{}
	}
	return conf, nil
}
