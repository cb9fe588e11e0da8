// Command sparkpods-snapshot serves Spark's executor pod snapshots of every
// application in the cluster over gRPC, from one list+watch of executor pods.
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

	"github.com/sparkpods/sparkpods/services/snapshot/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sparkpods-snapshot:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sparkpods-snapshot", flag.ContinueOnError)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: sparkpods-snapshot [flags]\n\n"+
			"Serves sparkpods.v1.SnapshotService: Spark's executor pod snapshots of every\n"+
			"application, from one list+watch of pods labelled spark-role=executor.\n\nFlags:\n")
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
