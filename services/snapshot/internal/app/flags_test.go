package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/services/snapshot/internal/app"
)

// kubeconfig writes a minimal kubeconfig, enough to build a client config.
func kubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func parse(t *testing.T, args ...string) (app.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var f app.Flags
	f.Bind(fs)
	if err := fs.Parse(append([]string{"--kubeconfig", kubeconfig(t)}, args...)); err != nil {
		t.Fatal(err)
	}
	return f.Config()
}

func TestFlagDefaultsAreSparks(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Watch || !cfg.Poll || cfg.PollInterval != 30*time.Second || !cfg.Mapping.CheckAllContainers ||
		cfg.Mapping.ExecutorContainerName != "spark-kubernetes-executor" || cfg.Namespaces != nil || cfg.Listen != app.DefaultListen {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestFlags(t *testing.T) {
	cfg, err := parse(t, "--namespaces", "spark-a, spark-b", "--enable-api-polling=false", "--check-all-containers=false",
		"--executor-container-name", "main", "--master", "k8s://https://10.0.0.1:443")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Namespaces, ",") != "spark-a,spark-b" || cfg.Poll || cfg.Mapping.CheckAllContainers ||
		cfg.Mapping.ExecutorContainerName != "main" || cfg.RESTConfig.Host != "https://10.0.0.1:443" {
		t.Fatalf("config = %+v", cfg)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--enable-api-polling=false", "--enable-api-watcher=false"},
		{"--api-polling-interval", "0s"},
		{"--namespaces", "Spark_Jobs"},
		{"--history", "0"},
		{"--max-executors-per-message", "0"},
		{"--log-level", "loud"},
	} {
		if _, err := parse(t, args...); err == nil {
			t.Errorf("%v: accepted", args)
		} else {
			t.Logf("%v: %v", args, err)
		}
	}
}
