package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sparkpods/sparkpods/clients/sparkpodsctl"
	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// options are the demo's flags.
type options struct {
	stateDir    string
	kubeconfig  string
	master      string
	namespace   string
	executors   int
	interactive string
	// fancy redraws a live status block (stdout is a terminal).
	fancy bool
	width int
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.stateDir, "state-dir", ".local/run", "where the control plane and the services keep their logs")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "run against this cluster instead of the local control plane (also: $KUBECONFIG)")
	fs.StringVar(&o.master, "master", "", "API server as a Spark master URL, k8s://https://host:port (with --kubeconfig's credentials)")
	fs.StringVar(&o.namespace, "namespace", "spark-demo", "namespace of the demo application")
	fs.IntVar(&o.executors, "executors", 300, "peak number of executors, split 2:1 between resource profiles 0 and 1")
	fs.StringVar(&o.interactive, "interactive", "auto", "keep everything running for inspection after the demo: auto (when stdin is a terminal), true or false")
}

// external reports whether the demo should use an existing cluster rather
// than start the local control plane.
func (o *options) external() bool {
	return o.kubeconfig != "" || o.master != "" || os.Getenv("KUBECONFIG") != ""
}

func (o *options) keepRunning() (bool, error) {
	switch o.interactive {
	case "auto":
		return term.IsTerminal(int(os.Stdin.Fd())), nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, fmt.Errorf("--interactive %q: want auto, true or false", o.interactive)
	}
}

// run sets up the environment, runs the scenario and tears everything down.
func run(ctx context.Context, o options, out io.Writer) error {
	keep, err := o.keepRunning()
	if err != nil {
		return err
	}
	if o.executors < 30 {
		return fmt.Errorf("--executors %d: want at least 30, so that every phase has executors to work on", o.executors)
	}
	stateDir, err := filepath.Abs(o.stateDir)
	if err != nil {
		return err
	}
	logDir := filepath.Join(stateDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	say := func(format string, args ...any) { _, _ = fmt.Fprintf(out, format+"\n", args...) }
	started := time.Now()

	var kubeconfig string
	if o.external() {
		say("using the cluster from your kubeconfig / --master")
		kubeconfig = o.kubeconfig
		if kubeconfig == "" {
			kubeconfig = os.Getenv("KUBECONFIG")
		}
	} else {
		say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)…")
		cp, err := controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(stateDir, "cluster"), Nodes: 4})
		if err != nil {
			return fmt.Errorf("local control plane: %w", err)
		}
		defer func() {
			say("stopping the local control plane")
			_ = cp.Stop()
		}()
		kubeconfig = cp.KubeconfigPath()
		say("  ready in %s; kubeconfig %s", time.Since(started).Round(100*time.Millisecond), kubeconfig)
	}
	kubeArgs := []string{"--kubeconfig", kubeconfig}
	if o.master != "" {
		kubeArgs = append(kubeArgs, "--master", o.master)
	}

	// The services parse Spark's k8s:// form; the demo's own client needs
	// the plain URL.
	restConfig, err := clientcmd.BuildConfigFromFlags(strings.TrimPrefix(o.master, "k8s://"), kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restConfig.QPS, restConfig.Burst = 100, 200
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	pki, err := servicepki.Open(filepath.Join(stateDir, "pki"))
	if err != nil {
		return err
	}
	operator, err := pki.ClientOptions(demoOperator, launch.OperatorGroup)
	if err != nil {
		return err
	}
	if err := launch.GrantOperators(ctx, kube); err != nil {
		return fmt.Errorf("let the local operators' group act on applications: %w", err)
	}
	say("mutual TLS with the local CA in %s; the demo and sparkpodsctl call as %q (group %s, bound by ClusterRoleBinding %s)",
		pki.Dir(), demoOperator, launch.OperatorGroup, "sparkpods-local-operator")

	svcs, err := startServices(ctx, logDir, kubeArgs, pki, operator, say)
	if svcs != nil {
		defer svcs.stop(say)
	}
	if err != nil {
		return err
	}
	ctlConfig := filepath.Join(stateDir, "sparkpodsctl.yaml")
	if err := svcs.writeCtlConfig(ctlConfig, o.namespace); err != nil {
		return err
	}
	driverLog, err := os.Create(filepath.Join(logDir, "driver.log"))
	if err != nil {
		return err
	}
	defer func() { _ = driverLog.Close() }()
	cfg := scenarioConfig{
		Namespace: o.namespace,
		Executors: o.executors,
		Conns:     svcs.conns,
		Rest:      restConfig,
		Out:       out,
		Fancy:     o.fancy,
		Width:     o.width,
		Logger:    slog.New(slog.NewTextHandler(driverLog, nil)),
	}
	sc, err := newScenario(cfg)
	if err != nil {
		return err
	}
	if err := sc.run(ctx); err != nil {
		return fmt.Errorf("%w (service logs in %s)", err, logDir)
	}
	say("\nthe demo reached every expected state in %s:", time.Since(started).Round(100*time.Millisecond))
	for _, state := range sc.reached {
		say("  ✔ %s", state)
	}
	if !keep {
		return nil
	}
	return svcs.inspect(ctx, cfg, inspection{kubeconfig: kubeconfig, ctlConfig: ctlConfig, namespace: o.namespace, doneApp: sc.appID}, say)
}

