package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The goals the report judges each scenario against.
const (
	// scaleUpGoal: leg (a) reaches N Running within this many times leg
	// (c)'s time, the best the API server and scheduler allow.
	scaleUpGoal = 1.25
	// latencyGoal: subscriber p99 from PATCH returned.
	latencyGoal = 50 * time.Millisecond
	// bytesPerPodGoal: the snapshot service's live heap per executor pod.
	bytesPerPodGoal = 1024
	// watchesPerReplica: pod watches a snapshot replica holds open,
	// whatever the number of applications.
	watchesPerReplica = 1
	// flatExponent: below it growth.String calls a cost about constant.
	flatExponent = 0.2
	// linearR2: a straight line explains heap growth at least this well.
	linearR2 = 0.95
)

// notMeasured stands in for a figure the run did not measure.
const notMeasured = "—"

// report is what the run prints once the report is written.
type report struct {
	// summary is one line per headline figure with its goal, as a table
	// that reads both in a terminal and as markdown.
	summary string
}

// headline is one line of the summary.
type headline struct {
	figure, goal, result string
}

// writeReport writes outDir/report.md and the plots beside it.
func writeReport(outDir string, res results) (report, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return report{}, err
	}
	var b strings.Builder
	var heads []headline
	writeHeader(&b, res)
	for _, section := range []func(*strings.Builder, string, results) ([]headline, error){
		writeScaleUp, writeLatency, writeMemory, writeAPILoad, writeFanOut,
	} {
		h, err := section(&b, outDir, res)
		if err != nil {
			return report{}, err
		}
		heads = append(heads, h...)
	}
	writeGrowth(&b, res)

	rows := make([][]string, len(heads))
	for i, h := range heads {
		rows[i] = []string{h.figure, h.goal, h.result}
	}
	summary := markdownTable([]string{"Figure", "Goal", "Result"}, rows)
	if len(heads) == 0 {
		summary = "Nothing was measured.\n"
	}
	rep := report{summary: summary}
	fmt.Fprintf(&b, "## Summary\n\n%s", summary)
	return rep, os.WriteFile(filepath.Join(outDir, "report.md"), []byte(b.String()), 0o644)
}

func writeHeader(b *strings.Builder, res results) {
	m := res.Machine
	fmt.Fprintf(b, "# sparkpods benchmark (size %s)\n\n", orDash(res.Size))
	b.WriteString("Measured on a real kube-apiserver and etcd with kwok nodes (simulated kubelets that report pods " +
		"Running without containers), the four services running as separate processes; each comparison ran " +
		"side by side in this one run, on the same control plane and machine.\n\n")
	fmt.Fprintf(b, "- Date: %s", formatTime(res.Started))
	if !res.Started.IsZero() && res.Ended.After(res.Started) {
		fmt.Fprintf(b, " (took %s)", res.Ended.Sub(res.Started).Round(time.Second))
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "- Machine: %s CPUs (%s), %s memory, %s, %s, commit %s\n",
		formatCount(float64(m.CPUs)), orDash(m.CPUModel), orDash(m.MemTotal), orDash(m.Kernel), orDash(m.Go), orDash(m.Commit))
	fmt.Fprintf(b, "- Load average (1, 5, 15 min): %s at the start → %s at the end\n", orDash(res.LoadStart), orDash(res.LoadEnd))
	fmt.Fprintf(b, "- Control plane ready in %s\n", formatDuration(res.ControlPlaneTook, secs))
	if len(res.Failures) > 0 {
		b.WriteString("- Scenarios that did not complete (what they measured before failing is below):\n")
		for _, f := range res.Failures {
			fmt.Fprintf(b, "  - %s\n", oneLine(f))
		}
	}
	b.WriteString("\n")
}

