package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is one Prometheus sample of the text exposition format.
type sample struct {
	name   string
	labels string // the raw label set, {…}, for substring matching
	value  float64
}

// metrics is a scrape of one /metrics endpoint.
type metrics []sample

// parseMetrics reads the Prometheus text format; comments and lines that do
// not parse are skipped.
func parseMetrics(r io.Reader) (metrics, error) {
	var m metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		value, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		head := line[:sp]
		s := sample{name: head, value: value}
		if i := strings.IndexByte(head, '{'); i >= 0 {
			s.name, s.labels = head[:i], head[i:]
		}
		m = append(m, s)
	}
	return m, sc.Err()
}

// sum adds the samples of name whose label set contains every one of
// labels (each written as in the exposition, key="value").
func (m metrics) sum(name string, labels ...string) float64 {
	var total float64
next:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(s.labels, l) {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// scrapeAPIServer reads the API server's /metrics with the control plane's
// admin credentials.
func (e *env) scrapeAPIServer(ctx context.Context) (metrics, error) {
	body, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scrape the API server: %w", err)
	}
	return parseMetrics(strings.NewReader(string(body)))
}

// scrapeService reads a service's /metrics.
func scrapeService(ctx context.Context, addr string) (metrics, error) {
	body, err := httpGet(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = body.Close() }()
	return parseMetrics(body)
}

func httpGet(ctx context.Context, url string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// memory is a service process's memory at one moment.
type memory struct {
	// HeapLive is go_memstats_heap_alloc_bytes right after a forced
	// collection: the live heap.
	HeapLive float64
	// HeapInuse is go_memstats_heap_inuse_bytes (live heap plus
	// fragmentation in spans in use).
	HeapInuse float64
	// RSS is the process's resident set, from /proc.
	RSS float64
}

// serviceMemory forces a collection in the service (pprof's heap profile
// with gc=1) and then reads its heap from /metrics and its RSS from /proc.
func serviceMemory(ctx context.Context, metricsAddr string, pid int) (memory, error) {
	body, err := httpGet(ctx, "http://"+metricsAddr+"/debug/pprof/heap?gc=1")
	if err != nil {
		return memory{}, fmt.Errorf("force a collection: %w", err)
	}
	_, _ = io.Copy(io.Discard, body)
	_ = body.Close()
	m, err := scrapeService(ctx, metricsAddr)
	if err != nil {
		return memory{}, err
	}
	rss, err := residentBytes(pid)
	if err != nil {
		return memory{}, err
	}
	return memory{HeapLive: m.sum("go_memstats_heap_alloc_bytes"), HeapInuse: m.sum("go_memstats_heap_inuse_bytes"), RSS: rss}, nil
}

// residentBytes is VmRSS of the process.
func residentBytes(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// cpuSeconds is the user plus system CPU time the process has used.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after the last ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return (utime + stime) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux the control plane runs on.
const clockTicks = 100
