// Package launch starts sparkpods service binaries (bin/sparkpods-<name>) as
// child processes on loopback, waits until their gRPC health service reports
// SERVING, and stops them. Integration tests, benchmarks and the local demo
// use it to run the services exactly as they run in production: as separate
// processes talking gRPC.
package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// Config describes one service process. Name and LogDir are required.
type Config struct {
	// Name is the service: snapshot, podmanager, allocator or lifecycle. The
	// binary is BinDir/sparkpods-<Name>.
	Name string
	// BinDir holds the sparkpods binaries (the Makefile's bin/). Default:
	// $SPARKPODS_BIN, then <module root>/bin.
	BinDir string
	// LogDir receives <Name>.log with the process's stdout and stderr.
	LogDir string
	// Args are the service's flags beyond --listen and --metrics-listen,
	// which Start picks itself (free loopback ports).
	Args []string
	// Env is added to the parent's environment.
	Env []string
	// ReadyTimeout bounds the wait for SERVING; zero means 60 seconds.
	ReadyTimeout time.Duration
	// PKI gives the service a certificate for its identity
	// (sparkpods-<Name>) and runs it with mutual TLS. Exactly one of PKI
	// and Insecure must be set.
	PKI *servicepki.Authority
	// Insecure runs the service with --insecure: plaintext, no access
	// control.
	Insecure bool
}

// Identity is the certificate common name Start gives the service name,
// which the other services trust by default.
func Identity(name string) string { return "sparkpods-" + name }

// Service is a running service process.
type Service struct {
	name        string
	addr        string
	metricsAddr string
	logPath     string
	cmd         *exec.Cmd
	exited      chan struct{}
}

// Start runs the service and waits until its health service answers SERVING.
// The child gets a parent-death signal, so it cannot outlive the caller, and
// its own process group, so a Ctrl-C meant for the caller does not reach it
// before the caller stops it in order.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Name == "" || cfg.LogDir == "" {
		return nil, errors.New("launch: Name and LogDir are required")
	}
	if (cfg.PKI == nil) == !cfg.Insecure {
		return nil, fmt.Errorf("launch %s: set exactly one of PKI (mutual TLS) and Insecure", cfg.Name)
	}
	if cfg.BinDir == "" {
		dir, err := controlplane.DefaultBinDir()
		if err != nil {
			return nil, fmt.Errorf("launch %s: %w", cfg.Name, err)
		}
		cfg.BinDir = dir
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	bin := filepath.Join(cfg.BinDir, "sparkpods-"+cfg.Name)
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("launch %s: %w (run `make build`)", cfg.Name, err)
	}
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	security, health, err := securityArgs(cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{
		name:        cfg.Name,
		addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		metricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)),
		logPath:     filepath.Join(cfg.LogDir, cfg.Name+".log"),
		exited:      make(chan struct{}),
	}
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", cfg.Name, err)
	}
	args := append(append([]string{"--listen", s.addr, "--metrics-listen", s.metricsAddr}, security...), cfg.Args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), cfg.Env...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = s.cmd.Start()
	_ = log.Close() // the child has its own descriptor now
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", cfg.Name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	readyCtx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := s.waitServing(readyCtx, health); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// securityArgs are the service's TLS flags (its certificate, issued now)
// and the options to reach its health service, which needs no client
// certificate.
func securityArgs(cfg Config) ([]string, []grpc.DialOption, error) {
	if cfg.Insecure {
		return []string{"--insecure"}, []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	files, err := cfg.PKI.Issue(Identity(cfg.Name))
	if err != nil {
		return nil, nil, fmt.Errorf("launch %s: %w", cfg.Name, err)
	}
	dial, err := (&transport.ClientOptions{Files: transport.Files{CAFile: files.CAFile}}).DialOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("launch %s: %w", cfg.Name, err)
	}
	args := []string{"--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile, "--tls-ca-file", files.CAFile}
	return args, dial, nil
}

func (s *Service) waitServing(ctx context.Context, dial []grpc.DialOption) error {
	conn, err := grpc.NewClient(s.addr, dial...)
	if err != nil {
		return fmt.Errorf("launch %s: %w", s.name, err)
	}
	defer func() { _ = conn.Close() }()
	health := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		last := "health check: " + resp.GetStatus().String()
		if err != nil {
			last = err.Error()
		}
		select {
		case <-s.exited:
			return fmt.Errorf("launch %s: process exited before it was SERVING; see %s", s.name, s.logPath)
		case <-ctx.Done():
			return fmt.Errorf("launch %s: not SERVING in time (last: %s); see %s", s.name, last, s.logPath)
		case <-tick.C:
		}
	}
}

// Addr is the service's gRPC address.
func (s *Service) Addr() string { return s.addr }

// MetricsAddr is the service's /metrics address.
func (s *Service) MetricsAddr() string { return s.metricsAddr }

// LogPath is the file holding the service's output.
func (s *Service) LogPath() string { return s.logPath }

// PID is the service's process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (s *Service) Exited() <-chan struct{} { return s.exited }

// Stop sends SIGTERM (a graceful stop), and SIGKILL after 15 seconds. It is
// safe to call more than once.
func (s *Service) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Kill ends the process at once with SIGKILL, as a crash would.
func (s *Service) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("launch: pick a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
