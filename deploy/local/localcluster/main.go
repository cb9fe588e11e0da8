// Command localcluster runs the local Kubernetes control plane in the background for
// development; `make cluster-up` and `make cluster-down` call it.
//
//	localcluster up       start etcd, kube-apiserver, kube-controller-manager, kube-scheduler
//	                      and kwok, wait until they are ready, write the kubeconfig and exit
//	localcluster down     stop exactly the processes `up` recorded
//	localcluster status   report whether they run; exit status 1 if not ready
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: the usage is already printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

// config holds the flags.
type config struct {
	stateDir      string
	kubeconfigOut string
	binDir        string
	nodes         int
	apiserverPort int
	timeout       time.Duration
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("localcluster", flag.ContinueOnError)
	fs.StringVar(&cfg.stateDir, "state-dir", ".local/cluster", "directory for logs, PKI, etcd data and the PID file")
	fs.StringVar(&cfg.kubeconfigOut, "kubeconfig-out", ".local/kubeconfig", "where up writes the admin kubeconfig")
	fs.StringVar(&cfg.binDir, "bin-dir", "", "directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (default $SPARKPODS_BIN, then <module root>/bin)")
	fs.IntVar(&cfg.nodes, "nodes", 2, "number of fake kwok nodes")
	fs.IntVar(&cfg.apiserverPort, "apiserver-port", 16443, "kube-apiserver port on 127.0.0.1, fixed so the kubeconfig stays valid")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "how long up waits for the control plane to become ready")
	fs.Usage = func() {
		printf(fs.Output(), "usage: localcluster [flags] up|down|status\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the subcommand.
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("missing command: up, down or status")
	}
	command := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch command {
	case "up":
		return up(ctx, cfg, out)
	case "down":
		return down(cfg, out)
	case "status":
		return status(ctx, cfg, out)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", command)
	}
}
