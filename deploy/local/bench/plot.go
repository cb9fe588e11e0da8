package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Every plot is the same size, so that they sit evenly in the report.
const (
	plotWidth  = 7 * vg.Inch
	plotHeight = 4 * vg.Inch
)

// The plot functions return the file name they wrote, relative to outDir
// (the report links it from beside it), or "" when there was nothing to
// draw.

// plotScaleUp draws pods Running over time for each leg of one executor
// count: a step that rises by one at each pod's RunningAt offset.
func plotScaleUp(outDir string, run scaleUpRun) (string, error) {
	p := newPlot(fmt.Sprintf("Scale-up to %d executors", run.N), "seconds since the request", "pods Running")
	drawn := 0
	for i, leg := range run.Legs {
		if len(leg.RunningAt) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, len(leg.RunningAt)+1)
		pts = append(pts, plotter.XY{})
		for j, at := range leg.RunningAt {
			pts = append(pts, plotter.XY{X: at.Seconds(), Y: float64(j + 1)})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return "", fmt.Errorf("scale-up plot, %s: %w", leg.Name, err)
		}
		// The count changes at each offset and holds until the next one.
		line.StepStyle = plotter.PostStep
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(leg.Name, line)
		drawn++
	}
	if drawn == 0 {
		return "", nil
	}
	// Bottom right stays empty: every curve rises from the left and ends at
	// N before the plot does.
	p.Y.Min, p.Y.Max = 0, 1.05*max(p.Y.Max, float64(run.N))
	p.Legend.Top = false
	return savePlot(p, outDir, fmt.Sprintf("scaleup-%d.png", run.N))
}

// plotMemory draws the snapshot service's heap and RSS against its pod
// count.
func plotMemory(outDir string, points []memoryPoint) (string, error) {
	if len(points) == 0 {
		return "", nil
	}
	sorted := slices.Clone(points)
	slices.SortFunc(sorted, func(a, b memoryPoint) int { return a.Pods - b.Pods })
	p := newPlot("Snapshot service memory", "executor pods", "MiB")
	series := []struct {
		name  string
		bytes func(memoryPoint) float64
	}{
		{"heap in use", func(m memoryPoint) float64 { return m.HeapInuse }},
		{"live heap", func(m memoryPoint) float64 { return m.HeapLive }},
		{"RSS", func(m memoryPoint) float64 { return m.RSS }},
	}
	for i, s := range series {
		pts := make(plotter.XYs, len(sorted))
		for j, m := range sorted {
			pts[j] = plotter.XY{X: float64(m.Pods), Y: s.bytes(m) / mib}
		}
		// Points as well as the line: a single level draws no line.
		line, dots, err := plotter.NewLinePoints(pts)
		if err != nil {
			return "", fmt.Errorf("memory plot, %s: %w", s.name, err)
		}
		line.Color, dots.Color = plotutil.Color(i), plotutil.Color(i)
		dots.Shape = plotutil.Shape(i)
		p.Add(line, dots)
		p.Legend.Add(s.name, line, dots)
	}
	// Headroom keeps the legend, top left, above the rising lines.
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 1.2*p.Y.Max
	p.Legend.Left = true
	return savePlot(p, outDir, "memory.png")
}

// plotLatency draws the subscriber's p50, p99 and max at each pod count as
// grouped bars, with the p99 goal across them. Bars rather than lines: the
// pod counts are a few levels far apart, not a continuum.
func plotLatency(outDir string, runs []latencyRun) (string, error) {
	var measured []latencyRun
	for _, r := range runs {
		if r.Subscriber.N > 0 {
			measured = append(measured, r)
		}
	}
	if len(measured) == 0 {
		return "", nil
	}
	p := newPlot("WatchSnapshots subscriber latency", "executor pods", "ms")
	names := make([]string, len(measured))
	for i, r := range measured {
		names[i] = strconv.Itoa(r.Pods)
	}
	p.NominalX(names...)
	width := vg.Points(18)
	series := []struct {
		name string
		at   func(distribution) time.Duration
	}{
		{"p50", func(d distribution) time.Duration { return d.P50 }},
		{"p99", func(d distribution) time.Duration { return d.P99 }},
		{"max", func(d distribution) time.Duration { return d.Max }},
	}
	for i, s := range series {
		values := make(plotter.Values, len(measured))
		for j, r := range measured {
			values[j] = milliseconds(s.at(r.Subscriber))
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return "", fmt.Errorf("latency plot, %s: %w", s.name, err)
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(i-1) * width
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	goal, err := plotter.NewLine(plotter.XYs{
		{X: -0.5, Y: milliseconds(latencyGoal)},
		{X: float64(len(measured)) - 0.5, Y: milliseconds(latencyGoal)},
	})
	if err != nil {
		return "", err
	}
	goal.Color = color.Gray{Y: 96}
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add("p99 goal", goal)
	p.Y.Min, p.Y.Max = 0, 1.2*max(p.Y.Max, milliseconds(latencyGoal))
	p.Legend.Left = true
	return savePlot(p, outDir, "latency.png")
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Add(plotter.NewGrid())
	return p
}

// plainTicks are gonum's default ticks labelled without trailing zeros:
// "500", not "500.00".
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
}

func savePlot(p *plot.Plot, outDir, name string) (string, error) {
	if err := p.Save(plotWidth, plotHeight, filepath.Join(outDir, name)); err != nil {
		return "", fmt.Errorf("save %s: %w", name, err)
	}
	return name, nil
}

func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

// mib is bytes in a mebibyte.
const mib = 1 << 20
