// Package sparkpodsctl is the sparkpodsctl command line, in the kubectl
// tradition: verbs on applications and executors, an endpoint config file
// like a kubeconfig (~/.sparkpods/config, --config) with flags that override
// it, and -o table|json|yaml. It reaches the services over TLS and
// authenticates with a client certificate or a ServiceAccount token.
package sparkpodsctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/clients/transport"
)

// Exit codes of Run.
const (
	ExitOK    = 0
	ExitError = 1 // the services refused or could not be reached
	ExitUsage = 2 // bad flags, arguments or config
)

// Streams are the command's input and outputs.
type Streams struct {
	Out    io.Writer
	ErrOut io.Writer
}

// options are the global flags.
type options struct {
	configPath  string
	contextName string
	snapshot    string
	allocator   string
	lifecycle   string
	podmanager  string
	namespace   string
	output      string
	timeout     time.Duration
	// transport holds the --tls-*, --token-file and --insecure flags,
	// completed from the config context.
	transport transport.ClientOptions

	streams Streams
	// dialOptions are built from transport on the first connection and
	// shared by all: the files are read once.
	dialOptions []grpc.DialOption
	conns       map[string]*grpc.ClientConn
	now         func() time.Time
}

// usageError marks a mistake of the caller, exit code 2.
type usageError struct{ error }

// Run runs sparkpodsctl with args and returns its exit code, printing errors
// as a person wants to read them.
func Run(ctx context.Context, args []string, streams Streams) int {
	cmd, o := newRoot(streams)
	defer o.close()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	_, _ = fmt.Fprintln(streams.ErrOut, describe(err))
	var u usageError
	if errors.As(err, &u) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitError
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// describe turns a gRPC status into kubectl's "Error from server (Code):
// message", and a connection failure or a refusal into a hint at what to
// change.
func describe(err error) string {
	st, ok := status.FromError(unwrapStatus(err))
	if !ok {
		return "error: " + err.Error()
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "authentication handshake failed") {
			return fmt.Sprintf("error: the TLS handshake with the service failed (%s); check --tls-ca-file (the CA bundle that signs the services' certificates), --tls-server-name, and that the service is not running with --insecure", msg)
		}
		return fmt.Sprintf("error: the service is unavailable (%s); check its address (--config, --context or the --*-addr flags), and use TLS (--tls-ca-file) unless the services run with --insecure", msg)
	case codes.DeadlineExceeded:
		return "error: no answer before the deadline (--timeout)"
	case codes.Unauthenticated:
		return fmt.Sprintf("Error from server (Unauthenticated): %s\nsparkpodsctl's credentials were not accepted: give a client certificate signed by the sparkpods CA (--tls-cert-file and --tls-key-file) or a Kubernetes ServiceAccount token (--token-file), as flags or in the config context", msg)
	case codes.PermissionDenied:
		if strings.Contains(msg, "sparkpods.io/applications") {
			return fmt.Sprintf("Error from server (PermissionDenied): %s\nthe caller is authenticated but has no RBAC grant for this: a Role or ClusterRole allowing the verb on applications.sparkpods.io, bound to this user or one of its groups, gives it", msg)
		}
	}
	return fmt.Sprintf("Error from server (%s): %s", st.Code(), msg)
}

// unwrapStatus finds a gRPC status error in a wrapped chain.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok && status.Code(e) != codes.Unknown {
			return e
		}
	}
	return err
}

