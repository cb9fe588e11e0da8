package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
)

// run starts the control plane, runs every scenario, and writes the report.
// A scenario that fails is recorded in the report and the next one runs.
func run(ctx context.Context, o options, out io.Writer) error {
	sz, err := sizesFor(o.size)
	if err != nil {
		return err
	}
	outDir, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	logDir := filepath.Join(outDir, "logs")
	if err := os.RemoveAll(logDir); err != nil {
		return err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	log := &progress{w: out, start: time.Now()}
	res := results{Size: sz.Name, Started: time.Now(), Machine: describeMachine(), LoadStart: loadAverage()}
	log.say("bench --size %s on %s; load average %s; output in %s", sz.Name, res.Machine.short(), res.LoadStart, outDir)

	log.say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)…")
	began := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(outDir, "cluster"), Nodes: 8})
	if err != nil {
		return fmt.Errorf("local control plane: %w", err)
	}
	defer func() {
		log.say("stopping the local control plane")
		_ = cp.Stop()
	}()
	res.ControlPlaneTook = time.Since(began)
	rc := cp.RESTConfig()
	rc.QPS, rc.Burst = -1, 0 // no client-side limit: the benchmark's writes must not be the bottleneck
	kube, err := newClient(rc)
	if err != nil {
		return err
	}
	e, err := newEnv(ctx, &env{cp: cp, kube: kube, out: outDir, logDir: logDir, sz: sz, log: log})
	if err != nil {
		return err
	}
	log.say("  ready in %s", secs(res.ControlPlaneTook))

	var failures []string
	step := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		t := time.Now()
		if err := f(); err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			log.say("%s failed: %v", name, err)
			return
		}
		log.say("%s done in %s", name, secs(time.Since(t)))
	}
	step("scenario 1 (scale-up)", func() (err error) { res.ScaleUp, err = e.scaleUp(ctx); return err })
	step("scenario 4 (API server load)", func() (err error) { res.APILoad, err = e.apiServerLoad(ctx); return err })
	step("scenarios 2, 3 and 5 (latency, memory, fan-out)", func() error { return e.population(ctx, &res) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Ended, res.LoadEnd = time.Now(), loadAverage()
	res.Failures = failures

	rep, err := writeReport(outDir, res)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "\nSummary (%s, %s; load average %s → %s):\n\n%s\nReport: %s\n",
		sz.Name, res.Machine.short(), res.LoadStart, res.LoadEnd, rep.summary, filepath.Join(outDir, "report.md"))
	if len(failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed: %s", len(failures), strings.Join(failures, "; "))
	}
	return nil
}

// machine describes where the run happened.
type machine struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Kernel   string
	Go       string
	Commit   string
}

func (m machine) short() string {
	return fmt.Sprintf("%d cores, %s RAM", m.CPUs, m.MemTotal)
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPUModel: "unknown", MemTotal: "unknown", Kernel: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if outp, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(outp))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += " (with uncommitted changes)"
		}
	}
	return m
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
