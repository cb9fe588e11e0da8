// Command demo is sparkpods' main job, behind `make run`: it starts the local
// control plane (or uses the cluster named by --kubeconfig / $KUBECONFIG /
// --master), runs the four sparkpods services as separate processes on
// loopback, and takes a Spark application through its life — ramp-up to a
// few hundred executors in two resource profiles, executors killed with real
// exit codes and replaced, a decommission, ramp-down and stop — showing
// progress and every executor loss with Spark's reason.
//
// On a terminal it then leaves everything running for inspection until
// Ctrl-C. Otherwise it stops what it started and exits 0 only if the
// application reached every expected state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	var opts options
	opts.bind(flag.CommandLine)
	flag.Parse()
	opts.fancy = term.IsTerminal(int(os.Stdout.Fd()))
	if opts.fancy {
		opts.width, _, _ = term.GetSize(int(os.Stdout.Fd()))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := run(ctx, opts, os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "interrupted; everything the demo started is stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}