func newRoot(streams Streams) (*cobra.Command, *options) {
	o := &options{streams: streams, conns: map[string]*grpc.ClientConn{}, now: time.Now}
	root := &cobra.Command{
		Use:   "sparkpodsctl",
		Short: "sparkpodsctl inspects and drives sparkpods: Spark's executor management as gRPC services",
		Long: `sparkpodsctl inspects and drives sparkpods, Spark's Kubernetes executor
management run as four gRPC services (snapshot, allocator, lifecycle,
podmanager).

Endpoints come from a config file like a kubeconfig (--config, default
$SPARKPODSCONFIG or ~/.sparkpods/config; ` + "`make run`" + ` writes one) and the
--*-addr flags override it.

The services speak TLS: --tls-ca-file (or tls-ca-file in the config context)
is the CA bundle that signs their certificates. sparkpodsctl authenticates
with a client certificate (--tls-cert-file, --tls-key-file; its common name
is the user, its organizations the groups) or a Kubernetes ServiceAccount
token (--token-file), and the services authorize that user with RBAC on
applications.sparkpods.io in the namespace. --insecure is for services run
with --insecure, in development only.

Exit codes: 0 success, 1 the services refused or could not be reached,
2 bad usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return o.complete(cmd)
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.PersistentFlags()
	f.StringVar(&o.configPath, "config", "", "endpoint config file (default $"+ConfigEnv+", then ~/.sparkpods/config)")
	f.StringVar(&o.contextName, "context", "", "the config context to use (default: current-context)")
	f.StringVar(&o.snapshot, "snapshot-addr", "", "snapshot service address, host:port")
	f.StringVar(&o.allocator, "allocator-addr", "", "allocator (scheduler API) address, host:port")
	f.StringVar(&o.lifecycle, "lifecycle-addr", "", "lifecycle service address, host:port")
	f.StringVar(&o.podmanager, "podmanager-addr", "", "pod manager address, host:port")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the application (default from the context)")
	f.StringVarP(&o.output, "output", "o", OutputTable, "output format: table, json or yaml")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of each call (not of watches)")
	security := flag.NewFlagSet("transport", flag.ContinueOnError)
	o.transport.BindClientFlags(security)
	f.AddGoFlagSet(security)

	root.AddCommand(newGetCommand(o), newWatchCommand(o), newEventsCommand(o), newScaleCommand(o),
		newKillCommand(o), newDecommissionCommand(o), newExplainCommand(o))
	return root, o
}

// complete loads the config and applies the flag overrides.
func (o *options) complete(cmd *cobra.Command) error {
	if err := validOutput(o.output); err != nil {
		return err
	}
	path, required := o.configPath, o.configPath != ""
	if path == "" {
		path = DefaultConfigPath()
	}
	cfg, err := LoadConfig(path, required)
	if err != nil {
		return usageError{err}
	}
	ctx, err := cfg.Resolve(o.contextName)
	if err != nil {
		return usageError{err}
	}
	ctx = ctx.relativeTo(filepath.Dir(path))
	flags := cmd.Flags()
	tlsFlagged := false
	for _, f := range []struct {
		name     string
		dst      *string
		fromConf string
	}{
		{"snapshot-addr", &o.snapshot, ctx.Snapshot},
		{"allocator-addr", &o.allocator, ctx.Allocator},
		{"lifecycle-addr", &o.lifecycle, ctx.Lifecycle},
		{"podmanager-addr", &o.podmanager, ctx.Podmanager},
		{"namespace", &o.namespace, ctx.Namespace},
		{"tls-ca-file", &o.transport.Files.CAFile, ctx.TLSCAFile},
		{"tls-cert-file", &o.transport.Files.CertFile, ctx.TLSCertFile},
		{"tls-key-file", &o.transport.Files.KeyFile, ctx.TLSKeyFile},
		{"token-file", &o.transport.TokenFile, ctx.TokenFile},
		{"tls-server-name", &o.transport.ServerName, ctx.TLSServerName},
	} {
		if !flags.Changed(f.name) {
			*f.dst = f.fromConf
		} else if strings.HasPrefix(f.name, "tls-") || f.name == "token-file" {
			tlsFlagged = true
		}
	}
	// A context's insecure: true gives way to TLS flags on the command
	// line, as its addresses give way to the --*-addr flags.
	if !flags.Changed("insecure") && !tlsFlagged {
		o.transport.Insecure = ctx.Insecure
	}
	return nil
}

// conn returns the connection to addr, made on first use with the
// transport options.
func (o *options) conn(addr string) (*grpc.ClientConn, error) {
	if c, ok := o.conns[addr]; ok {
		return c, nil
	}
	if o.dialOptions == nil {
		if !o.transport.Insecure && o.transport.Files.CAFile == "" {
			return nil, usageError{errors.New("no CA bundle to verify the services with: set --tls-ca-file (or tls-ca-file in the config context), or --insecure for services run with --insecure (development only)")}
		}
		opts, err := o.transport.DialOptions()
		if err != nil {
			return nil, usageError{fmt.Errorf("credentials: %w", err)}
		}
		o.dialOptions = opts
	}
	c, err := grpc.NewClient(addr, o.dialOptions...)
	if err != nil {
		return nil, usageError{fmt.Errorf("address %q: %w", addr, err)}
	}
	o.conns[addr] = c
	return c, nil
}

func (o *options) close() {
	for _, c := range o.conns {
		_ = c.Close()
	}
}

// call bounds one unary call by --timeout.
func (o *options) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout)
}
