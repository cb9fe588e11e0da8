// Command sparkpods-lifecycle serves sparkpods.v1.LifecycleService: it tells
// each Spark application's scheduler why its executors ended, durably, and
// deletes (or labels inactive) their finished pods, as Spark's
// ExecutorPodsLifecycleManager does inside the driver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/sparkpods/sparkpods/services/lifecycle/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sparkpods-lifecycle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sparkpods-lifecycle", flag.ContinueOnError)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: sparkpods-lifecycle [flags]\n\n"+
			"Serves sparkpods.v1.LifecycleService: why each executor ended, recorded in the\n"+
			"Kubernetes API before its pod is deleted, and the cleanup of finished pods.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var flags app.Flags
	flags.Bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := flags.Config()
	if err != nil {
		return err
	}
	// client-go's own logs go to the same structured stream.
	klog.SetSlogLogger(cfg.Logger)
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
