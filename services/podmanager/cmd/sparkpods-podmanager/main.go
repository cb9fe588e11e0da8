// Command sparkpods-podmanager serves sparkpods.v1.PodService: it builds
// executor pods exactly as Spark does and is the only component that creates,
// deletes and labels them, sharing the API server's write budget fairly
// across Spark applications.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sparkpods/sparkpods/services/podmanager/internal/service"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sparkpods-podmanager:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("sparkpods-podmanager", flag.ContinueOnError)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: sparkpods-podmanager [flags]\n\n"+
			"Serves sparkpods.v1.PodService, the only writer of Spark executor pods.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var flags service.Flags
	flags.Bind(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := flags.Config()
	if err != nil {
		return err
	}
	svc, err := service.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return svc.Run(ctx)
}
