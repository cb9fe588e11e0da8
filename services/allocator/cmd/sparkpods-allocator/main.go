// Command sparkpods-allocator serves sparkpods.v1.SchedulerService: it runs
// Spark's executor pod allocation for every registered application against
// the snapshot stream, and asks the pod manager for the pods.
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

	"github.com/sparkpods/sparkpods/services/allocator/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sparkpods-allocator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sparkpods-allocator", flag.ContinueOnError)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: sparkpods-allocator [flags]\n\n"+
			"Serves sparkpods.v1.SchedulerService: Spark's executor allocation for every\n"+
			"registered application, fed by the snapshot service and writing through the\n"+
			"pod manager.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var flags service.Flags
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
	svc, err := service.New(cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
