package main

import "time"

// results are everything one run measured; the report is rendered from
// them alone, so that rendering can be tested with fixed inputs.
type results struct {
	Size             string
	Started, Ended   time.Time
	Machine          machine
	LoadStart        string // /proc/loadavg at the start
	LoadEnd          string
	ScaleUp          []scaleUpRun
	Latency          []latencyRun
	Memory           []memoryPoint
	MemoryNote       string
	APILoad          apiLoad
	FanOut           fanOut
	ControlPlaneTook time.Duration
	// Failures are scenarios that did not complete, with why.
	Failures []string
}

// Leg names of scale-up, in the order they run.
const (
	legDefaults = "(a) sparkpods defaults"
	legSpark    = "(b) Spark's pacing"
	legRaw      = "(c) raw client-go"
)

// scaleUpRun is scenario 1 at one executor count.
type scaleUpRun struct {
	N    int
	Legs []scaleUpLeg
}

// scaleUpLeg is one way of reaching N executors.
type scaleUpLeg struct {
	Name string
	// Exist and Running: from the request (SetExecutorTargets, or the first
	// create of the raw program) until the N-th pod was seen by a watch of
	// the namespace, and until the N-th was seen Running.
	Exist, Running time.Duration
	// RunningAt are the offsets at which each pod was seen Running, sorted:
	// the plot's curve.
	RunningAt []time.Duration
	// Err is why the leg did not finish, if it did not.
	Err string
}

// latencyRun is scenario 2 at one pod count.
type latencyRun struct {
	Pods, Apps  int
	Changes     int
	Rate        float64 // status changes per second, measured
	Window      time.Duration
	Failures    int
	FailureRate float64
	// Subscriber: a WatchSnapshots subscriber of all applications (batch
	// interval 0), from PATCH returned; SubscriberFromSent from PATCH sent.
	Subscriber, SubscriberFromSent distribution
	// RawWatch: a plain client-go watch of the namespace, from PATCH
	// returned: the API server's own share.
	RawWatch distribution
	// Lifecycle: pod failure written → EXECUTOR_REMOVED received by the
	// application's WatchExecutorEvents consumer.
	Lifecycle distribution
	// Lost are changes or failures never received within the wait.
	LostChanges, LostEvents int
}

// memoryPoint is the snapshot service's memory at one pod count.
type memoryPoint struct {
	Pods int
	memory
}

// apiLoad is scenario 4.
type apiLoad struct {
	Window time.Duration
	Rows   []apiLoadRow
	// SparkPerApp: what Spark's drivers issue per application per window:
	// LISTs (one per apiPollingInterval) and watches held.
	PollInterval time.Duration
}

// apiLoadRow is one window of API server counters.
type apiLoadRow struct {
	What string
	Apps int
	// Computed rows are Spark's requests worked out, not measured.
	Computed bool
	Lists    float64
	// Watches is WATCH requests started (apiserver_request_total counts a
	// watch when it ends, so this is the rise in open watches plus the
	// watches that ended in the window).
	Watches      float64
	OpenWatches  float64 // open WATCH requests for pods at the window's end, beyond the control plane's own
	ListBytes    float64
	WatchBytes   float64
	SnapshotCPU  float64 // cores, for sparkpods rows
	ExecutorPods int
}

// fanOut is scenario 5.
type fanOut struct {
	Pods int
	Rate int
	Rows []fanOutRow
}

// fanOutRow is one subscriber count.
type fanOutRow struct {
	Subscribers int
	Changes     int
	// BytesPerChange per subscriber: bytes of change messages received,
	// divided by changes and by subscribers.
	BytesPerChange float64
	// ResetBytes is the size of the initial full snapshot each subscriber
	// received.
	ResetBytes float64
	CPU        float64 // cores used by the snapshot service during the window
	Delivery   distribution
	Lost       int
}