func writeScaleUp(b *strings.Builder, outDir string, res results) ([]headline, error) {
	b.WriteString("## 1 Scale-up\n\n")
	fmt.Fprintf(b, "How long each way takes to bring up N executors, from the request (SetExecutorTargets for %s and %s, "+
		"the first create for %s) until a watch of the namespace saw the N-th pod exist, and saw the N-th Running. "+
		"%s is a plain client-go program creating the same pods in parallel with no client-side rate limit: "+
		"the pace of the API server and scheduler alone.\n\n", legDefaults, legSpark, legRaw, legRaw)
	if len(res.ScaleUp) == 0 {
		b.WriteString("Not measured.\n\n")
		return nil, nil
	}
	var heads []headline
	for _, run := range res.ScaleUp {
		fmt.Fprintf(b, "### N = %d\n\n", run.N)
		raw, _ := findLeg(run, legRaw)
		var rows [][]string
		var errs []string
		for _, leg := range run.Legs {
			rows = append(rows, []string{leg.Name, formatDuration(leg.Exist, secs), formatDuration(leg.Running, secs),
				formatRatio(durationRatio(leg.Running, raw.Running))})
			if leg.Err != "" {
				errs = append(errs, fmt.Sprintf("- %s did not finish: %s\n", leg.Name, oneLine(leg.Err)))
			}
		}
		b.WriteString(markdownTable([]string{"Leg", fmt.Sprintf("%d exist", run.N), fmt.Sprintf("%d Running", run.N), "Running vs (c)"}, rows))
		b.WriteString("\n")
		b.WriteString(strings.Join(errs, ""))
		if len(errs) > 0 {
			b.WriteString("\n")
		}
		result := notMeasured
		if a, ok := findLeg(run, legDefaults); ok && a.Err == "" && raw.Err == "" {
			result = judge(durationRatio(a.Running, raw.Running), scaleUpGoal, formatRatio)
		}
		goal := fmt.Sprintf("(a) ≤ %s (c)", formatRatio(scaleUpGoal))
		fmt.Fprintf(b, "Goal: %s time to %d Running: %s.\n\n", goal, run.N, result)
		heads = append(heads, headline{fmt.Sprintf("Scale-up to %d, (a) vs (c)", run.N), goal, result})

		file, err := plotScaleUp(outDir, run)
		if err != nil {
			return nil, err
		}
		writePlot(b, file, fmt.Sprintf("pods Running over time, N = %d", run.N), "no leg saw a pod Running")
	}
	return heads, nil
}

func writeLatency(b *strings.Builder, outDir string, res results) ([]headline, error) {
	b.WriteString("## 2 Snapshot latency\n\n")
	b.WriteString("Status changes are PATCHed onto executor pods at a steady rate while some pods fail. " +
		"Subscriber: a WatchSnapshots subscriber of all applications (batch interval 0), from PATCH returned " +
		"until it received the change; from sent: the same, from PATCH sent. Raw watch: a plain client-go watch " +
		"of the namespace from PATCH returned, the API server's own share. Lifecycle: pod failure written until " +
		"the application's WatchExecutorEvents consumer received EXECUTOR_REMOVED. Lost: changes or failures " +
		"never received within the wait. Cells are p50 / p99 unless named.\n\n")
	if len(res.Latency) == 0 {
		b.WriteString("Not measured.\n\n")
		return nil, nil
	}
	var rows [][]string
	var heads []headline
	for _, r := range res.Latency {
		rows = append(rows, []string{
			strconv.Itoa(r.Pods), strconv.Itoa(r.Apps), strconv.Itoa(r.Changes),
			formatRate(r.Rate), formatFailures(r),
			formatPercentile(r.Subscriber, r.Subscriber.P50), formatPercentile(r.Subscriber, r.Subscriber.P99), formatPercentile(r.Subscriber, r.Subscriber.Max),
			formatSpread(r.SubscriberFromSent), formatSpread(r.RawWatch), formatSpread(r.Lifecycle),
			fmt.Sprintf("%d changes, %d events", r.LostChanges, r.LostEvents),
		})
		result := notMeasured
		if r.Subscriber.N > 0 {
			result = judge(milliseconds(r.Subscriber.P99), milliseconds(latencyGoal), func(v float64) string { return fmt.Sprintf("%.1f ms", v) })
		}
		heads = append(heads, headline{fmt.Sprintf("Subscriber p99 at %d pods", r.Pods), "≤ " + ms(latencyGoal), result})
	}
	b.WriteString(markdownTable([]string{"Pods", "Apps", "Changes", "Rate", "Failures", "Subscriber p50", "p99", "max",
		"From sent", "Raw watch", "Lifecycle", "Lost"}, rows))
	b.WriteString("\n")
	for _, h := range heads {
		fmt.Fprintf(b, "- Goal: %s %s: %s.\n", strings.ToLower(h.figure[:1])+h.figure[1:], h.goal, h.result)
	}
	b.WriteString("\n")
	file, err := plotLatency(outDir, res.Latency)
	if err != nil {
		return nil, err
	}
	writePlot(b, file, "subscriber latency per pod count", "no subscriber latency was recorded")
	return heads, nil
}

