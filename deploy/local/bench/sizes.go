package main

import (
	"flag"
	"fmt"
	"time"
)

// options are the benchmark's flags.
type options struct {
	size string
	out  string
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.size, "size", "quick", "quick (a few minutes, smaller sizes) or full (the sizes the README quotes)")
	fs.StringVar(&o.out, "out", ".local/bench", "folder for report.md, the plots and the logs")
}

// sizes are what one run measures. Every comparison within a run uses the
// same sizes on the same control plane.
type sizes struct {
	Name string
	// ScaleUp are the executor counts of scenario 1.
	ScaleUp []int
	// Levels are the executor-pod counts of the population scenarios
	// (latency, memory, fan-out), in increasing order, over Apps
	// applications.
	Levels []int
	// LatencyLevels are the levels at which latency is measured; FanOutLevel
	// is the one at which fan-out is.
	LatencyLevels []int
	FanOutLevel   int
	Apps          int
	// ChurnRate status changes per second for Churn; FailureRate pods per
	// second fail during the same window, for the lifecycle consumers.
	ChurnRate   int
	FailureRate int
	Churn       time.Duration
	// FanOutSubscribers and FanOutChurn: subscriber counts of scenario 5 and
	// the churn window each of them gets.
	FanOutSubscribers []int
	FanOutChurn       time.Duration
	// LoadApps are the registered-application counts of scenario 4, each
	// with LoadPodsPerApp executor pods, measured over LoadWindow.
	LoadApps       []int
	LoadPodsPerApp int
	LoadWindow     time.Duration
	// PollerApps is how many driver-like pollers issue Spark's requests for
	// real.
	PollerApps int
	// BigLevelBudget bounds the time spent creating the last (largest)
	// memory level; the report says if it was cut short.
	BigLevelBudget time.Duration
}

func sizesFor(name string) (sizes, error) {
	switch name {
	case "quick":
		return sizes{
			Name:              "quick",
			ScaleUp:           []int{100, 500},
			Levels:            []int{1000, 5000},
			LatencyLevels:     []int{1000, 5000},
			FanOutLevel:       5000,
			Apps:              100,
			ChurnRate:         50,
			FailureRate:       5,
			Churn:             15 * time.Second,
			FanOutSubscribers: []int{1, 10, 100},
			FanOutChurn:       10 * time.Second,
			LoadApps:          []int{1, 100},
			LoadPodsPerApp:    5,
			LoadWindow:        30 * time.Second,
			PollerApps:        100,
			BigLevelBudget:    2 * time.Minute,
		}, nil
	case "full":
		return sizes{
			Name:          "full",
			ScaleUp:       []int{100, 1000, 5000},
			Levels:        []int{1000, 10000, 50000},
			LatencyLevels: []int{1000, 10000},
			FanOutLevel:   10000,
			Apps:          100,
			ChurnRate:     100,
			FailureRate:   10,
			// Longer than the snapshot service's 30 s re-list, so that one
			// lands inside the window.
			Churn:             35 * time.Second,
			FanOutSubscribers: []int{1, 10, 100},
			FanOutChurn:       20 * time.Second,
			LoadApps:          []int{1, 100, 1000},
			LoadPodsPerApp:    5,
			LoadWindow:        60 * time.Second,
			PollerApps:        100,
			BigLevelBudget:    6 * time.Minute,
		}, nil
	default:
		return sizes{}, fmt.Errorf("--size %q: want quick or full", name)
	}
}
