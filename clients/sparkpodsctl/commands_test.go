package sparkpodsctl

// The command tests run each sparkpodsctl command against the four services
// as separate processes (bin/, built by `make build`) on the package's real
// local control plane, over mutual TLS with certificates from a local CA;
// `go test -short` skips them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// Identities of the test's own callers, besides the services'.
const (
	// operatorName is sparkpodsctl's user, in launch.OperatorGroup, which
	// launch.GrantOperators lets act on every application.
	operatorName = "sparkpodsctl-test-operator"
	// strangerName has a valid certificate and no RBAC grant at all.
	strangerName = "sparkpodsctl-test-stranger"
	// faultInjectorName calls PodService to make kwok fail an executor;
	// the pod manager trusts it, as it trusts the allocator and the
	// lifecycle service.
	faultInjectorName = "sparkpodsctl-test-fault-injector"
)

// env is the services of one test and a config file naming them, with the
// operator's certificate.
type env struct {
	t        *testing.T
	ns       string
	config   string
	operator transport.ClientOptions
	pki      *servicepki.Authority
	pods     sparkpodsv1.PodServiceClient
	snap     sparkpodsv1.SnapshotServiceClient
}

func startServices(t *testing.T) *env {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	logDir := filepath.Join(cp.Dir(), "services", t.Name())
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("service logs in %s", logDir)
	pki, err := servicepki.Open(filepath.Join(logDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if err := launch.GrantOperators(context.Background(), cp.Client()); err != nil {
		t.Fatal(err)
	}
	start := func(name string, args ...string) *launch.Service {
		s, err := launch.Start(context.Background(), launch.Config{
			Name: name, LogDir: logDir, ReadyTimeout: 2 * time.Minute, PKI: pki,
			Args: append([]string{"--kubeconfig=" + cp.KubeconfigPath()}, args...),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	snapshot := start("snapshot", "--namespaces="+ns, "--api-polling-interval=2s")
	podman := start("podmanager", "--trusted-callers="+strings.Join([]string{launch.Identity("allocator"), launch.Identity("lifecycle"), faultInjectorName}, ","))
	allocator := start("allocator", "--snapshot-addr="+snapshot.Addr(), "--podmanager-addr="+podman.Addr(), "--leader-elect=false")
	lifecycle := start("lifecycle", "--snapshot-addr="+snapshot.Addr(), "--podmanager-addr="+podman.Addr(), "--allocator-addr="+allocator.Addr())

	e := &env{t: t, ns: ns, config: filepath.Join(t.TempDir(), "config"), pki: pki}
	if e.operator, err = pki.ClientOptions(operatorName, launch.OperatorGroup); err != nil {
		t.Fatal(err)
	}
	cfg := Config{CurrentContext: "test", Contexts: []Context{{
		Name: "test", Snapshot: snapshot.Addr(), Allocator: allocator.Addr(),
		Lifecycle: lifecycle.Addr(), Podmanager: podman.Addr(), Namespace: ns,
		TLSCAFile: e.operator.Files.CAFile, TLSCertFile: e.operator.Files.CertFile, TLSKeyFile: e.operator.Files.KeyFile,
	}}}
	if err := cfg.Write(e.config); err != nil {
		t.Fatal(err)
	}
	faultInjector, err := pki.ClientOptions(faultInjectorName)
	if err != nil {
		t.Fatal(err)
	}
	e.pods = sparkpodsv1.NewPodServiceClient(e.dial(podman.Addr(), faultInjector))
	e.snap = sparkpodsv1.NewSnapshotServiceClient(e.dial(snapshot.Addr(), e.operator))
	return e
}

// dial connects to addr with the given identity.
func (e *env) dial(addr string, as transport.ClientOptions) *grpc.ClientConn {
	opts, err := as.DialOptions()
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctl runs sparkpodsctl with the test's config.
func (e *env) ctl(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(ctx, append([]string{"--config", e.config}, args...), Streams{Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

// configWithout writes a copy of the test's config with the addresses
// only, no TLS settings, and returns its path.
func (e *env) configWithout(t *testing.T) string {
	t.Helper()
	cfg, err := LoadConfig(e.config, true)
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Contexts[0]
	k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile = "", "", ""
	cfg.Contexts[0] = k
	path := filepath.Join(t.TempDir(), "config")
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *env) mustCtl(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.ctl(context.Background(), args...)
	if code != ExitOK {
		e.t.Fatalf("sparkpodsctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// eventually retries the command until its output contains want.
func (e *env) eventually(want string, args ...string) string {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, out, errOut := e.ctl(context.Background(), args...)
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sparkpodsctl %s never printed %q; last:\n%s%s", strings.Join(args, " "), want, out, errOut)
		}
		<-time.After(250 * time.Millisecond)
	}
}

// registerApp creates a driver pod and registers an application running
// three executors in profile 0 (spark.executor.instances) with sparkpodsctl's
// config pointing at the services.
func (e *env) registerApp(app string) {
	e.t.Helper()
	cp := controlplanetest.ControlPlane(e.t)
	ctx := context.Background()
	driver := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: app + "-driver", Labels: map[string]string{"spark-role": "driver", "spark-app-selector": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "apache/spark:4.0.0"}}},
	}
	if _, err := cp.Client().CoreV1().Pods(e.ns).Create(ctx, driver, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	cfg, err := LoadConfig(e.config, true)
	if err != nil {
		e.t.Fatal(err)
	}
	k, _ := cfg.Resolve("")
	sched := sparkpodsv1.NewSchedulerServiceClient(e.dial(k.Allocator, e.operator))
	if _, err := sched.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: e.ns, AppId: app, DriverPodName: app + "-driver",
		SparkConf: map[string]string{
			"spark.kubernetes.container.image":                     "apache/spark:4.0.0",
			"spark.driver.host":                                    app + "-driver-svc." + e.ns + ".svc",
			"spark.executor.instances":                             "3",
			"spark.kubernetes.executor.decommissionLabel":          "spark-exec-decommissioning",
			"spark.kubernetes.dynamicAllocation.deleteGracePeriod": "1s",
		},
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) runningIDs(app string) []int64 {
	e.t.Helper()
	resp, err := e.snap.GetSnapshot(context.Background(), &sparkpodsv1.GetSnapshotRequest{Namespace: e.ns, AppId: app})
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []int64
	for _, x := range resp.GetSnapshot().GetExecutors() {
		if x.GetState() == sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING {
			ids = append(ids, x.GetExecutorId())
		}
	}
	return ids
}

func TestCommandsAgainstTheServices(t *testing.T) {
	e := startServices(t)
	const app = "spark-ctl-test"
	e.registerApp(app)

	t.Run("get executors", func(t *testing.T) {
		out := e.eventually("Running", "get", "executors", app)
		if n := strings.Count(out, "Running"); n != 3 {
			t.Fatalf("%d Running executors, want 3:\n%s", n, out)
		}
		if !strings.HasPrefix(out, "ID   STATE") || !strings.Contains(out, "kwok-node-") {
			t.Fatalf("unexpected table:\n%s", out)
		}
		y := e.mustCtl("get", "executors", app, "-o", "yaml")
		if !strings.Contains(y, "state: EXECUTOR_STATE_RUNNING") || !strings.Contains(y, "appId: "+app) {
			t.Fatalf("yaml:\n%s", y)
		}
	})

	t.Run("get apps", func(t *testing.T) {
		out := e.mustCtl("get", "apps")
		if !strings.Contains(out, e.ns) || !strings.Contains(out, app) {
			t.Fatalf("table:\n%s", out)
		}
		var resp struct {
			Applications []struct {
				AppID  string `json:"appId"`
				Counts struct {
					Running int `json:"running"`
				} `json:"counts"`
			} `json:"applications"`
		}
		if err := json.Unmarshal([]byte(e.mustCtl("get", "apps", "-A", "-o", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range resp.Applications {
			found = found || a.AppID == app && a.Counts.Running == 3
		}
		if !found {
			t.Fatalf("json lists %+v, want %s with 3 running", resp.Applications, app)
		}
	})

	t.Run("explain", func(t *testing.T) {
		out := e.mustCtl("explain", app)
		if !strings.Contains(out, "PROFILE   TARGET") || !strings.Contains(out, "registered with the scheduler") {
			t.Fatalf("explain:\n%s", out)
		}
	})

	t.Run("scale and wait", func(t *testing.T) {
		out := e.mustCtl("scale", app, "--profile", "1", "--executors", "2", "--wait", "--wait-timeout", "90s")
		if !strings.Contains(out, "profile 1 runs 2 executors") {
			t.Fatalf("scale:\n%s", out)
		}
		if got := len(e.runningIDs(app)); got != 5 {
			t.Fatalf("%d executors running, want 3 + 2", got)
		}
	})

	t.Run("watch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		code, out, errOut := e.ctl(ctx, "watch", app)
		if code != ExitOK || !strings.Contains(out, "REVISION") || !strings.Contains(out, app) {
			t.Fatalf("watch: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("events of a failed executor", func(t *testing.T) {
		victim := e.runningIDs(app)[0]
		if _, err := e.pods.LabelExecutorPods(context.Background(), &sparkpodsv1.LabelExecutorPodsRequest{
			Namespace: e.ns, AppId: app, ExecutorIds: []int64{victim},
			Annotations: map[string]string{controlplane.AnnotationExitCode: "137", controlplane.AnnotationExitReason: "OOMKilled"},
		}); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("The executor with id %d exited with exit code 137(SIGKILL, possible container OOM).", victim)
		out := e.eventually(want, "get", "events", app)
		if !strings.Contains(out, "Removed") || !strings.Contains(out, "Failed") {
			t.Fatalf("events:\n%s", out)
		}
		// --follow streams the recorded events, then waits for more.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		code, out, errOut := e.ctl(ctx, "events", app, "-f", "-o", "json")
		if code != ExitOK || !strings.Contains(out, `"exitCode":137`) {
			t.Fatalf("events -f: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("kill and decommission", func(t *testing.T) {
		ids := e.runningIDs(app)
		out := e.mustCtl("kill", app, strconv.FormatInt(ids[0], 10))
		if want := fmt.Sprintf("executor %d killed", ids[0]); !strings.Contains(out, want) {
			t.Fatalf("kill printed %q, want %q", out, want)
		}
		out = e.mustCtl("decommission", app, strconv.FormatInt(ids[1], 10), "--grace", "1s")
		if want := fmt.Sprintf("executor %d decommissioning", ids[1]); !strings.Contains(out, want) {
			t.Fatalf("decommission printed %q, want %q", out, want)
		}
		code, _, errOut := e.ctl(context.Background(), "kill", app, "999999")
		if code != ExitError || !strings.Contains(errOut, "does not know executor(s) 999999") {
			t.Fatalf("kill of an unknown executor: exit %d, %q", code, errOut)
		}
	})

	// The grpcurl commands `make run` prints and the README shows.
	t.Run("grpcurl", func(t *testing.T) {
		grpcurl, err := filepath.Abs("../../.local/tools/bin/grpcurl")
		if err == nil {
			_, err = os.Stat(grpcurl)
		}
		if err != nil {
			t.Fatalf("grpcurl is not installed: run `make tools` (%v)", err)
		}
		cfg, err := LoadConfig(e.config, true)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := cfg.Resolve("")
		req := fmt.Sprintf(`{"namespace":%q,"appId":%q}`, e.ns, app)
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{k.Snapshot, "list"}, "sparkpods.v1.SnapshotService"},
			{[]string{k.Snapshot, "sparkpods.v1.SnapshotService/ListApplications"}, `"appId": "` + app + `"`},
			{[]string{"-d", req, k.Snapshot, "sparkpods.v1.SnapshotService/GetSnapshot"}, `"state": "EXECUTOR_STATE_RUNNING"`},
			{[]string{"-d", req, k.Allocator, "sparkpods.v1.SchedulerService/GetApplication"}, `"driverPodName": "` + app + `-driver"`},
			{[]string{"-d", req, k.Lifecycle, "sparkpods.v1.LifecycleService/ListExecutorEvents"}, "{"},
		} {
			tls := []string{"-cacert", k.TLSCAFile, "-cert", k.TLSCertFile, "-key", k.TLSKeyFile}
			out, err := exec.Command(grpcurl, append(tls, tt.args...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("grpcurl %s: %v\n%s\nwant %q in it", strings.Join(tt.args, " "), err, out, tt.want)
			}
		}
	})

	// Every grpcurl line of the README's example block, run as written in a
	// shell with the variables it asks the reader to set: the addresses, and
	// TLS, grpcurl's -cacert, -cert and -key flags with the CA bundle and
	// the operator's certificate and key (the README sets it for `make
	// run`'s files; the lines here run with this test's).
	t.Run("README grpcurl", func(t *testing.T) {
		grpcurl, err := filepath.Abs("../../.local/tools/bin/grpcurl")
		if err == nil {
			_, err = os.Stat(grpcurl)
		}
		if err != nil {
			t.Fatalf("grpcurl is not installed: run `make tools` (%v)", err)
		}
		readme, err := os.ReadFile("../../README.md")
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, line := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(line, "grpcurl ") {
				lines = append(lines, line)
			}
		}
		if len(lines) < 6 {
			t.Fatalf("found %d grpcurl lines in README.md, want the 6 of its example block", len(lines))
		}
		cfg, err := LoadConfig(e.config, true)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := cfg.Resolve("")
		// What each RPC must print for the line to count as working.
		wants := map[string]string{
			" list":               "sparkpods.v1.SnapshotService",
			"Health/Check":        `"status": "SERVING"`,
			"/ListApplications":   `"appId": "` + app + `"`,
			"/GetSnapshot":        `"state": "EXECUTOR_STATE_RUNNING"`,
			"/ListExecutors":      `"profiles"`,
			"/ListExecutorEvents": `"lastSequence"`,
		}
		for _, line := range lines {
			cmd := exec.Command("bash", "-c", line)
			cmd.Env = append(os.Environ(),
				"PATH="+filepath.Dir(grpcurl)+string(os.PathListSeparator)+os.Getenv("PATH"),
				"SNAPSHOT="+k.Snapshot, "ALLOCATOR="+k.Allocator, "LIFECYCLE="+k.Lifecycle,
				"TLS="+strings.Join([]string{"-cacert", k.TLSCAFile, "-cert", k.TLSCertFile, "-key", k.TLSKeyFile}, " "),
				"NS="+e.ns, "APP="+app)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s: %v\n%s", line, err, out)
				continue
			}
			matched := false
			for suffix, want := range wants {
				if strings.Contains(line, suffix) {
					matched = true
					if !strings.Contains(string(out), want) {
						t.Errorf("%s printed:\n%s\nwant %q in it", line, out, want)
					}
				}
			}
			if !matched {
				t.Errorf("%s: no expectation for this README line; add one", line)
			}
		}
	})

	// The operator's certificate comes from flags here, over a config that
	// has the addresses only.
	t.Run("mutual TLS from flags", func(t *testing.T) {
		bare := e.configWithout(t)
		e.eventually(app, "--config", bare, "--tls-ca-file", e.operator.Files.CAFile,
			"--tls-cert-file", e.operator.Files.CertFile, "--tls-key-file", e.operator.Files.KeyFile, "get", "apps")
	})

	t.Run("no credentials", func(t *testing.T) {
		bare := e.configWithout(t)
		code, out, errOut := e.ctl(context.Background(), "--config", bare, "--tls-ca-file", e.operator.Files.CAFile, "get", "apps")
		if code != ExitError || !strings.Contains(errOut, "Error from server (Unauthenticated)") ||
			!strings.Contains(errOut, "credentials") || !strings.Contains(errOut, "--tls-cert-file") {
			t.Fatalf("get apps with no client certificate or token: exit %d\n%s%s\nwant exit %d, Unauthenticated and a hint at the credentials flags", code, out, errOut, ExitError)
		}
		t.Logf("sparkpodsctl printed: %s", errOut)
	})

	t.Run("no RBAC grant", func(t *testing.T) {
		stranger, err := e.pki.Issue(strangerName)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := e.ctl(context.Background(), "--tls-cert-file", stranger.CertFile, "--tls-key-file", stranger.KeyFile, "get", "executors", app)
		want := fmt.Sprintf(`user %q may not get sparkpods.io/applications %q in namespace %q`, strangerName, app, e.ns)
		if code != ExitError || !strings.Contains(errOut, "Error from server (PermissionDenied)") || !strings.Contains(errOut, want) {
			t.Fatalf("get executors as a user without RBAC: exit %d\n%s%s\nwant exit %d and PermissionDenied: %s", code, out, errOut, ExitError, want)
		}
		t.Logf("sparkpodsctl printed: %s", errOut)
	})

	t.Run("plaintext to a TLS service", func(t *testing.T) {
		code, out, errOut := e.ctl(context.Background(), "--insecure", "--timeout", "5s", "get", "apps")
		if code != ExitError || !strings.Contains(errOut, "error: the service is unavailable") {
			t.Fatalf("get apps in plaintext: exit %d\n%s%s", code, out, errOut)
		}
		t.Logf("sparkpodsctl printed: %s", errOut)
	})

	t.Run("errors", func(t *testing.T) {
		code, _, errOut := e.ctl(context.Background(), "explain", "spark-unknown")
		if code != ExitError || !strings.Contains(errOut, "Error from server (NotFound)") {
			t.Fatalf("explain of an unknown app: exit %d, %q", code, errOut)
		}
		code, _, errOut = e.ctl(context.Background(), "get", "executors", "spark-unknown")
		if code != ExitOK || !strings.Contains(errOut, "No executors of spark-unknown found") {
			t.Fatalf("get executors of an unknown app: exit %d, %q", code, errOut)
		}
	})
}