func writeMemory(b *strings.Builder, outDir string, res results) ([]headline, error) {
	b.WriteString("## 3 Memory\n\n")
	b.WriteString("The snapshot service's memory as its population of executor pods grows: the live heap " +
		"(go_memstats_heap_alloc_bytes right after a forced collection), the heap in use (live heap plus " +
		"fragmentation in spans in use) and the process's resident set from /proc. Bytes per pod are live heap " +
		"divided by pods, so they include the service's fixed cost; the marginal cost is the slope of a straight " +
		"line through the levels.\n\n")
	if res.MemoryNote != "" {
		fmt.Fprintf(b, "Note: %s\n\n", oneLine(res.MemoryNote))
	}
	if len(res.Memory) == 0 {
		b.WriteString("Not measured.\n\n")
		return nil, nil
	}
	var rows [][]string
	var pods, heap []float64
	for _, m := range res.Memory {
		rows = append(rows, []string{strconv.Itoa(m.Pods), formatBytes(m.HeapLive), formatBytes(m.HeapInuse), formatBytes(m.RSS),
			formatPerPod(m.HeapLive, m.Pods)})
		pods = append(pods, float64(m.Pods))
		heap = append(heap, m.HeapLive)
	}
	b.WriteString(markdownTable([]string{"Pods", "Live heap", "Heap in use", "RSS", "Bytes/pod"}, rows))
	b.WriteString("\n")

	// With two levels or more the slope leaves out the fixed cost; with one,
	// heap divided by pods is all there is, and it overstates.
	perPodCost, how := heap[0]/pods[0], "live heap / pods at the only level"
	line := fitLine(pods, heap)
	if len(pods) >= 2 && line.Slope != 0 {
		perPodCost, how = line.Slope, "marginal, the slope through the levels"
	}
	result := judge(perPodCost, bytesPerPodGoal, func(v float64) string { return fmt.Sprintf("%.0f B/pod", v) })
	fmt.Fprintf(b, "- Goal: ≤ 1 KB per pod (%s): %s.\n", how, result)
	switch {
	case len(pods) < 3:
		b.WriteString("- Goal: linear: too few levels to tell (needs three).\n")
	case line.R2 >= linearR2:
		fmt.Fprintf(b, "- Goal: linear: met, a straight line explains %.0f%% of the variation (R² %.3f).\n", 100*line.R2, line.R2)
	default:
		fmt.Fprintf(b, "- Goal: linear: missed, a straight line explains only %.0f%% of the variation (R² %.3f).\n", 100*line.R2, line.R2)
	}
	b.WriteString("\n")
	file, err := plotMemory(outDir, res.Memory)
	if err != nil {
		return nil, err
	}
	writePlot(b, file, "snapshot service memory per pod count", "no memory was recorded")
	return []headline{{"Snapshot heap per pod", "≤ 1 KB/pod", result}}, nil
}

