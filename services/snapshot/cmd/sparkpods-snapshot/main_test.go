package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/snapshottest"
)

// runMainEnv makes the test binary run the real main instead of the tests,
// so the tests can start the service as its own process and signal it.
const runMainEnv = "SPARKPODS_SNAPSHOT_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	controlplanetest.Main(m, controlplane.Options{})
}

// TestGrpcurl runs sparkpods-snapshot as a process against the local control
// plane over mutual TLS, lists its services and reads a snapshot with grpcurl
// (server reflection, no proto files) as an operator whose group RBAC lets
// read applications, sees callers without a certificate or without a grant
// refused, then stops it with SIGTERM.
func TestGrpcurl(t *testing.T) {
	grpcurl := findGrpcurl(t)
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	pod := snapshottest.ExecutorPod(ns, "spark-grpcurl", 1, map[string]string{snapshottest.HoldPending: "true"})
	if _, err := cp.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pki, err := servicepki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	server, err := pki.Issue(launch.Identity("snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	operator, err := pki.Issue("grpcurl-operator", launch.OperatorGroup)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.Issue("grpcurl-stranger")
	if err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(context.Background(), cp.Client()); err != nil {
		t.Fatal(err)
	}

	svc := startProcess(t, "--kubeconfig", cp.KubeconfigPath(), "--listen", "127.0.0.1:0", "--metrics-listen", "", "--log-format", "json",
		"--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile, "--tls-ca-file", server.CAFile)
	addr := svc.waitLog(t, "serving gRPC")["addr"].(string)

	grpcurlAs := func(id transport.Files, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tlsArgs := []string{"-cacert", pki.CAFile()}
		if id.CertFile != "" {
			tlsArgs = append(tlsArgs, "-cert", id.CertFile, "-key", id.KeyFile)
		}
		out, err := exec.CommandContext(ctx, grpcurl, append(tlsArgs, args...)...).CombinedOutput()
		return string(out), err
	}
	run := func(args ...string) (string, error) { return grpcurlAs(operator, args...) }
	snapshottest.Eventually(t, time.Minute, "health to say SERVING", func(context.Context) bool {
		out, err := run(addr, "grpc.health.v1.Health/Check")
		return err == nil && strings.Contains(out, `"SERVING"`)
	})

	out, err := run(addr, "list")
	if err != nil || !strings.Contains(out, "sparkpods.v1.SnapshotService") {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	t.Logf("grpcurl list:\n%s", out)

	req := `{"namespace":"` + ns + `","app_id":"spark-grpcurl"}`
	var resp struct {
		Snapshot struct {
			Namespace string
			AppID     string `json:"appId"`
			Revision  string
			Executors []struct {
				ExecutorID string `json:"executorId"`
				State      string
				PodName    string
			}
		}
		Epoch string
	}
	snapshottest.Eventually(t, time.Minute, "GetSnapshot to show the executor", func(context.Context) bool {
		out, err = run("-d", req, addr, "sparkpods.v1.SnapshotService/GetSnapshot")
		return err == nil && json.Unmarshal([]byte(out), &resp) == nil && len(resp.Snapshot.Executors) == 1
	})
	t.Logf("grpcurl GetSnapshot:\n%s", out)
	e := resp.Snapshot.Executors[0]
	if e.ExecutorID != "1" || e.State != "EXECUTOR_STATE_PENDING" || e.PodName != pod.Name || resp.Epoch == "" || resp.Snapshot.AppID != "spark-grpcurl" {
		t.Fatalf("GetSnapshot printed:\n%s", out)
	}

	out, err = run("-d", `{"namespace":"Not_A_Namespace","app_id":"x"}`, addr, "sparkpods.v1.SnapshotService/GetSnapshot")
	if err == nil || !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "namespace") {
		t.Fatalf("a bad namespace should be InvalidArgument, got %v:\n%s", err, out)
	}
	t.Logf("grpcurl with a bad namespace:\n%s", out)

	// No client certificate: not even reflection answers (health does,
	// but grpcurl needs reflection to call it).
	for _, args := range [][]string{{addr, "list"}, {"-d", req, addr, "sparkpods.v1.SnapshotService/GetSnapshot"}} {
		out, err := grpcurlAs(transport.Files{}, args...)
		if err == nil || !strings.Contains(out, "Unauthenticated") || !strings.Contains(out, "client certificate") {
			t.Errorf("grpcurl %v without a certificate: want Unauthenticated naming what to present, got %v:\n%s", args, err, out)
		}
	}
	// A certificate of the CA, but no RBAC grant: refused by the
	// SubjectAccessReview, with the namespace in the message.
	out, err = grpcurlAs(stranger, "-d", req, addr, "sparkpods.v1.SnapshotService/GetSnapshot")
	if err == nil || !strings.Contains(out, "PermissionDenied") || !strings.Contains(out, `"grpcurl-stranger" may not get sparkpods.io/applications "spark-grpcurl" in namespace "`+ns+`"`) {
		t.Errorf("GetSnapshot without a grant: want PermissionDenied, got %v:\n%s", err, out)
	}
	t.Logf("grpcurl without a grant:\n%s", out)

	svc.stop(t)
	svc.waitLog(t, "stopping gRPC server")
}

func findGrpcurl(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		p := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), ".local", "tools", "bin", "grpcurl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("grpcurl is not on PATH nor in .local/tools/bin: run `make tools`")
	return ""
}

// process is sparkpods-snapshot running as a child of the test.
type process struct {
	cmd  *exec.Cmd
	done chan error

	mu    sync.Mutex
	lines []map[string]any
	grew  chan struct{}
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1), grew: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(bytes.TrimSpace(sc.Bytes()), &line) != nil {
				line = map[string]any{"msg": sc.Text()}
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			if err := <-p.done; err != nil {
				t.Logf("sparkpods-snapshot killed at cleanup: %v", err)
			}
		}
	})
	return p
}

// waitLog returns the first log line with message msg.
func (p *process) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		grew := p.grew
		for _, l := range p.lines {
			if l["msg"] == msg {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("sparkpods-snapshot never logged %q", msg)
		}
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("sparkpods-snapshot exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sparkpods-snapshot did not stop within 20s of SIGTERM")
	}
}
