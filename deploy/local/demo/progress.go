package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sparkpods/sparkpods/clients/driversim"
)

// progress shows executors per resource profile: the dynamic allocation
// target, and the pods pending, running and failed, with a progress bar
// while the application scales. On a terminal it keeps a live status block
// under the log lines; otherwise it prints a status line when the counts
// change, at most every two seconds.
type progress struct {
	out   io.Writer
	fancy bool
	// width is the terminal's; log lines are cut to it so that the status
	// block below them can be redrawn in place. 0: no limit.
	width int

	mu        sync.Mutex
	scaling   bool
	status    driversim.Status
	drawn     int // status lines currently on screen
	lastLine  string
	lastPrint time.Time
}

func newProgress(out io.Writer, fancy bool, width int) *progress {
	return &progress{out: out, fancy: fancy, width: width}
}

func (p *progress) setScaling(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scaling = on
	if p.fancy {
		p.redraw(true)
	}
}

func (p *progress) update(st driversim.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = st
	p.redraw(false)
}

// log prints a line above the status block.
func (p *progress) log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	if p.fancy && p.width > 1 && utf8.RuneCountInString(line) > p.width-1 {
		line = string([]rune(line)[:p.width-2]) + "…"
	}
	_, _ = fmt.Fprintln(p.out, line)
	if p.fancy {
		p.redraw(true)
	}
}

// finish leaves the last status on screen and stops redrawing.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawn = 0
	p.fancy = false
	p.out = io.Discard
}

func (p *progress) lines() []string {
	var out []string
	for _, ps := range p.status.Profiles {
		c := ps.Counts
		head := fmt.Sprintf("profile %d", ps.ID)
		if p.scaling {
			head += " " + bar(int(c.GetRunning()), ps.Target, 24)
		}
		out = append(out, fmt.Sprintf("%s  target %3d  pending %3d  running %3d  failed %2d  gone %3d",
			head, ps.Target, c.GetPending(), c.GetRunning(), c.GetFailed(), c.GetDeleted()+c.GetSucceeded()))
	}
	return out
}

func (p *progress) clear() {
	if p.fancy && p.drawn > 0 {
		_, _ = fmt.Fprintf(p.out, "\033[%dA\033[J", p.drawn)
		p.drawn = 0
	}
}

func (p *progress) redraw(force bool) {
	lines := p.lines()
	if p.fancy {
		p.clear()
		for _, l := range lines {
			_, _ = fmt.Fprintln(p.out, "  "+l)
		}
		p.drawn = len(lines)
		return
	}
	if len(lines) == 0 {
		return
	}
	line := "  · " + strings.Join(lines, " | ")
	if line != p.lastLine && (force || time.Since(p.lastPrint) >= 2*time.Second) {
		_, _ = fmt.Fprintln(p.out, line)
		p.lastPrint = time.Now()
		p.lastLine = line
	}
}

// bar shows how close n is to total, from below (ramp-up) or above
// (ramp-down).
func bar(n, total, width int) string {
	lo, hi := min(n, total), max(n, total)
	filled := width
	if hi > 0 {
		filled = lo * width / hi
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}
