package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/clients/scheduler"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
)

// The four services, in the order they start: each one's dependencies come before it.
const (
	snapshotSvc   = "snapshot"
	podmanagerSvc = "podmanager"
	allocatorSvc  = "allocator"
	lifecycleSvc  = "lifecycle"
)

var serviceNames = []string{snapshotSvc, podmanagerSvc, allocatorSvc, lifecycleSvc}

// stack is the four sparkpods services of one test, watching one namespace. Each service
// sits behind a forwarder with a fixed address, as a Kubernetes Service sits in front of its
// pods: launch gives every process new ports, and a restarted service must be found at the
// address the others were started with.
type stack struct {
	t      *testing.T
	cp     *controlplane.ControlPlane
	ns     string
	logDir string

	front map[string]*forwarder
	extra map[string][]string // extra flags per service

	mu    sync.Mutex
	procs map[string]*launch.Service

	client *scheduler.Client
}

// startStack starts the four services for namespace ns. extra adds flags per service.
func startStack(t *testing.T, ns string, extra map[string][]string) *stack {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	logDir := filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, cp: cp, ns: ns, logDir: logDir, front: map[string]*forwarder{}, extra: extra, procs: map[string]*launch.Service{}}
	for _, name := range serviceNames {
		f, err := newForwarder()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		s.front[name] = f
	}
	for _, name := range serviceNames {
		s.start(name)
	}
	client, err := scheduler.Dial(s.front[allocatorSvc].Addr(), s.front[lifecycleSvc].Addr(),
		scheduler.WithHeartbeatInterval(time.Second), scheduler.WithBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	s.client = client
	t.Logf("service logs in %s", logDir)
	return s
}

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

// start starts (or starts again) one service and points its forwarder at it. The log of a
// previous process is kept as <name>.log.<pid>.
func (s *stack) start(name string) {
	s.t.Helper()
	s.mu.Lock()
	prev := s.procs[name]
	s.mu.Unlock()
	if prev != nil {
		_ = os.Rename(prev.LogPath(), prev.LogPath()+"."+strconv.Itoa(prev.PID()))
	}
	// The allocator serves only once it holds the Lease, which a killed leader keeps for
	// the Lease's duration.
	svc, err := launch.Start(context.Background(), launch.Config{Name: name, LogDir: s.logDir, Args: s.args(name), ReadyTimeout: 2 * time.Minute})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(svc.Stop)
	s.mu.Lock()
	s.procs[name] = svc
	s.mu.Unlock()
	s.front[name].SetBackend(svc.Addr())
}

// proc returns the running process of a service.
func (s *stack) proc(name string) *launch.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// kill ends a service with SIGKILL, as a crash or the OOM killer would.
func (s *stack) kill(name string) {
	s.proc(name).Kill()
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
