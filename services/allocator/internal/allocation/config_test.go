package allocation_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/services/allocator/internal/allocation"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

func TestConfigDefaultsAreSpark42s(t *testing.T) {
	got, err := allocation.ConfigFromSparkConf(map[string]string{"spark.executor.memory": "4g"})
	if err != nil {
		t.Fatal(err)
	}
	want := allocation.Config{
		BatchSize:           20,
		BatchDelay:          time.Second,
		AllocationMaximum:   math.MaxInt32,
		MaxPendingPods:      math.MaxInt32,
		MaxPendingPodsPerRp: math.MaxInt32,
		ExecutorTimeout:     600 * time.Second,
		ExecutorIdleTimeout: 60 * time.Second,
		DeleteOnTermination: true,
	}
	if got != want {
		t.Fatalf("ConfigFromSparkConf(no allocator keys) = %+v, want %+v", got, want)
	}
	if got != allocation.DefaultConfig() {
		t.Fatalf("DefaultConfig() = %+v, want %+v", allocation.DefaultConfig(), got)
	}
	if got := got.PodCreationTimeout(); got != 600*time.Second {
		t.Errorf("PodCreationTimeout() = %v, want 600s", got)
	}
}

func TestPodCreationTimeoutIsAtLeastFiveBatchDelays(t *testing.T) {
	c, err := allocation.ConfigFromSparkConf(map[string]string{
		allocation.KeyBatchDelay:      "200s",
		allocation.KeyExecutorTimeout: "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PodCreationTimeout(); got != 1000*time.Second {
		t.Errorf("PodCreationTimeout() = %v, want 1000s", got)
	}
}

func TestConfigFromSparkConfParsesValuesAsSparkDoes(t *testing.T) {
	tests := []struct {
		name string
		conf map[string]string
		get  func(allocation.Config) any
		want any
	}{
		{"batch size", map[string]string{allocation.KeyBatchSize: " 7 "}, func(c allocation.Config) any { return c.BatchSize }, 7},
		{"batch size with sign", map[string]string{allocation.KeyBatchSize: "+3"}, func(c allocation.Config) any { return c.BatchSize }, 3},
		{"batch delay with unit", map[string]string{allocation.KeyBatchDelay: "2s"}, func(c allocation.Config) any { return c.BatchDelay }, 2 * time.Second},
		{"batch delay bare number is milliseconds", map[string]string{allocation.KeyBatchDelay: "101"}, func(c allocation.Config) any { return c.BatchDelay }, 101 * time.Millisecond},
		{"batch delay upper case", map[string]string{allocation.KeyBatchDelay: "500MS"}, func(c allocation.Config) any { return c.BatchDelay }, 500 * time.Millisecond},
		{"executor timeout minutes", map[string]string{allocation.KeyExecutorTimeout: "10min"}, func(c allocation.Config) any { return c.ExecutorTimeout }, 10 * time.Minute},
		{"executor timeout bare number", map[string]string{allocation.KeyExecutorTimeout: "1000"}, func(c allocation.Config) any { return c.ExecutorTimeout }, time.Second},
		{"executor timeout microseconds truncate to milliseconds", map[string]string{allocation.KeyExecutorTimeout: "1999us"}, func(c allocation.Config) any { return c.ExecutorTimeout }, time.Millisecond},
		{"idle timeout bare number is seconds", map[string]string{allocation.KeyExecutorIdleTimeout: "30"}, func(c allocation.Config) any { return c.ExecutorIdleTimeout }, 30 * time.Second},
		{"idle timeout truncates to seconds", map[string]string{allocation.KeyExecutorIdleTimeout: "1500ms"}, func(c allocation.Config) any { return c.ExecutorIdleTimeout }, time.Second},
		{"idle timeout zero", map[string]string{allocation.KeyExecutorIdleTimeout: "0"}, func(c allocation.Config) any { return c.ExecutorIdleTimeout }, time.Duration(0)},
		{"idle timeout hours", map[string]string{allocation.KeyExecutorIdleTimeout: "1h"}, func(c allocation.Config) any { return c.ExecutorIdleTimeout }, time.Hour},
		{"maximum", map[string]string{allocation.KeyAllocationMaximum: "100"}, func(c allocation.Config) any { return c.AllocationMaximum }, 100},
		{"per-profile cap equal to the global cap", map[string]string{allocation.KeyMaxPendingPods: "5", allocation.KeyMaxPendingPodsPerRp: "5"}, func(c allocation.Config) any { return c.MaxPendingPodsPerRp }, 5},
		{"per-profile cap unlimited beside a global cap", map[string]string{allocation.KeyMaxPendingPods: "5"}, func(c allocation.Config) any { return c.MaxPendingPodsPerRp }, math.MaxInt32},
		{"delete on termination", map[string]string{allocation.KeyDeleteOnTermination: " FALSE"}, func(c allocation.Config) any { return c.DeleteOnTermination }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := allocation.ConfigFromSparkConf(tt.conf)
			if err != nil {
				t.Fatalf("ConfigFromSparkConf(%v): %v", tt.conf, err)
			}
			if got := tt.get(c); got != tt.want {
				t.Errorf("ConfigFromSparkConf(%v) gives %v, want %v", tt.conf, got, tt.want)
			}
		})
	}
}

