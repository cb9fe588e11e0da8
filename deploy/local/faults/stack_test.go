package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// The four services, in the order they start: each one's dependencies come before it.
const (
	snapshotSvc   = "snapshot"
	podmanagerSvc = "podmanager"
	allocatorSvc  = "allocator"
	lifecycleSvc  = "lifecycle"
)

var serviceNames = []string{snapshotSvc, podmanagerSvc, allocatorSvc, lifecycleSvc}

// stack is the four sparkpods services of one test, watching one namespace, with mutual
// TLS between them and towards the test's clients. Each service sits behind a forwarder
// with a fixed address, as a Kubernetes Service sits in front of its pods: launch gives
// every process new ports, and a restarted service must be found at the address the others
// were started with. The forwarders relay TCP, so TLS passes through them untouched (the
// certificates name 127.0.0.1).
type stack struct {
	cp     *controlplane.ControlPlane
	ns     string
	logDir string
	pki    *servicepki.Authority

	front map[string]*forwarder
	extra map[string][]string // extra flags per service

	ctx         context.Context // ends when the test's cleanup begins
	cancel      context.CancelFunc
	supervisors sync.WaitGroup
	logf        func(format string, args ...any)

	mu       sync.Mutex
	procs    map[string]*launch.Service
	all      []*launch.Service // every process started, for the cleanup
	killed   map[*launch.Service]bool
	restarts int

	client *scheduler.Client
	pods   *podLedger
}

