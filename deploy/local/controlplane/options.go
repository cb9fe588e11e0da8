package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BinEnv names the environment variable that overrides where the control-plane binaries are
// looked up. Without it they are taken from <module root>/bin, where the Makefile builds them.
const BinEnv = "SPARKPODS_BIN"

// modulePath identifies the sparkpods module root when BinEnv is not set; matching the path,
// not just any go.mod, skips the wrapper modules under deploy/local/.
const modulePath = "github.com/sparkpods/sparkpods"

// binaries are the programs Start runs, in start order.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// ErrMissingBinaries is returned by Start when a control-plane binary is not built yet.
var ErrMissingBinaries = errors.New("control-plane binaries missing: run `make cluster-bins` (or `make test`, which builds them first), or point " + BinEnv + " at a directory holding them")

const (
	defaultNodes       = 2
	defaultStartupWait = 2 * time.Minute
	defaultStopWait    = 10 * time.Second
)

// Options configure Start. Only Dir is required.
type Options struct {
	// Dir holds everything the control plane writes: PKI, kubeconfig, configuration files,
	// etcd's data and one log file per process. The caller owns it: Start creates it if it is
	// missing and Stop leaves it in place, so logs survive for a post-mortem.
	Dir string

	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	// Default: $SPARKPODS_BIN, then <module root>/bin.
	BinDir string

	// Nodes is the number of fake kwok nodes to create. Default 2.
	Nodes int

	// Detached starts processes that outlive the caller (for `make cluster-up`): each gets its
	// own session and no parent-death signal, and Start records them in Dir's PID file so
	// StopDetached can stop them later from another process. Without Detached the kernel kills
	// every child when the process that started it dies, so a crashed test binary leaves
	// nothing behind.
	Detached bool

	// APIServerPort fixes the kube-apiserver port on 127.0.0.1, so a kubeconfig written for a
	// detached cluster stays valid. Zero picks a free port, which is what tests want.
	APIServerPort int

	// StartupTimeout bounds Start. Default 2 minutes: on a busy 2-core machine several test
	// packages start their own control planes at once.
	StartupTimeout time.Duration

	// StopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL. Default 10s.
	StopTimeout time.Duration
}

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("options: Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, fmt.Errorf("options: Dir: %w", err)
	}
	o.Dir = dir
	if o.Nodes < 0 {
		return o, fmt.Errorf("options: Nodes must not be negative, got %d", o.Nodes)
	}
	if o.Nodes == 0 {
		o.Nodes = defaultNodes
	}
	if o.APIServerPort < 0 || o.APIServerPort > 65535 {
		return o, fmt.Errorf("options: APIServerPort %d out of range", o.APIServerPort)
	}
	if o.StartupTimeout < 0 || o.StopTimeout < 0 {
		return o, errors.New("options: timeouts must not be negative")
	}
	if o.StartupTimeout == 0 {
		o.StartupTimeout = defaultStartupWait
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = defaultStopWait
	}
	if o.BinDir == "" {
		if o.BinDir, err = DefaultBinDir(); err != nil {
			return o, err
		}
	}
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return o, fmt.Errorf("options: BinDir: %w", err)
	}
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return o, fmt.Errorf("%w (not in %s: %s)", ErrMissingBinaries, o.BinDir, strings.Join(missing, ", "))
	}
	return o, nil
}

// DefaultBinDir returns $SPARKPODS_BIN if set, otherwise the bin directory of the sparkpods
// module root found by walking up from the working directory.
func DefaultBinDir() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find bin dir: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isModuleRoot(d) {
			return filepath.Join(d, "bin"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find bin dir: no go.mod of %s above %s; set %s: %w", modulePath, wd, BinEnv, ErrMissingBinaries)
		}
	}
}

// isModuleRoot reports whether dir/go.mod declares the sparkpods module.
func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}
