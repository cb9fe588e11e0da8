package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runningAt spreads n pods evenly over total.
func runningAt(n int, total time.Duration) []time.Duration {
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = total * time.Duration(i+1) / time.Duration(n)
	}
	return at
}

func syntheticResults() results {
	started := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return results{
		Size:    "quick",
		Started: started, Ended: started.Add(10 * time.Minute),
		Machine:          machine{CPUs: 2, CPUModel: "Test CPU", MemTotal: "7.8 GiB", Kernel: "Linux 6.1", Go: "go1.26.8", Commit: "abc1234"},
		LoadStart:        "0.10 0.20 0.30",
		LoadEnd:          "1.50 1.20 0.90",
		ControlPlaneTook: 12 * time.Second,
		Failures:         []string{"scenario 9: broke"},
		ScaleUp: []scaleUpRun{
			{N: 100, Legs: []scaleUpLeg{
				{Name: legDefaults, Exist: 4 * time.Second, Running: 11 * time.Second, RunningAt: runningAt(100, 11*time.Second)},
				{Name: legSpark, Exist: 20 * time.Second, Running: 25 * time.Second, RunningAt: runningAt(100, 25*time.Second)},
				{Name: legRaw, Exist: 3 * time.Second, Running: 10 * time.Second, RunningAt: runningAt(100, 10*time.Second)},
			}},
			{N: 500, Legs: []scaleUpLeg{
				{Name: legDefaults, Exist: 20 * time.Second, Running: 70500 * time.Millisecond, RunningAt: runningAt(500, 70500*time.Millisecond)},
				{Name: legSpark, Err: "timed out | after 5m"},
				{Name: legRaw, Exist: 15 * time.Second, Running: 50 * time.Second, RunningAt: runningAt(500, 50*time.Second)},
			}},
		},
		Latency: []latencyRun{
			{Pods: 1000, Apps: 100, Changes: 750, Rate: 49.8, Window: 15 * time.Second, Failures: 75, FailureRate: 5,
				Subscriber:         distribution{N: 750, P50: 4 * time.Millisecond, P99: 20 * time.Millisecond, Max: 31 * time.Millisecond},
				SubscriberFromSent: distribution{N: 750, P50: 6 * time.Millisecond, P99: 24 * time.Millisecond},
				RawWatch:           distribution{N: 750, P50: 2 * time.Millisecond, P99: 9 * time.Millisecond},
				Lifecycle:          distribution{N: 75, P50: 8 * time.Millisecond, P99: 30 * time.Millisecond}},
			{Pods: 5000, Apps: 100, Changes: 750, Rate: 50,
				Subscriber:  distribution{N: 740, P50: 9 * time.Millisecond, P99: 62 * time.Millisecond, Max: 120 * time.Millisecond},
				LostChanges: 10, LostEvents: 2},
		},
		Memory: []memoryPoint{
			{Pods: 1000, memory: memory{HeapLive: 5 << 20, HeapInuse: 6 << 20, RSS: 20 << 20}},
			{Pods: 5000, memory: memory{HeapLive: 5<<20 + 4000*800, HeapInuse: 10 << 20, RSS: 30 << 20}},
		},
		MemoryNote: "the largest level was cut short at 5000 pods",
		APILoad: apiLoad{Window: 30 * time.Second, PollInterval: 30 * time.Second, Rows: []apiLoadRow{
			{What: "sparkpods (measured)", Apps: 1, Lists: 1, Watches: 1, OpenWatches: 1, ListBytes: 2048, WatchBytes: 512, SnapshotCPU: 0.01, ExecutorPods: 5},
			{What: "Spark drivers (computed)", Apps: 1, Computed: true, Lists: 1, Watches: 1, OpenWatches: 1, ExecutorPods: 5},
			{What: "Spark-like pollers (measured)", Apps: 100, Lists: 99, Watches: 100, OpenWatches: 100, ListBytes: 1 << 20, ExecutorPods: 500},
			{What: "sparkpods (measured)", Apps: 100, Lists: 1, Watches: 1, OpenWatches: 1, ListBytes: 300 << 10, SnapshotCPU: 0.02, ExecutorPods: 500},
			{What: "Spark drivers (computed)", Apps: 100, Computed: true, Lists: 100, Watches: 100, OpenWatches: 100, ExecutorPods: 500},
		}},
		FanOut: fanOut{Pods: 5000, Rate: 50, Rows: []fanOutRow{
			{Subscribers: 1, Changes: 500, BytesPerChange: 300, ResetBytes: 2 << 20, CPU: 0.05,
				Delivery: distribution{N: 500, P50: 3 * time.Millisecond, P99: 12 * time.Millisecond}},
			{Subscribers: 100, Changes: 500, BytesPerChange: 302, ResetBytes: 2 << 20, CPU: 0.4,
				Delivery: distribution{N: 50000, P50: 5 * time.Millisecond, P99: 40 * time.Millisecond}, Lost: 3},
		}},
	}
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	rep, err := writeReport(dir, syntheticResults())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"2026-03-04 05:06 UTC",
		"2 CPUs (Test CPU), 7.8 GiB memory, Linux 6.1, go1.26.8, commit abc1234",
		"0.10 0.20 0.30 at the start → 1.50 1.20 0.90 at the end",
		"Control plane ready in 12.00 s",
		"scenario 9: broke",
		// Scale-up: 11 s / 10 s meets the goal; 70.5 s / 50 s misses it.
		"Goal: (a) ≤ 1.25× (c) time to 100 Running: met: 1.10×, 12% under.",
		"Goal: (a) ≤ 1.25× (c) time to 500 Running: missed: 1.41×, 13% over.",
		"| 2.50×",
		"(b) Spark's pacing did not finish: timed out | after 5m",
		"![pods Running over time, N = 100](scaleup-100.png)",
		// Latency.
		"subscriber p99 at 1000 pods ≤ 50.0 ms: met: 20.0 ms, 60% under.",
		"subscriber p99 at 5000 pods ≤ 50.0 ms: missed: 62.0 ms, 24% over.",
		"6.0 ms / 24.0 ms",
		"75 at 5.0/s",
		"10 changes, 2 events",
		// Memory: 800 B per pod marginal.
		"Goal: ≤ 1 KB per pod (marginal, the slope through the levels): met: 800 B/pod, 22% under.",
		"linear: too few levels to tell",
		"Note: the largest level was cut short at 5000 pods",
		"5243 B", // 5 MiB over 1000 pods
		// API load.
		"most seen at 1, 100 applications: met: 1, at the goal.",
		"0.020 cores",
		"300.0 KiB",
		// Fan-out.
		"met: 300 B at 1 → 302 B at 100 subscribers",
		"2.0 MiB",
		// Growth.
		"| Scale-up (a) sparkpods defaults: time to N Running | N",
		"cost ∝ work^",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(md, bad) {
			t.Errorf("report.md holds %q", bad)
		}
	}
	for _, want := range []string{"Scale-up to 500, (a) vs (c)", "missed: 1.41×, 13% over", "Pod watches per snapshot replica"} {
		if !strings.Contains(rep.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, rep.summary)
		}
	}
	if got := strings.Count(rep.summary, "\n"); got != 9 {
		t.Errorf("summary has %d lines, want a header, a rule and 7 figures:\n%s", got, rep.summary)
	}
	for _, name := range []string{"scaleup-100.png", "scaleup-500.png", "memory.png", "latency.png"} {
		png, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", name)
		}
	}
}

