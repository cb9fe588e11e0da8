package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// stopGrace is how long `down` waits after SIGTERM before SIGKILL, per process.
const stopGrace = 10 * time.Second

func up(ctx context.Context, cfg config, out io.Writer) error {
	if s, err := controlplane.ReadState(cfg.stateDir); err == nil && allAlive(s) && serving(ctx, s) {
		if err := copyKubeconfig(s.Kubeconfig, cfg.kubeconfigOut); err != nil {
			return err
		}
		printf(out, "local control plane already running (%s); `localcluster down` stops it\n", s.Server)
		printHint(out, cfg.kubeconfigOut)
		return issueServiceCerts(ctx, cfg, out)
	}
	began := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{
		Dir:            cfg.stateDir,
		BinDir:         cfg.binDir,
		Nodes:          cfg.nodes,
		Detached:       true,
		APIServerPort:  cfg.apiserverPort,
		StartupTimeout: cfg.timeout,
	})
	if errors.Is(err, controlplane.ErrAlreadyRunning) {
		return fmt.Errorf("%w; run `localcluster down` first", err)
	}
	if err != nil {
		return err
	}
	// The kubeconfig first: whatever happens to the output, `up` has done its job.
	if err := copyKubeconfig(cp.KubeconfigPath(), cfg.kubeconfigOut); err != nil {
		return err
	}
	printf(out, "local control plane ready in %v: %s, %d kwok nodes\n",
		time.Since(began).Round(time.Millisecond), cp.Server(), len(cp.Nodes()))
	for _, p := range cp.Processes() {
		printf(out, "  %-24s pid %d\n", p.Name, p.PID)
	}
	printf(out, "logs in %s\n", cp.Dir())
	printHint(out, cfg.kubeconfigOut)
	return issueServiceCerts(ctx, cfg, out)
}

// issueServiceCerts keeps the sparkpods services' local CA in
// <state-dir>/services-pki, issues each service and a local operator a
// certificate, and lets the operator act on every application, so that
// services run against this control plane by hand are as secure as
// deployed ones.
func issueServiceCerts(ctx context.Context, cfg config, out io.Writer) error {
	pki, err := servicepki.Open(filepath.Join(cfg.stateDir, "services-pki"))
	if err != nil {
		return err
	}
	for _, name := range []string{"snapshot", "podmanager", "allocator", "lifecycle"} {
		if _, err := pki.Issue(launch.Identity(name)); err != nil {
			return err
		}
	}
	operator, err := pki.Issue("sparkpods-local-operator", launch.OperatorGroup)
	if err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfigOut)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if err := launch.GrantOperators(ctx, kube); err != nil {
		return err
	}
	dir := pki.Dir()
	printf(out, "service certificates (mutual TLS) in %s:\n", dir)
	printf(out, "  serve:  bin/sparkpods-snapshot --kubeconfig %s --tls-cert-file %s/sparkpods-snapshot.crt --tls-key-file %s/sparkpods-snapshot.key --tls-ca-file %s\n",
		cfg.kubeconfigOut, dir, dir, pki.CAFile())
	printf(out, "  call:   bin/sparkpodsctl --snapshot-addr localhost:8081 --tls-ca-file %s --tls-cert-file %s --tls-key-file %s get apps\n",
		operator.CAFile, operator.CertFile, operator.KeyFile)
	return nil
}

func printHint(out io.Writer, kubeconfig string) {
	printf(out, "kubeconfig: %s\ntry: KUBECONFIG=%s bin/kubectl get nodes\n", kubeconfig, kubeconfig)
}

// copyKubeconfig puts the admin kubeconfig where tools expect it.
func copyKubeconfig(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

func down(cfg config, out io.Writer) error {
	stopped, err := controlplane.StopDetached(cfg.stateDir, stopGrace)
	if errors.Is(err, controlplane.ErrNotRunning) {
		printf(out, "no local control plane running (no %s in %s)\n", controlplane.PIDFile, cfg.stateDir)
		return nil
	}
	for _, p := range stopped {
		printf(out, "stopped %-24s pid %d\n", p.Name, p.PID)
	}
	if err != nil {
		return err
	}
	if len(stopped) == 0 {
		printf(out, "none of the recorded processes was still running; removed the stale PID file\n")
	}
	return nil
}

func status(ctx context.Context, cfg config, out io.Writer) error {
	s, err := controlplane.ReadState(cfg.stateDir)
	if errors.Is(err, controlplane.ErrNotRunning) {
		printf(out, "no local control plane running (no %s in %s)\n", controlplane.PIDFile, cfg.stateDir)
		return errors.New("not running")
	}
	if err != nil {
		return err
	}
	for _, p := range s.Processes {
		state := "running"
		if !p.Alive() {
			state = "NOT RUNNING"
		}
		printf(out, "%-24s pid %-8d %s\n", p.Name, p.PID, state)
	}
	ready, nodes, err := probe(ctx, s.Kubeconfig)
	if err != nil {
		printf(out, "kube-apiserver %s: %v\n", s.Server, err)
		return errors.New("not ready")
	}
	printf(out, "kube-apiserver %s: ready; nodes Ready: %d of %d\n", s.Server, ready, nodes)
	if !allAlive(s) {
		return errors.New("not every process is running; `localcluster down` then `up` restarts them")
	}
	return nil
}

// probe checks /readyz and counts Ready nodes.
func probe(ctx context.Context, kubeconfig string) (ready, total int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 0, 0, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return 0, 0, err
	}
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return 0, 0, fmt.Errorf("/readyz: %w", err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, len(nodes.Items), nil
}

// serving reports whether the recorded control plane answers; a PID file whose processes live
// may still be left from an `up` that died half-way.
func serving(ctx context.Context, s *controlplane.State) bool {
	_, _, err := probe(ctx, s.Kubeconfig)
	return err == nil
}

func allAlive(s *controlplane.State) bool {
	for _, p := range s.Processes {
		if !p.Alive() {
			return false
		}
	}
	return len(s.Processes) > 0
}

// printf writes to the terminal; there is nobody to tell if that fails.
func printf(out io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(out, format, args...)
}
