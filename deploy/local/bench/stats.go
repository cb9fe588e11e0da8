package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// distribution summarises measured latencies.
type distribution struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Min                time.Duration
}

// summarize computes the nearest-rank percentiles of d: the p-th
// percentile is the smallest value at or above which p% of the values lie.
func summarize(d []time.Duration) distribution {
	if len(d) == 0 {
		return distribution{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return distribution{
		N: len(s), Min: s[0], Max: s[len(s)-1],
		P50: percentile(s, 50), P90: percentile(s, 90), P99: percentile(s, 99),
	}
}

// percentile is the nearest-rank percentile of sorted: the value at rank
// ceil(p/100 × n).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func (d distribution) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(d.P50), ms(d.P99), ms(d.Max), d.N)
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// secs formats a duration in seconds with two decimals.
func secs(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// growth is how a cost grows with the work between the smallest and the
// largest measured point: the exponent k of cost ∝ work^k fitted by least
// squares on log-log scales (1 is linear).
type growth struct {
	Exponent float64
	Points   int
}

// fitGrowth fits cost ∝ work^k. Points with a non-positive coordinate are
// left out.
func fitGrowth(work, cost []float64) growth {
	var xs, ys []float64
	for i := range work {
		if i < len(cost) && work[i] > 0 && cost[i] > 0 {
			xs = append(xs, math.Log(work[i]))
			ys = append(ys, math.Log(cost[i]))
		}
	}
	if len(xs) < 2 {
		return growth{Points: len(xs)}
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return growth{Points: len(xs)}
	}
	return growth{Exponent: sxy / sxx, Points: len(xs)}
}

// String says in words how the cost grows.
func (g growth) String() string {
	if g.Points < 2 {
		return "not enough points to tell"
	}
	var words string
	switch {
	case g.Exponent < 0.2:
		words = "about constant"
	case g.Exponent < 0.85:
		words = "sub-linear"
	case g.Exponent <= 1.15:
		words = "linear"
	default:
		words = "super-linear"
	}
	return fmt.Sprintf("%s (cost ∝ work^%.2f over %d points)", words, g.Exponent, g.Points)
}

// linearFit is the least-squares line y = Intercept + Slope·x.
type linearFit struct{ Intercept, Slope, R2 float64 }

func fitLine(xs, ys []float64) linearFit {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return linearFit{}
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
		syy += (ys[i] - my) * (ys[i] - my)
	}
	if sxx == 0 {
		return linearFit{Intercept: my}
	}
	f := linearFit{Slope: sxy / sxx}
	f.Intercept = my - f.Slope*mx
	if syy > 0 {
		f.R2 = sxy * sxy / (sxx * syy)
	}
	return f
}
