// Package promtext reads /metrics pages in the Prometheus text exposition
// format, for the benchmark and the fault suite: each sample's name, its
// raw label set and its value, and sums over label matches. It reads what
// the sparkpods services and kube-apiserver print, not every corner of the
// format (no timestamps, no escaped spaces in label values).
package promtext

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Sample is one line of the exposition.
type Sample struct {
	Name string
	// Labels is the raw label set, {…}, empty when there is none.
	Labels string
	Value  float64
}

// Metrics is one scrape.
type Metrics []Sample

// Parse reads the exposition; comments and blank lines are skipped, and a
// line that is not "series value" is an error.
func Parse(r io.Reader) (Metrics, error) {
	var m Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		value, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s := Sample{Name: line[:sp], Value: value}
		if i := strings.IndexByte(s.Name, '{'); i >= 0 {
			s.Name, s.Labels = s.Name[:i], s.Name[i:]
		}
		m = append(m, s)
	}
	return m, sc.Err()
}

// Sum adds the samples of name whose label set contains every one of
// labels, each written as in the exposition: key="value".
func (m Metrics) Sum(name string, labels ...string) float64 {
	var total float64
next:
	for _, s := range m {
		if s.Name != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(s.Labels, l) {
				continue next
			}
		}
		total += s.Value
	}
	return total
}

// Scrape reads http://addr/metrics.
func Scrape(ctx context.Context, addr string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	m, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return m, nil
}
