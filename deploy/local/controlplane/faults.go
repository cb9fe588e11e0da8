package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Faults a test can inject into the control plane: a crashed kube-apiserver, and an etcd
// whose history is compacted away.

// apiserverName is kube-apiserver's name among the children.
const apiserverName = "kube-apiserver"

// KillAPIServer ends kube-apiserver with SIGKILL, as a crash or an OOM kill would (a SIGTERM
// would make it drain open watches for up to a minute), and returns once it has exited.
// Everything else keeps running; StartAPIServer brings it back.
func (c *ControlPlane) KillAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("kill kube-apiserver: the control plane is stopped")
	}
	old := c.childLocked(apiserverName)
	if old == nil {
		return errors.New("kill kube-apiserver: not started")
	}
	select {
	case <-old.exited:
		return fmt.Errorf("kill kube-apiserver: pid %d already exited", old.PID)
	default:
	}
	if err := old.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill kube-apiserver (pid %d): %w", old.PID, err)
	}
	<-old.exited
	// Take the exit report off died, so that the wait for the next kube-apiserver does not
	// mistake it for a failed start. Any other report found first is a component that died
	// on its own, which the caller must hear about.
	if ch := <-c.died; ch != old {
		return ch.exitError("kube-apiserver to be killed")
	}
	return nil
}

// StartAPIServer starts kube-apiserver again, after KillAPIServer, with the flags, PKI and
// port it had, and returns once /readyz is ok. Its log goes to a new kube-apiserver.log; the
// killed process's log is kept as kube-apiserver.log.<pid>.
func (c *ControlPlane) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("start kube-apiserver: the control plane is stopped")
	}
	old := c.childLocked(apiserverName)
	if old == nil {
		return errors.New("start kube-apiserver: never started")
	}
	select {
	case <-old.exited:
	default:
		return fmt.Errorf("start kube-apiserver: pid %d is still running", old.PID)
	}
	if err := os.Rename(old.logPath, old.logPath+"."+strconv.Itoa(old.PID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start kube-apiserver: keep the old log: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartupTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		env := append(os.Environ(), "HOME="+c.opts.Dir)
		ch, err := startChild(apiserverName, filepath.Join(c.opts.BinDir, apiserverName), c.opts.Dir,
			apiserverArgs(c.keys, c.ports), env, c.opts.Detached, c.died)
		if err != nil {
			return err
		}
		c.replaceLocked(old, ch)
		if c.opts.Detached {
			if err := writeState(State{Dir: c.opts.Dir, Server: c.server, Kubeconfig: c.kubeconfig, Processes: c.processesLocked()}); err != nil {
				return err
			}
		}
		err = c.waitFor(ctx, "kube-apiserver /readyz after a restart", apiserverReady(c.client))
		// The killed process's listening socket is closed by the time it is reaped, but a
		// port this busy can still be refused for a moment; try again then.
		if err == nil || !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return err
		}
		old = ch
	}
}

// RestartAPIServer is KillAPIServer followed by StartAPIServer.
func (c *ControlPlane) RestartAPIServer(ctx context.Context) error {
	if err := c.KillAPIServer(); err != nil {
		return err
	}
	return c.StartAPIServer(ctx)
}

// CompactEtcd compacts etcd's history up to its current revision and returns that revision.
// The compaction is physical: once it returns, a watch or a list at any older revision
// fails with "required revision has been compacted", which kube-apiserver passes on as 410
// Gone, so every client that resumes from an older resourceVersion must list again. It
// uses etcd's JSON gateway, so that no etcd client library is needed.
func (c *ControlPlane) CompactEtcd(ctx context.Context) (int64, error) {
	base := loopback("http", c.ports.etcdClient)
	// A range over an absent key costs nothing and returns the current revision in its header.
	var rangeResp struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	if err := etcdCall(ctx, base+"/v3/kv/range", map[string]any{"key": "AA=="}, &rangeResp); err != nil {
		return 0, fmt.Errorf("compact etcd: current revision: %w", err)
	}
	rev, err := strconv.ParseInt(rangeResp.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("compact etcd: current revision %q: %w", rangeResp.Header.Revision, err)
	}
	if err := etcdCall(ctx, base+"/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(rev, 10), "physical": true}, nil); err != nil {
		return 0, fmt.Errorf("compact etcd to revision %d: %w", rev, err)
	}
	return rev, nil
}

// etcdCall posts body as JSON to one of etcd's gateway endpoints and decodes the answer
// into out, if out is not nil.
func etcdCall(ctx context.Context, url string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

// childLocked returns the latest child named name, or nil. c.mu must be held.
func (c *ControlPlane) childLocked(name string) *child {
	for i := len(c.children) - 1; i >= 0; i-- {
		if c.children[i].Name == name {
			return c.children[i]
		}
	}
	return nil
}

// replaceLocked puts next in old's place, so that Stop still stops the children in the
// reverse of their start order. c.mu must be held.
func (c *ControlPlane) replaceLocked(old, next *child) {
	for i, ch := range c.children {
		if ch == old {
			c.children[i] = next
			return
		}
	}
	c.children = append(c.children, next)
}

// processesLocked is Processes with c.mu held.
func (c *ControlPlane) processesLocked() []Process {
	ps := make([]Process, len(c.children))
	for i, ch := range c.children {
		ps[i] = ch.Process
	}
	return ps
}
