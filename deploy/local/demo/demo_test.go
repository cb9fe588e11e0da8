package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// syncBuffer is a bytes.Buffer the scenario's goroutines can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDemoReachesEveryState runs the demo as `make run </dev/null` does, at
// a smaller size, against the package's control plane (the --kubeconfig
// path, as on a real cluster) with the four service binaries from bin/.
func TestDemoReachesEveryState(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var out syncBuffer
	err := run(ctx, options{
		stateDir:    t.TempDir(),
		kubeconfig:  cp.KubeconfigPath(),
		namespace:   ns,
		executors:   60,
		interactive: "false",
	}, &out)
	t.Logf("the demo printed:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

	printed := out.String()
	for _, want := range []string{
		"using the cluster from your kubeconfig",
		"mutual TLS with the local CA in ",
		"✔ registered with the allocator",
		"✔ 40 + 20 executors running and registered",
		"lost, pod failed, exit code 137, caused by app: true — The executor with id",
		"exited with exit code 137(SIGKILL, possible container OOM).",
		"lost, pod failed, exit code 52, caused by app: true — The executor with id",
		"exited with exit code 52(JVM OOM).",
		"✔ the allocator replaced the failed executors",
		"✔ decommissioned executors gone",
		"✔ ramped down to 8 + 4 executors",
		"idle executors released",
		"✔ every executor pod deleted",
		"the demo reached every expected state",
		"stopped the sparkpods services",
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("the demo did not print %q", want)
		}
	}
	if n := strings.Count(printed, "exit code 137, caused by app: true"); n != 3 {
		t.Errorf("printed %d losses with exit code 137, want 3", n)
	}
	if n := strings.Count(printed, "exit code 52, caused by app: true"); n != 2 {
		t.Errorf("printed %d losses with exit code 52, want 2", n)
	}
}

func TestOptionsRejectATinyDemo(t *testing.T) {
	err := run(context.Background(), options{stateDir: t.TempDir(), executors: 10, interactive: "false"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "--executors 10") {
		t.Fatalf("run with --executors 10 = %v, want a usage error", err)
	}
}