func writeAPILoad(b *strings.Builder, _ string, res results) ([]headline, error) {
	l := res.APILoad
	b.WriteString("## 4 API server load\n\n")
	fmt.Fprintf(b, "Pod LIST and WATCH requests the API server served in a %s window, from its own /metrics: "+
		"LISTs from apiserver_request_total; WATCHes started as the rise in open watches plus the watches that "+
		"ended (a watch is counted only when it ends); open watches at the window's end beyond the control "+
		"plane's own; bytes are LIST response sizes and encoded pod watch events. Sparkpods rows are the three "+
		"services managing that many registered applications at their targets. Spark rows are what every "+
		"driver issues: one watch of its executor pods and a LIST every %s, worked out (computed) or issued "+
		"for real by driver-like pollers (measured).\n\n", formatDuration(l.Window, secs), formatDuration(l.PollInterval, secs))
	if len(l.Rows) == 0 {
		b.WriteString("Not measured.\n\n")
		return nil, nil
	}
	var rows [][]string
	maxOpen, measured := 0.0, false
	var apps []string
	for _, r := range l.Rows {
		kind := "measured"
		if r.Computed {
			kind = "computed"
		}
		listBytes, watchBytes, cpu := formatBytes(r.ListBytes), formatBytes(r.WatchBytes), notMeasured
		if r.Computed {
			listBytes, watchBytes = notMeasured, notMeasured
		}
		if isSparkpods(r) {
			cpu = fmt.Sprintf("%.3f cores", r.SnapshotCPU)
			maxOpen, measured = max(maxOpen, r.OpenWatches), true
			apps = append(apps, strconv.Itoa(r.Apps))
		}
		rows = append(rows, []string{orDash(r.What), strconv.Itoa(r.Apps), strconv.Itoa(r.ExecutorPods), kind,
			formatCount(r.Lists), formatCount(r.Watches), formatCount(r.OpenWatches), listBytes, watchBytes, cpu})
	}
	b.WriteString(markdownTable([]string{"What", "Apps", "Executor pods", "Kind", "LISTs", "WATCHes", "Open watches",
		"LIST bytes", "Watch bytes", "Snapshot CPU"}, rows))
	b.WriteString("\n")
	result := notMeasured
	if measured {
		result = judge(math.Round(maxOpen), watchesPerReplica, formatCount)
	}
	fmt.Fprintf(b, "Goal: one open pod watch per snapshot replica (one replica here), whatever the number of "+
		"applications; most seen at %s applications: %s.\n\n", orDash(strings.Join(apps, ", ")), result)
	return []headline{{"Pod watches per snapshot replica", fmt.Sprintf("%d, any app count", watchesPerReplica), result}}, nil
}

// isSparkpods is whether r measured the sparkpods services, as opposed to
// Spark's drivers (apiload.go names its rows so).
func isSparkpods(r apiLoadRow) bool {
	return !r.Computed && strings.HasPrefix(r.What, "sparkpods")
}

