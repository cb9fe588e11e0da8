// Command sparkpodsctl inspects and drives sparkpods from the command line,
// in the kubectl tradition; `sparkpodsctl --help` lists its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sparkpods/sparkpods/clients/sparkpodsctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := sparkpodsctl.Run(ctx, os.Args[1:], sparkpodsctl.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
