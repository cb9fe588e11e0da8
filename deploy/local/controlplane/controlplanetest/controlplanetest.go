// Package controlplanetest shares one local control plane among the tests of a package.
//
//	func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }
//
//	func TestSomething(t *testing.T) {
//		cp := controlplanetest.ControlPlane(t) // skips under -short
//		ns := controlplanetest.Namespace(t)
//		...
//	}
//
// Each test package is its own process, so packages run in parallel with a control plane each;
// inside a package, tests isolate themselves by namespace.
package controlplanetest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
)

// KeepEnv names the environment variable that keeps the control plane's directory (logs,
// kubeconfig) after a passing run; after a failing run it is always kept.
const KeepEnv = "SPARKPODS_KEEP"

// TestAnnotation on a namespace names the test that created it, for whoever reads the logs.
const TestAnnotation = "sparkpods.io/test"

// shared is the package's control plane, set by Main before any test runs.
var shared *controlplane.ControlPlane

// Main starts the control plane (unless -short), runs the tests, stops the control plane and
// exits with the tests' result. It never returns. SIGINT and SIGTERM stop the control plane
// before exiting too. A control plane that cannot start, missing binaries included, fails the
// package: a silent skip would let an unbuilt bin/ pass CI.
//
// opts.Dir defaults to a new temporary directory, removed after a passing run.
func Main(m *testing.M, opts controlplane.Options) {
	flag.Parse() // testing.Short needs the flags
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts controlplane.Options) int {
	tempDir := opts.Dir == ""
	if tempDir {
		dir, err := os.MkdirTemp("", "sparkpods-controlplane-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "controlplanetest:", err)
			return 1
		}
		opts.Dir = dir
	}

	// A signal during start-up cancels Start, which stops what it started; later, the handler
	// stops the control plane itself. Either way the exit status is 1.
	var running atomic.Pointer[controlplane.ControlPlane]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		cancel()
		if cp := running.Load(); cp != nil {
			stopOnSignal(cp, sig)
		}
	}()

	began := time.Now()
	cp, err := controlplane.Start(ctx, opts)
	if errors.Is(err, controlplane.ErrMissingBinaries) {
		if tempDir {
			_ = os.RemoveAll(opts.Dir) // nothing ran, so there are no logs to keep
		}
		fmt.Fprintln(os.Stderr, "controlplanetest:", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplanetest: %v\n(logs kept in %s)\n", err, opts.Dir)
		return 1
	}
	running.Store(cp)
	if ctx.Err() != nil { // the signal came after Start returned and before the Store
		stopOnSignal(cp, os.Interrupt)
	}
	fmt.Printf("controlplanetest: control plane ready in %v (%s, logs in %s)\n",
		time.Since(began).Round(time.Millisecond), cp.Server(), cp.Dir())

	shared = cp
	code := m.Run()

	stopped := time.Now()
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplanetest:", err)
		if code == 0 {
			code = 1
		}
	}
	fmt.Printf("controlplanetest: control plane stopped in %v\n", time.Since(stopped).Round(time.Millisecond))
	if code == 0 && os.Getenv(KeepEnv) == "" {
		_ = os.RemoveAll(cp.Dir())
	} else {
		fmt.Printf("controlplanetest: logs and kubeconfig kept in %s\n", cp.Dir())
	}
	return code
}

func stopOnSignal(cp *controlplane.ControlPlane, sig os.Signal) {
	fmt.Fprintf(os.Stderr, "controlplanetest: %v: stopping the control plane (logs kept in %s)\n", sig, cp.Dir())
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplanetest:", err)
	}
	os.Exit(1)
}

// ControlPlane returns the package's control plane. Under -short it skips the test.
func ControlPlane(t testing.TB) *controlplane.ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local control plane; skipped in -short mode")
	}
	if shared == nil {
		t.Fatal("controlplanetest: no control plane; call controlplanetest.Main from TestMain")
	}
	return shared
}

// Namespace creates a fresh namespace named after the test and returns its name. Pods can be
// created in it at once: the API server runs without the ServiceAccount admission plugin, so
// there is no "default" ServiceAccount to wait for (see the controlplane package).
// Namespaces are not deleted afterwards: the whole etcd is thrown away at the end of the
// package, and namespace deletion would only load the controller manager during other tests.
func Namespace(t testing.TB) string {
	t.Helper()
	cp := ControlPlane(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        namespaceName(t.Name()),
		Annotations: map[string]string{TestAnnotation: t.Name()},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cp.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns.Name, err)
	}
	return ns.Name
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

// namespaceName turns a test name into a DNS label with a random suffix, so `kubectl get ns`
// shows which test made what.
func namespaceName(testName string) string {
	base := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	if base == "" {
		base = "test"
	}
	return base + "-" + rand.String(6)
}