func writeFanOut(b *strings.Builder, _ string, res results) ([]headline, error) {
	f := res.FanOut
	b.WriteString("## 5 Fan-out\n\n")
	fmt.Fprintf(b, "Many WatchSnapshots subscribers of all applications, each on its own connection, at %s pods "+
		"while status changes arrive at %s. Bytes per change: bytes of change messages received, divided by "+
		"changes and by subscribers. Reset bytes: the initial full snapshot each subscriber received. CPU: cores "+
		"the snapshot service used over the churn and the deliveries after it. Delivery: PATCH returned until "+
		"the change reached a subscriber.\n\n", formatCount(float64(f.Pods)), formatRate(float64(f.Rate)))
	if len(f.Rows) == 0 {
		b.WriteString("Not measured.\n\n")
		return nil, nil
	}
	var rows [][]string
	var subs, perChange []float64
	for _, r := range f.Rows {
		rows = append(rows, []string{strconv.Itoa(r.Subscribers), strconv.Itoa(r.Changes), formatBytes(r.BytesPerChange),
			formatBytes(r.ResetBytes), fmt.Sprintf("%.3f cores", r.CPU),
			formatPercentile(r.Delivery, r.Delivery.P50), formatPercentile(r.Delivery, r.Delivery.P99), strconv.Itoa(r.Lost)})
		subs = append(subs, float64(r.Subscribers))
		perChange = append(perChange, r.BytesPerChange)
	}
	b.WriteString(markdownTable([]string{"Subscribers", "Changes", "Bytes/change/subscriber", "Reset bytes", "CPU",
		"Delivery p50", "p99", "Lost"}, rows))
	b.WriteString("\n")
	g := fitGrowth(subs, perChange)
	result := notMeasured
	if g.Points >= 2 {
		verdict := "met"
		if g.Exponent >= flatExponent {
			verdict = "missed"
		}
		first, last := f.Rows[0], f.Rows[len(f.Rows)-1]
		result = fmt.Sprintf("%s: %s at %d → %s at %d subscribers", verdict,
			formatBytes(first.BytesPerChange), first.Subscribers, formatBytes(last.BytesPerChange), last.Subscribers)
	}
	fmt.Fprintf(b, "Goal: bytes per change per subscriber about constant as subscribers grow (each change "+
		"encoded once for all): %s; %s.\n\n", result, g)
	return []headline{{"Fan-out bytes/change/subscriber", "constant in subscribers", result}}, nil
}

// writeGrowth fits how each cost grows with its work across the run's
// sizes: the shape matters more than any one figure on a shared machine.
func writeGrowth(b *strings.Builder, res results) {
	b.WriteString("## 6 Cost as work grows\n\n")
	b.WriteString("The exponent k of cost ∝ work^k, fitted by least squares on log-log scales between the " +
		"smallest and largest measured points (1 is linear); points not measured are left out.\n\n")
	var rows [][]string
	var legs []string
	for _, run := range res.ScaleUp {
		for _, leg := range run.Legs {
			if !slices.Contains(legs, leg.Name) {
				legs = append(legs, leg.Name)
			}
		}
	}
	for _, name := range legs {
		var n, running []float64
		for _, run := range res.ScaleUp {
			if leg, ok := findLeg(run, name); ok && leg.Err == "" {
				n, running = append(n, float64(run.N)), append(running, leg.Running.Seconds())
			}
		}
		rows = append(rows, []string{"Scale-up " + name + ": time to N Running", "N", fitGrowth(n, running).String()})
	}
	var pods, p99 []float64
	for _, r := range res.Latency {
		if r.Subscriber.N > 0 {
			pods, p99 = append(pods, float64(r.Pods)), append(p99, milliseconds(r.Subscriber.P99))
		}
	}
	rows = append(rows, []string{"Subscriber p99", "pods", fitGrowth(pods, p99).String()})
	var memPods, heap []float64
	for _, m := range res.Memory {
		memPods, heap = append(memPods, float64(m.Pods)), append(heap, m.HeapLive)
	}
	rows = append(rows, []string{"Snapshot live heap", "pods", fitGrowth(memPods, heap).String()})
	b.WriteString(markdownTable([]string{"Cost", "Work", "Growth"}, rows))
	b.WriteString("\n")
}

func findLeg(run scaleUpRun, name string) (scaleUpLeg, bool) {
	for _, leg := range run.Legs {
		if leg.Name == name {
			return leg, true
		}
	}
	return scaleUpLeg{}, false
}