func TestWriteReportEmpty(t *testing.T) {
	dir := t.TempDir()
	rep, err := writeReport(dir, results{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(md, bad) {
			t.Errorf("report.md holds %q", bad)
		}
	}
	if !strings.Contains(md, "Not measured.") || !strings.Contains(rep.summary, "Nothing was measured") {
		t.Errorf("an empty run should say nothing was measured:\n%s", md)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(pngs) > 0 {
		t.Errorf("plots without data: %v", pngs)
	}
}

// A run whose scenarios measured zeros, as a failure midway leaves them,
// renders dashes rather than NaN or a division by zero.
func TestWriteReportZeros(t *testing.T) {
	dir := t.TempDir()
	res := results{
		ScaleUp: []scaleUpRun{{N: 10, Legs: []scaleUpLeg{{Name: legDefaults, Err: "boom"}, {Name: legRaw}}}},
		Latency: []latencyRun{{Pods: 0}},
		Memory:  []memoryPoint{{Pods: 0}},
		APILoad: apiLoad{Rows: []apiLoadRow{{What: "sparkpods (measured)"}}},
		FanOut:  fanOut{Rows: []fanOutRow{{Subscribers: 1}}},
	}
	rep, err := writeReport(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(string(data), bad) || strings.Contains(rep.summary, bad) {
			t.Errorf("report holds %q:\n%s", bad, data)
		}
	}
	if !strings.Contains(string(data), "No plot: no leg saw a pod Running.") {
		t.Errorf("the scale-up plot should be skipped:\n%s", data)
	}
}

func TestMarkdownTable(t *testing.T) {
	got := markdownTable([]string{"Leg", "×"}, [][]string{{"a|b", ""}, {"long name", "1.41×"}})
	want := "" +
		"| Leg       | ×     |\n" +
		"| --------- | ----- |\n" +
		"| a\\|b      | —     |\n" +
		"| long name | 1.41× |\n"
	if got != want {
		t.Errorf("markdownTable:\n%s\nwant:\n%s", got, want)
	}
}
