// Command bench is sparkpods' performance report, behind `make bench`: on a
// fresh local control plane (etcd, kube-apiserver, scheduler, controller
// manager and kwok nodes) it runs the four services as processes and
// measures, side by side in the same run, scale-up against Spark's pacing
// and a plain client-go program, snapshot and lifecycle latency under
// churn, the snapshot service's memory per pod, the load it puts on the API
// server against per-driver polling, and fan-out to many subscribers. It
// writes report.md and PNG plots into --out and prints a summary table.
//
// --size quick takes a few minutes on 2 cores; --size full runs the sizes
// the report quotes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var opts options
	opts.bind(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := run(ctx, opts, os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "interrupted; everything the benchmark started is stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "bench failed:", err)
		os.Exit(1)
	}
}