func TestConfigFromSparkConfRejectsBadValuesNamingTheKey(t *testing.T) {
	tests := []struct {
		name    string
		conf    map[string]string
		key     string
		message string
	}{
		// Spark's suite: "SPARK-49447: Prevent small values less than 100
		// for batch delay".
		{"batch delay of 1ms", map[string]string{allocation.KeyBatchDelay: "1"}, allocation.KeyBatchDelay,
			"'1' in spark.kubernetes.allocation.batch.delay is invalid. Allocation batch delay must be greater than 0.1s."},
		{"batch delay of exactly 100ms", map[string]string{allocation.KeyBatchDelay: "100ms"}, allocation.KeyBatchDelay,
			"Allocation batch delay must be greater than 0.1s."},
		{"batch delay truncated to 0ms", map[string]string{allocation.KeyBatchDelay: "999us"}, allocation.KeyBatchDelay,
			"'0' in spark.kubernetes.allocation.batch.delay is invalid."},
		{"batch delay fraction", map[string]string{allocation.KeyBatchDelay: "1.5s"}, allocation.KeyBatchDelay, "not a duration"},
		{"batch delay unknown suffix", map[string]string{allocation.KeyBatchDelay: "1sec"}, allocation.KeyBatchDelay, `unknown duration suffix "sec"`},
		{"batch delay empty", map[string]string{allocation.KeyBatchDelay: ""}, allocation.KeyBatchDelay, "not a duration"},
		{"batch delay too large", map[string]string{allocation.KeyBatchDelay: "9223372036854775807d"}, allocation.KeyBatchDelay, "duration out of range"},
		{"batch size zero", map[string]string{allocation.KeyBatchSize: "0"}, allocation.KeyBatchSize,
			"'0' in spark.kubernetes.allocation.batch.size is invalid. Allocation batch size should be a positive integer"},
		{"batch size not a number", map[string]string{allocation.KeyBatchSize: "ten"}, allocation.KeyBatchSize,
			`spark.kubernetes.allocation.batch.size="ten": want a whole number`},
		{"batch size beyond int", map[string]string{allocation.KeyBatchSize: "2147483648"}, allocation.KeyBatchSize, "want a whole number"},
		{"maximum zero", map[string]string{allocation.KeyAllocationMaximum: "0"}, allocation.KeyAllocationMaximum,
			"Allocation maximum should be a positive integer"},
		{"max pending pods negative", map[string]string{allocation.KeyMaxPendingPods: "-1"}, allocation.KeyMaxPendingPods,
			"Maximum number of pending pods should be a positive integer"},
		{"per-profile cap zero", map[string]string{allocation.KeyMaxPendingPodsPerRp: "0"}, allocation.KeyMaxPendingPodsPerRp, "positive integer"},
		{"per-profile cap above the global cap", map[string]string{allocation.KeyMaxPendingPods: "5", allocation.KeyMaxPendingPodsPerRp: "10"}, allocation.KeyMaxPendingPodsPerRp,
			"requirement failed: Maximum pending pods per resource profile ID (10) must be less than or equal to maximum pending pods (5)."},
		{"executor timeout zero", map[string]string{allocation.KeyExecutorTimeout: "0s"}, allocation.KeyExecutorTimeout,
			"Allocation executor timeout must be a positive time value."},
		{"idle timeout negative", map[string]string{allocation.KeyExecutorIdleTimeout: "-1"}, allocation.KeyExecutorIdleTimeout,
			"'-1' in spark.dynamicAllocation.executorIdleTimeout is invalid. Timeout must be >= 0."},
		{"delete on termination not a boolean", map[string]string{allocation.KeyDeleteOnTermination: "yes"}, allocation.KeyDeleteOnTermination,
			`spark.kubernetes.executor.deleteOnTermination="yes": want true or false`},
	}
	unparsable := map[string]bool{
		"batch delay fraction": true, "batch delay unknown suffix": true, "batch delay empty": true,
		"batch delay too large": true, "batch size not a number": true, "batch size beyond int": true,
		"delete on termination not a boolean": true,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := allocation.ConfigFromSparkConf(tt.conf)
			// A value that does not parse is a *sparkconf.Error, one that
			// fails Spark's checks a *ConfigError; both carry the key.
			var (
				ce  *allocation.ConfigError
				pe  *sparkconf.Error
				key string
			)
			switch {
			case unparsable[tt.name] && errors.As(err, &pe):
				key = pe.Key
			case !unparsable[tt.name] && errors.As(err, &ce):
				key = ce.Key
			default:
				t.Fatalf("ConfigFromSparkConf(%v) = %v (%T), want a *sparkconf.Error for a value that does not parse, else a *ConfigError", tt.conf, err, err)
			}
			if key != tt.key {
				t.Errorf("error key = %q, want %q", key, tt.key)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error = %q, want it to contain %q", err, tt.message)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error = %q does not name %s", err, tt.key)
			}
		})
	}
}

func TestNewAllocatorValidatesItsConfig(t *testing.T) {
	bad := allocation.DefaultConfig()
	bad.BatchSize = 0
	if _, err := allocation.NewAllocator(allocation.AllocatorConfig{Config: bad, Pods: &fakePods{}}); err == nil {
		t.Error("NewAllocator with batch size 0: want an error")
	}
	if _, err := allocation.NewAllocator(allocation.AllocatorConfig{Config: allocation.DefaultConfig()}); err == nil {
		t.Error("NewAllocator without a PodWriter: want an error")
	}
	if _, err := allocation.NewAllocator(allocation.AllocatorConfig{Config: allocation.DefaultConfig(), Pods: &fakePods{}, LastExecutorID: -1}); err == nil {
		t.Error("NewAllocator with a negative last executor id: want an error")
	}
}