// inspection is what the closing commands name.
type inspection struct {
	kubeconfig, ctlConfig, namespace, doneApp, liveApp string
}

// inspect leaves a small application running, so that there is something
// live to look at, prints the endpoints and commands, and waits for Ctrl-C.
func (s *services) inspect(ctx context.Context, cfg scenarioConfig, in inspection, say func(string, ...any)) error {
	out := cfg.Out
	cfg.Executors = 30
	cfg.Out = io.Discard
	live, err := newScenario(cfg)
	if err != nil {
		return err
	}
	in.liveApp = live.appID
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return live.keepRunning(gctx, 8, 4) })
	g.Go(func() error {
		if err := live.waitRegistered(gctx, "application running for inspection", 8, 4); err != nil {
			return err
		}
		say("  ✔ application %s keeps 8 + 4 executors running for inspection", live.appID)
		s.printInspection(out, in)
		return nil
	})
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// services are the four sparkpods processes and client connections to them.
type services struct {
	procs    []*launch.Service
	names    []string
	conns    serviceConns
	raw      []*grpc.ClientConn
	operator transport.ClientOptions
}

// serviceConns are the connections the scenario and its simulated driver
// use, over mutual TLS as the demo's operator.
type serviceConns struct {
	allocator *grpc.ClientConn
	snapshot  *grpc.ClientConn
	lifecycle *grpc.ClientConn
}

// demoOperator is the identity of the demo's simulated driver and of the
// sparkpodsctl and grpcurl commands it prints.
const demoOperator = "sparkpods-demo-operator"

func startServices(ctx context.Context, logDir string, kubeArgs []string, pki *servicepki.Authority, operator transport.ClientOptions, say func(string, ...any)) (*services, error) {
	s := &services{operator: operator}
	start := func(name string, args ...string) (*launch.Service, error) {
		t := time.Now()
		p, err := launch.Start(ctx, launch.Config{Name: name, LogDir: logDir, PKI: pki, Args: append(append([]string{}, kubeArgs...), args...)})
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		s.names = append(s.names, name)
		say("  %-10s serving on %s (pid %d, %s)", name, p.Addr(), p.PID(), time.Since(t).Round(10*time.Millisecond))
		return p, nil
	}
	say("starting the sparkpods services…")
	// kwok removes a deleted Running pod at once, and Spark's snapshot keeps
	// it Running until the next full re-list: re-list every 2s rather than
	// Spark's 30s so that killed executors are seen gone quickly.
	snapshot, err := start("snapshot", "--api-polling-interval", "2s", "--decommission-label", "spark-exec-decommissioning")
	if err != nil {
		return s, err
	}
	podmanager, err := start("podmanager")
	if err != nil {
		return s, err
	}
	// One replica: no leader election (a Lease left by an earlier run on a
	// real cluster would otherwise hold it up).
	allocator, err := start("allocator", "--snapshot-addr", snapshot.Addr(), "--podmanager-addr", podmanager.Addr(), "--leader-elect=false")
	if err != nil {
		return s, err
	}
	lifecycle, err := start("lifecycle", "--snapshot-addr", snapshot.Addr(), "--podmanager-addr", podmanager.Addr(), "--allocator-addr", allocator.Addr())
	if err != nil {
		return s, err
	}
	dialOpts, err := operator.DialOptions()
	if err != nil {
		return s, err
	}
	var conns [3]*grpc.ClientConn
	for i, addr := range []string{allocator.Addr(), snapshot.Addr(), lifecycle.Addr()} {
		if conns[i], err = grpc.NewClient(addr, dialOpts...); err != nil {
			return s, err
		}
		s.raw = append(s.raw, conns[i])
	}
	s.conns = serviceConns{allocator: conns[0], snapshot: conns[1], lifecycle: conns[2]}
	return s, nil
}