func writePlot(b *strings.Builder, file, alt, whyNot string) {
	if file == "" {
		fmt.Fprintf(b, "No plot: %s.\n\n", whyNot)
		return
	}
	fmt.Fprintf(b, "![%s](%s)\n\n", alt, file)
}

// judge compares a measured figure with its upper limit and says by how
// much it met or missed it, relative to the limit: "missed: 1.41×, 13%
// over". A figure that was not measured (zero, negative, NaN) is notMeasured.
func judge(value, limit float64, format func(float64) string) string {
	if !measurable(value) || limit <= 0 {
		return notMeasured
	}
	if value == limit {
		return fmt.Sprintf("met: %s, at the goal", format(value))
	}
	pct := math.Abs(value/limit-1) * 100
	by := fmt.Sprintf("%.0f%%", pct)
	if pct < 0.5 {
		by = "under 1%"
	}
	if value < limit {
		return fmt.Sprintf("met: %s, %s under", format(value), by)
	}
	return fmt.Sprintf("missed: %s, %s over", format(value), by)
}

func measurable(v float64) bool {
	return v > 0 && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// durationRatio is a/b, or NaN when either was not measured.
func durationRatio(a, b time.Duration) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func formatRatio(v float64) string {
	if !measurable(v) {
		return notMeasured
	}
	return fmt.Sprintf("%.2f×", v)
}

// formatDuration formats d with format; zero means not measured.
func formatDuration(d time.Duration, format func(time.Duration) string) string {
	if d <= 0 {
		return notMeasured
	}
	return format(d)
}

// formatPercentile is p, one of d's percentiles, unless d has no samples.
func formatPercentile(d distribution, p time.Duration) string {
	if d.N == 0 {
		return notMeasured
	}
	return ms(p)
}

// formatSpread is d's p50 / p99.
func formatSpread(d distribution) string {
	if d.N == 0 {
		return notMeasured
	}
	return ms(d.P50) + " / " + ms(d.P99)
}

func formatFailures(r latencyRun) string {
	if r.Failures == 0 {
		return "0"
	}
	return fmt.Sprintf("%d at %s", r.Failures, formatRate(r.FailureRate))
}

func formatRate(v float64) string {
	if !measurable(v) {
		return notMeasured
	}
	return fmt.Sprintf("%.1f/s", v)
}

// formatCount formats a counter, which some rows work out as a fraction.
func formatCount(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return notMeasured
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// formatBytes formats a size in binary units.
func formatBytes(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return notMeasured
	case v < 1<<10:
		return fmt.Sprintf("%.0f B", v)
	case v < mib:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	case v < 1<<30:
		return fmt.Sprintf("%.1f MiB", v/mib)
	default:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	}
}

func formatPerPod(total float64, pods int) string {
	if pods <= 0 || !measurable(total) {
		return notMeasured
	}
	return fmt.Sprintf("%.0f B", total/float64(pods))
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return notMeasured
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return notMeasured
	}
	return s
}

// oneLine keeps an error message inside its list item or table cell.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// markdownTable renders a markdown table with its columns padded, so that it also
// reads as plain text in a terminal.
func markdownTable(header []string, rows [][]string) string {
	widths := make([]int, len(header))
	cells := func(row []string) []string {
		out := make([]string, len(header))
		for i := range out {
			if i < len(row) {
				out[i] = strings.ReplaceAll(oneLine(row[i]), "|", `\|`)
			}
			if out[i] == "" {
				out[i] = notMeasured
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(out[i]))
		}
		return out
	}
	all := [][]string{cells(header)}
	for _, r := range rows {
		all = append(all, cells(r))
	}
	var b strings.Builder
	line := func(row []string) {
		b.WriteString("|")
		for i, c := range row {
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString("\n")
	}
	line(all[0])
	rule := make([]string, len(header))
	for i, w := range widths {
		rule[i] = strings.Repeat("-", w)
	}
	line(rule)
	for _, r := range all[1:] {
		line(r)
	}
	return b.String()
}