// startStack starts the four services on cp for a new namespace. extra adds flags per
// service.
func startStack(t *testing.T, cp *controlplane.ControlPlane, extra map[string][]string) *stack {
	t.Helper()
	ctx := context.Background()
	ns := newNamespace(t, cp)
	logDir := filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pki, err := servicepki.Open(filepath.Join(logDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(ctx, cp.Client()); err != nil {
		t.Fatal(err)
	}
	s := &stack{cp: cp, ns: ns, logDir: logDir, pki: pki, front: map[string]*forwarder{}, extra: extra,
		logf: t.Logf, procs: map[string]*launch.Service{}, killed: map[*launch.Service]bool{}}
	s.ctx, s.cancel = context.WithCancel(ctx)
	// Cleanups run last registered first: the services stop before the forwarders close.
	for _, name := range serviceNames {
		f, err := newForwarder()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		s.front[name] = f
	}
	t.Cleanup(s.stopAll)
	for _, name := range serviceNames {
		s.start(t, name)
	}
	s.client = s.dial(t, operatorName)
	s.pods = startPodLedger(t, cp.Client(), ns)
	t.Logf("namespace %s; service logs in %s", ns, logDir)
	return s
}

// operatorName is the identity of the suite's scheduler client.
const operatorName = "fault-suite-operator"

// dial returns a scheduler client for the allocator and the lifecycle service with a
// certificate for identity, a local operator.
func (s *stack) dial(t *testing.T, identity string) *scheduler.Client {
	t.Helper()
	opts := s.clientOptions(t, identity)
	client, err := scheduler.Dial(s.front[allocatorSvc].Addr(), s.front[lifecycleSvc].Addr(),
		scheduler.WithDialOptions(opts...),
		scheduler.WithHeartbeatInterval(time.Second), scheduler.WithBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// clientOptions are the dial options of a local operator called identity.
func (s *stack) clientOptions(t *testing.T, identity string) []grpc.DialOption {
	t.Helper()
	co, err := s.pki.ClientOptions(identity, launch.OperatorGroup)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := co.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// newNamespace creates a namespace for the test on cp.
func newNamespace(t *testing.T, cp *controlplane.ControlPlane) string {
	t.Helper()
	name := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	name += "-" + rand.String(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{controlplanetest.TestAnnotation: t.Name()}}}
	if _, err := cp.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// args are the flags of a service beyond those launch picks.
func (s *stack) args(name string) []string {
	kube := "--kubeconfig=" + s.cp.KubeconfigPath()
	var args []string
	switch name {
	case snapshotSvc:
		args = []string{kube, "--namespaces=" + s.ns}
	case podmanagerSvc:
		args = []string{kube}
	case allocatorSvc:
		args = []string{kube,
			"--snapshot-addr=" + s.front[snapshotSvc].Addr(),
			"--podmanager-addr=" + s.front[podmanagerSvc].Addr(),
			// Records in the test's namespace only: an allocator restores every record it can
			// list, and this one sees only the test namespace's snapshots.
			"--namespace=" + s.ns,
			// A short Lease, so that a killed leader's successor takes over quickly.
			"--leader-election-namespace=" + s.ns,
			"--leader-election-lease-duration=2s",
			"--leader-election-renew-deadline=1500ms",
			"--leader-election-retry-period=200ms",
		}
	case lifecycleSvc:
		args = []string{kube, "--namespaces=" + s.ns,
			"--snapshot-addr=" + s.front[snapshotSvc].Addr(),
			"--podmanager-addr=" + s.front[podmanagerSvc].Addr(),
			"--allocator-addr=" + s.front[allocatorSvc].Addr(),
		}
	}
	return append(args, s.extra[name]...)
}

// start starts (or starts again) one service and points its forwarder at it.
func (s *stack) start(t *testing.T, name string) {
	t.Helper()
	if err := s.launch(name); err != nil {
		t.Fatal(err)
	}
}

// launch starts one service, keeping the log of a previous process as <name>.log.<pid>,
// points its forwarder at it and supervises it: a process that exits on its own (the
// allocator does when it loses its Lease, as it must) is started again, as the kubelet
// restarts a container. Processes the test kills are not.
func (s *stack) launch(name string) error {
	if prev := s.proc(name); prev != nil {
		_ = os.Rename(prev.LogPath(), prev.LogPath()+"."+strconv.Itoa(prev.PID()))
	}
	// The allocator serves only once it holds the Lease, which a killed leader keeps for
	// the Lease's duration.
	svc, err := launch.Start(s.ctx, launch.Config{
		Name: name, LogDir: s.logDir, Args: s.args(name), ReadyTimeout: 2 * time.Minute, PKI: s.pki,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs[name] = svc
	s.all = append(s.all, svc)
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	s.front[name].SetBackend(svc.Addr())
	s.supervisors.Go(func() { s.supervise(name, svc) })
	return nil
}

// supervise starts name again once svc exits, unless the test killed it or the stack is
// stopping.
func (s *stack) supervise(name string, svc *launch.Service) {
	select {
	case <-s.ctx.Done():
		return
	case <-svc.Exited():
	}
	s.mu.Lock()
	own := s.procs[name] == svc && !s.killed[svc]
	s.mu.Unlock()
	if !own {
		return
	}
	s.front[name].DropConnections()
	for attempt := 1; ; attempt++ {
		// A kubelet's first restart comes after 10s; a second is enough here.
		if pause(s.ctx, time.Second) != nil {
			return
		}
		s.logf("%s (pid %d) exited on its own; starting it again (attempt %d); its log is kept as %s.%d",
			name, svc.PID(), attempt, svc.LogPath(), svc.PID())
		err := s.launch(name)
		if err == nil {
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
			return
		}
		s.logf("restart %s: %v", name, err)
	}
}

// restartCount is how many times the supervisor has started a service again.
func (s *stack) restartCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// stopAll ends the supervision and stops every process the stack started, the last started
// first.
func (s *stack) stopAll() {
	s.cancel()
	s.supervisors.Wait()
	s.mu.Lock()
	all := slices.Clone(s.all)
	s.mu.Unlock()
	for _, svc := range slices.Backward(all) {
		svc.Stop()
	}
}

// proc returns the running process of a service.
func (s *stack) proc(name string) *launch.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// kill ends a service with SIGKILL, as a crash or the OOM killer would. The test starts it
// again itself.
func (s *stack) kill(name string) {
	svc := s.proc(name)
	s.mu.Lock()
	s.killed[svc] = true
	s.mu.Unlock()
	svc.Kill()
	s.front[name].DropConnections()
}

// forwarder relays TCP connections from a fixed loopback address to the current backend.
// A connection opened while the backend is down is closed at once, as a Service without
// ready endpoints refuses it.
type forwarder struct {
	ln net.Listener

	mu      sync.Mutex
	backend string
	conns   map[net.Conn]struct{}
	closed  bool

	wg sync.WaitGroup
}

func newForwarder() (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	f := &forwarder{ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Go(f.accept)
	return f, nil
}

// Addr is the fixed address clients use.
func (f *forwarder) Addr() string { return f.ln.Addr().String() }

// SetBackend sends new connections to addr.
func (f *forwarder) SetBackend(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = addr
}

// DropConnections closes every relayed connection, as the kernel does to the connections of
// a process that died: the peers see them end at once rather than at their next keepalive.
func (f *forwarder) DropConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}

// Close stops accepting, closes every connection and waits for the relays to end.
func (f *forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	_ = f.ln.Close()
	f.DropConnections()
	f.wg.Wait()
}

func (f *forwarder) accept() {
	for {
		client, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.wg.Go(func() { f.relay(client) })
	}
}

// relay copies both ways between client and the backend until either side ends, then
// closes both.
func (f *forwarder) relay(client net.Conn) {
	f.mu.Lock()
	backend := f.backend
	f.mu.Unlock()
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	if !f.track(client, server) {
		return
	}
	defer f.untrack(client, server)
	done := make(chan struct{}, 2)
	// A reset or closed connection ends the relay just as EOF does.
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
}

func (f *forwarder) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.conns, c)
	}
}