// stop closes the connections and stops the services in reverse start
// order, gracefully (SIGTERM).
func (s *services) stop(say func(string, ...any)) {
	for _, c := range s.raw {
		_ = c.Close()
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop()
	}
	if len(s.procs) > 0 {
		say("stopped the sparkpods services")
	}
}

// writeCtlConfig writes a sparkpodsctl endpoint config for the services.
func (s *services) writeCtlConfig(path, namespace string) error {
	cfg := sparkpodsctl.Config{
		CurrentContext: "demo",
		Contexts: []sparkpodsctl.Context{{
			Name:       "demo",
			Snapshot:   s.procs[0].Addr(),
			Podmanager: s.procs[1].Addr(),
			Allocator:  s.procs[2].Addr(),
			Lifecycle:  s.procs[3].Addr(),
			Namespace:  namespace,

			TLSCAFile:   s.operator.Files.CAFile,
			TLSCertFile: s.operator.Files.CertFile,
			TLSKeyFile:  s.operator.Files.KeyFile,
		}},
	}
	return cfg.Write(path)
}

func (s *services) printInspection(out io.Writer, in inspection) {
	_, _ = fmt.Fprintln(out, "\nEverything is still running. Inspect it from another terminal (in this folder):")
	for i, p := range s.procs {
		_, _ = fmt.Fprintf(out, "  %-10s %-16s metrics http://%s/metrics  log %s\n", s.names[i], p.Addr(), p.MetricsAddr(), p.LogPath())
	}
	snapshot, allocator, lifecycle := s.procs[0].Addr(), s.procs[2].Addr(), s.procs[3].Addr()
	_, _ = fmt.Fprintf(out, `
  export SPARKPODSCONFIG=%[1]s
  bin/sparkpodsctl get apps
  bin/sparkpodsctl get executors %[2]s
  bin/sparkpodsctl explain %[2]s
  bin/sparkpodsctl watch %[2]s
  bin/sparkpodsctl scale %[2]s --executors 20 --wait
  bin/sparkpodsctl get events %[3]s

  TLS="-cacert %[9]s -cert %[10]s -key %[11]s"
  .local/tools/bin/grpcurl $TLS %[4]s list
  .local/tools/bin/grpcurl $TLS %[4]s sparkpods.v1.SnapshotService/ListApplications
  .local/tools/bin/grpcurl $TLS -d '{"namespace":"%[5]s","appId":"%[2]s"}' %[4]s sparkpods.v1.SnapshotService/GetSnapshot
  .local/tools/bin/grpcurl $TLS -d '{"namespace":"%[5]s","appId":"%[2]s"}' %[6]s sparkpods.v1.SchedulerService/GetApplication
  .local/tools/bin/grpcurl $TLS -d '{"namespace":"%[5]s","appId":"%[3]s"}' %[7]s sparkpods.v1.LifecycleService/ListExecutorEvents

  KUBECONFIG=%[8]s bin/kubectl get pods -n %[5]s -l spark-role=executor

Press Ctrl-C to stop everything.
`, in.ctlConfig, in.liveApp, in.doneApp, snapshot, in.namespace, allocator, lifecycle, in.kubeconfig,
		s.operator.Files.CAFile, s.operator.Files.CertFile, s.operator.Files.KeyFile)
}

var errPhase = errors.New("the application did not reach the expected state")
