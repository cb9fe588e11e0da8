package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/promtext"
)

// scrapeAPIServer reads the API server's /metrics with the control plane's
// admin credentials.
func (e *env) scrapeAPIServer(ctx context.Context) (promtext.Metrics, error) {
	body, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scrape the API server: %w", err)
	}
	return promtext.Parse(strings.NewReader(string(body)))
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
	scrapeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := promtext.Scrape(scrapeCtx, metricsAddr)
	if err != nil {
		return memory{}, err
	}
	rss, err := residentBytes(pid)
	if err != nil {
		return memory{}, err
	}
	return memory{HeapLive: m.Sum("go_memstats_heap_alloc_bytes"), HeapInuse: m.Sum("go_memstats_heap_inuse_bytes"), RSS: rss}, nil
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
