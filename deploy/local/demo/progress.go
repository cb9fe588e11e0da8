package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// progress shows executor counts per resource profile. On a terminal it
// keeps a live status block under the log lines; otherwise it prints a
// status line when the counts change, at most every two seconds.
type progress struct {
	out   io.Writer
	fancy bool

	mu        sync.Mutex
	targets   [2]int
	counts    [2]profileCounts
	drawn     int // status lines currently on screen
	lastLine  string
	lastPrint time.Time
}

type profileCounts struct{ pending, running, failed, deleted int }

func newProgress(out io.Writer, fancy bool) *progress { return &progress{out: out, fancy: fancy} }

func (p *progress) setTargets(t0, t1 int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = [2]int{t0, t1}
	p.redraw()
}

func (p *progress) update(s *sparkpodsv1.ExecutorSnapshot) {
	var c [2]profileCounts
	for _, e := range s.GetExecutors() {
		rp := e.GetResourceProfileId()
		if rp < 0 || rp > 1 {
			continue
		}
		switch e.GetState() {
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING:
			c[rp].pending++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING:
			c[rp].running++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED:
			c[rp].failed++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED, sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED:
			c[rp].deleted++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = c
	p.redraw()
}

// log prints a line above the status block.
func (p *progress) log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintln(p.out, line)
	p.redraw()
}

// finish leaves the last status on screen and stops redrawing.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fancy && p.lastLine != "" {
		fmt.Fprintln(p.out, p.lastLine)
	}
	p.drawn = 0
	p.fancy = false
	p.lastLine = ""
}

func (p *progress) lines() []string {
	out := make([]string, 2)
	for rp := range 2 {
		c, t := p.counts[rp], p.targets[rp]
		out[rp] = fmt.Sprintf("profile %d %s running %3d/%-3d pending %3d failed %2d gone %3d",
			rp, bar(c.running, t, 30), c.running, t, c.pending, c.failed, c.deleted)
	}
	return out
}

func (p *progress) clear() {
	if p.fancy && p.drawn > 0 {
		fmt.Fprintf(p.out, "\033[%dA\033[J", p.drawn)
		p.drawn = 0
	}
}

func (p *progress) redraw() {
	lines := p.lines()
	if p.fancy {
		p.clear()
		for _, l := range lines {
			fmt.Fprintln(p.out, l)
		}
		p.drawn = len(lines)
		return
	}
	line := "  · " + strings.Join(lines, " | ")
	if line != p.lastLine && time.Since(p.lastPrint) >= 2*time.Second {
		fmt.Fprintln(p.out, line)
		p.lastPrint = time.Now()
	}
	p.lastLine = line
}

func bar(n, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	filled := min(n*width/total, width)
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}
