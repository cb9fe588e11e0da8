// Package controlplane runs a real Kubernetes control plane on loopback for sparkpods'
// integration tests and for `make cluster-up`: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, and kwok playing the kubelet of a few fake nodes. Executor pods are created
// without a node, placed by the real scheduler, moved through their phases by kwok (see
// kwok.yaml for the annotations that pick an outcome) and garbage-collected by the real
// controller manager when their owner goes away.
//
// The binaries are built from the Go module proxy by the Makefile (`make cluster-bins`) into
// <module root>/bin, pinned by the wrapper modules under deploy/local/.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// startAttempts bounds retries after a child lost its free port to another process.
const startAttempts = 3

// ControlPlane is a running local control plane.
type ControlPlane struct {
	opts       Options
	server     string
	kubeconfig string
	config     *rest.Config
	client     *kubernetes.Clientset
	nodes      []string
	// keys and ports are kept so that kube-apiserver can be started again with the same flags.
	keys  *pki
	ports ports

	// died receives each child once it exits; buffered so reporting never blocks.
	died chan *child

	mu       sync.Mutex
	children []*child
	stopped  bool
}

// Start brings up the control plane and returns once the API server is ready, the controller
// manager and scheduler report healthy and every fake node is Ready. If anything fails,
// whatever was started is stopped again and the logs in opts.Dir tell why.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("control plane dir: %w", err)
	}
	if o.Detached {
		if err := clearStaleState(o.Dir); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartupTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		c := &ControlPlane{opts: o, died: make(chan *child, len(binaries))}
		err := c.start(ctx)
		if err == nil {
			return c, nil
		}
		err = errors.Join(err, c.Stop())
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
	}
}

func (c *ControlPlane) start(ctx context.Context) error {
	dir := c.opts.Dir
	dataDir := filepath.Join(dir, "etcd-data")
	// Every start is a fresh cluster; a detached one may find the previous run's data here.
	if err := os.RemoveAll(dataDir); err != nil {
		return fmt.Errorf("clear etcd data: %w", err)
	}
	keys, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	p, err := pickPorts(c.opts.APIServerPort)
	if err != nil {
		return err
	}
	c.keys, c.ports = keys, p

	if err := c.run("etcd", etcdArgs(dataDir, p)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", etcdHealthy(p.etcdClient)); err != nil {
		return err
	}

	c.server = loopback("https", p.apiserver)
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	if c.config, err = writeKubeconfig(c.kubeconfig, c.server, keys); err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.config); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.run("kube-apiserver", apiserverArgs(keys, p)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", apiserverReady(c.client)); err != nil {
		return err
	}

	// The rest only needs the API server, so start it all, then wait for all of it.
	schedulerConfigPath := filepath.Join(dir, "kube-scheduler.yaml")
	schedCfg, err := schedulerConfig(c.kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(schedulerConfigPath, schedCfg, 0o644); err != nil {
		return fmt.Errorf("write scheduler configuration: %w", err)
	}
	kwokConfigPath := filepath.Join(dir, "kwok.yaml")
	if err := os.WriteFile(kwokConfigPath, kwokConfig, 0o644); err != nil {
		return fmt.Errorf("write kwok configuration: %w", err)
	}
	if err := c.run("kube-controller-manager", controllerManagerArgs(keys, c.kubeconfig, p)); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", schedulerArgs(schedulerConfigPath, c.kubeconfig, p)); err != nil {
		return err
	}
	if err := c.run("kwok", kwokArgs(kwokConfigPath, c.kubeconfig)); err != nil {
		return err
	}
	c.nodes = nodeNames(c.opts.Nodes)
	if err := createNodes(ctx, c.client, c.nodes); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-controller-manager /healthz", componentHealthy(p.controllerManager, "/healthz")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-scheduler /readyz", componentHealthy(p.scheduler, "/readyz")); err != nil {
		return err
	}
	return c.waitFor(ctx, "kwok nodes Ready", func(ctx context.Context) bool {
		return nodesReady(ctx, c.client, c.nodes)
	})
}

// run starts one binary and, for a detached control plane, records it in the PID file at
// once, so `down` can clean up even after a failed `up`.
func (c *ControlPlane) run(name string, args []string) error {
	// HOME points into Dir because kwok loads ~/.kwok/kwok.yaml on top of --config if it exists.
	env := append(os.Environ(), "HOME="+c.opts.Dir)
	ch, err := startChild(name, filepath.Join(c.opts.BinDir, name), c.opts.Dir, args, env, c.opts.Detached, c.died)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.children = append(c.children, ch)
	c.mu.Unlock()
	if !c.opts.Detached {
		return nil
	}
	return writeState(State{Dir: c.opts.Dir, Server: c.server, Kubeconfig: c.kubeconfig, Processes: c.Processes()})
}

// Stop stops every child, last started first: SIGTERM, then SIGKILL after
// Options.StopTimeout. It returns after all of them have exited. Stopping again does nothing.
// Dir is left in place.
func (c *ControlPlane) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	for _, ch := range slices.Backward(c.children) {
		if err := ch.stop(c.opts.StopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if c.opts.Detached {
		if err := os.Remove(filepath.Join(c.opts.Dir, PIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove PID file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// clearStaleState refuses to start over live processes recorded in dir and removes a PID
// file whose processes are all gone.
func clearStaleState(dir string) error {
	s, err := ReadState(dir)
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range s.Processes {
		if p.Alive() {
			return fmt.Errorf("%w (%s pid %d, recorded in %s)", ErrAlreadyRunning, p.Name, p.PID, filepath.Join(dir, PIDFile))
		}
	}
	if err := os.Remove(filepath.Join(dir, PIDFile)); err != nil {
		return fmt.Errorf("remove stale PID file: %w", err)
	}
	return nil
}

// Dir returns the directory holding the logs, PKI, configuration and etcd data.
func (c *ControlPlane) Dir() string { return c.opts.Dir }

// Server returns the API server URL, https://127.0.0.1:PORT.
func (c *ControlPlane) Server() string { return c.server }

// KubeconfigPath returns the path of an admin kubeconfig with inlined credentials.
func (c *ControlPlane) KubeconfigPath() string { return c.kubeconfig }

// RESTConfig returns a copy of the admin client configuration, with QPS and burst raised so
// that client-side throttling never shapes a test.
func (c *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// Client returns an admin clientset built from RESTConfig.
func (c *ControlPlane) Client() *kubernetes.Clientset { return c.client }

// Nodes returns the names of the fake kwok nodes.
func (c *ControlPlane) Nodes() []string { return slices.Clone(c.nodes) }

// Processes returns every process Start started, in start order, including stopped ones.
func (c *ControlPlane) Processes() []Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]Process, len(c.children))
	for i, ch := range c.children {
		ps[i] = ch.Process
	}
	return ps
}
