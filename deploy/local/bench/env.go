package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// env is what every scenario shares: the control plane, an API client
// without a client-side rate limit (the benchmark's own writes must not be
// what limits a measurement), the output folder and the progress printer.
type env struct {
	cp     *controlplane.ControlPlane
	kube   *kubernetes.Clientset
	out    string
	logDir string
	sz     sizes
	log    *progress

	// pki gives every service and every benchmark client a certificate:
	// the services run with mutual TLS and access control, as deployed.
	pki *servicepki.Authority

	mu      sync.Mutex
	clients map[int][]grpc.DialOption // by client number, see dialFrom
}

// newEnv opens the benchmark's CA and lets the local operators' group, the
// benchmark clients' group, act on every application.
func newEnv(ctx context.Context, e *env) (*env, error) {
	pki, err := servicepki.Open(filepath.Join(e.out, "pki"))
	if err != nil {
		return nil, err
	}
	if err := launch.GrantOperators(ctx, e.kube); err != nil {
		return nil, err
	}
	e.pki, e.clients = pki, map[int][]grpc.DialOption{}
	return e, nil
}

// clientDialOptions are the options of benchmark client number n, with a
// certificate of its own (bench-client-<n>): the services bound the streams
// per identity, and the benchmark's subscribers stand for separate clients.
func (e *env) clientDialOptions(n int) ([]grpc.DialOption, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if opts, ok := e.clients[n]; ok {
		return opts, nil
	}
	client, err := e.pki.ClientOptions(fmt.Sprintf("bench-client-%d", n), launch.OperatorGroup)
	if err != nil {
		return nil, err
	}
	opts, err := client.DialOptions()
	if err != nil {
		return nil, err
	}
	e.clients[n] = opts
	return opts, nil
}

func newClient(rc *rest.Config) (*kubernetes.Clientset, error) {
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	return c, nil
}

// progress prints timestamped progress lines; safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *progress) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// every calls report every interval until ctx ends or the returned stop is
// called: the progress of long operations.
func every(ctx context.Context, interval time.Duration, report func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				report()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// serviceSet is one group of sparkpods processes started for a scenario,
// logging into their own folder, and the client connections to them.
type serviceSet struct {
	env   *env
	group string
	procs []*launch.Service
	conns []*grpc.ClientConn
}

func (e *env) services(group string) *serviceSet {
	return &serviceSet{env: e, group: group}
}

// start runs bin/sparkpods-<name>, logging to <logs>/<group>/<label>.log.
// label tells apart two processes of the same binary (two pod managers).
func (s *serviceSet) start(ctx context.Context, label, name string, args ...string) (*launch.Service, error) {
	dir := filepath.Join(s.env.logDir, s.group, label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args = append([]string{"--kubeconfig", s.env.cp.KubeconfigPath()}, args...)
	p, err := launch.Start(ctx, launch.Config{Name: name, LogDir: dir, Args: args, PKI: s.env.pki, ReadyTimeout: 2 * time.Minute})
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.env.log.say("  %s/%s serving on %s (pid %d)", s.group, label, p.Addr(), p.PID())
	return p, nil
}

// dial connects to a started service; stop closes the connection.
func (s *serviceSet) dial(p *launch.Service) (*grpc.ClientConn, error) {
	opts, err := s.env.clientDialOptions(0)
	if err != nil {
		return nil, err
	}
	c, err := grpc.NewClient(p.Addr(), opts...)
	if err != nil {
		return nil, err
	}
	s.conns = append(s.conns, c)
	return c, nil
}

// stop closes the connections and stops the processes in reverse order.
func (s *serviceSet) stop() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop()
	}
	s.procs, s.conns = nil, nil
}

// createNamespace creates ns if it does not exist.
func (e *env) createNamespace(ctx context.Context, ns string) error {
	_, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// poll calls cond every interval until it reports done, returns an error,
// or timeout passes.
func poll(ctx context.Context, interval, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not done within %v: %w", what, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
