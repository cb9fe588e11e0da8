package reconcile

import (
	"math"
	"testing"
	"time"

	"k8s.io/utils/clock"
)

func TestDefaultMaxNumFailures(t *testing.T) {
	tests := []struct{ executors, want int }{
		{0, 3},
		{1, 3},
		{2, 4},
		{10, 20},
		{math.MaxInt32 / 2, math.MaxInt32 - 1},
		{math.MaxInt32/2 + 1, math.MaxInt32},
		// Spark's default spark.dynamicAllocation.maxExecutors.
		{math.MaxInt32, math.MaxInt32},
	}
	for _, tt := range tests {
		if got := DefaultMaxNumFailures(tt.executors); got != tt.want {
			t.Errorf("DefaultMaxNumFailures(%d) = %d, want %d", tt.executors, got, tt.want)
		}
	}
}

func TestNewManagerRejectsInvalidConfig(t *testing.T) {
	valid := Config{Namespace: "ns", AppID: "spark-1", MaxNumFailures: 3}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no namespace", func(c *Config) { c.Namespace = "" }},
		{"no application id", func(c *Config) { c.AppID = "" }},
		{"negative detect delta", func(c *Config) { c.MissingPodDetectDelta = -time.Second }},
		{"negative cache timeout", func(c *Config) { c.DeletedExecutorsCacheTimeout = -time.Second }},
		{"negative failure limit", func(c *Config) { c.MaxNumFailures = -1 }},
		{"failure limit beyond Spark's int", func(c *Config) { c.MaxNumFailures = math.MaxInt32 + 1 }},
		{"negative validity interval", func(c *Config) { c.FailuresValidityInterval = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := valid
			tt.edit(&conf)
			if m, err := NewManager(conf); err == nil {
				t.Fatalf("NewManager(%+v) = %v, want an error", conf, m)
			}
		})
	}
}

func TestNewManagerDefaultsToSpark(t *testing.T) {
	m, err := NewManager(Config{Namespace: "ns", AppID: "spark-1"})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	want := Config{
		Namespace:                    "ns",
		AppID:                        "spark-1",
		MissingPodDetectDelta:        30 * time.Second,
		DeletedExecutorsCacheTimeout: 180 * time.Second,
		SparkContainerName:           "spark-kubernetes-executor",
		Clock:                        clock.RealClock{},
	}
	if m.conf != want {
		t.Fatalf("config = %+v, want %+v", m.conf, want)
	}
}
