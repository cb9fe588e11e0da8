package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// PIDFile is the PID file a detached control plane keeps in its Dir.
const PIDFile = "pids.json"

var (
	// ErrNotRunning is returned by ReadState and StopDetached when Dir has no PID file.
	ErrNotRunning = errors.New("no local control plane recorded")
	// ErrAlreadyRunning is returned by a detached Start when Dir's PID file names live processes.
	ErrAlreadyRunning = errors.New("a local control plane is already running")
)

// State describes a detached control plane as recorded in its PID file.
type State struct {
	Dir        string
	Server     string // kube-apiserver URL
	Kubeconfig string // admin kubeconfig inside Dir
	Processes  []Process
}

// stateRecord is the on-disk form of State; it keeps Process.startTicks, which the public type hides.
type stateRecord struct {
	Server     string          `json:"server"`
	Kubeconfig string          `json:"kubeconfig"`
	Processes  []processRecord `json:"processes"`
}

type processRecord struct {
	Name       string `json:"name"`
	PID        int    `json:"pid"`
	Binary     string `json:"binary"`
	StartTicks uint64 `json:"startTicks"`
}

// writeState replaces dir's PID file atomically, so a reader never sees half of it.
func writeState(s State) error {
	f := stateRecord{Server: s.Server, Kubeconfig: s.Kubeconfig}
	for _, p := range s.Processes {
		f.Processes = append(f.Processes, processRecord{Name: p.Name, PID: p.PID, Binary: p.Binary, StartTicks: p.startTicks})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write PID file: %w", err)
	}
	tmp := filepath.Join(s.Dir, PIDFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write PID file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, PIDFile)); err != nil {
		return fmt.Errorf("write PID file: %w", err)
	}
	return nil
}

// ReadState reads the PID file in dir. It returns ErrNotRunning if there is none.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, PIDFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNotRunning, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read PID file: %w", err)
	}
	var f stateRecord
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read PID file %s: %w", filepath.Join(dir, PIDFile), err)
	}
	s := &State{Dir: dir, Server: f.Server, Kubeconfig: f.Kubeconfig}
	for _, r := range f.Processes {
		s.Processes = append(s.Processes, Process{Name: r.Name, PID: r.PID, Binary: r.Binary, startTicks: r.StartTicks})
	}
	return s, nil
}

// StopDetached stops the processes named by dir's PID file, last started first: SIGTERM, then
// SIGKILL after grace. A process is signalled only while its PID still has the recorded binary
// and start time, so a PID reused since `up` is never touched. It returns the processes it
// stopped and removes the PID file once none of them is left. Without a PID file it returns
// ErrNotRunning.
func StopDetached(dir string, grace time.Duration) ([]Process, error) {
	s, err := ReadState(dir)
	if err != nil {
		return nil, err
	}
	var stopped []Process
	var errs []error
	for i := len(s.Processes) - 1; i >= 0; i-- {
		p := s.Processes[i]
		ok, err := stopRecorded(p, grace)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			stopped = append(stopped, p)
		}
	}
	if len(errs) > 0 {
		return stopped, errors.Join(errs...)
	}
	if err := os.Remove(filepath.Join(dir, PIDFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return stopped, fmt.Errorf("remove PID file: %w", err)
	}
	return stopped, nil
}

// stopRecorded stops p if it is still the recorded process and reports whether it did.
func stopRecorded(p Process, grace time.Duration) (bool, error) {
	// Take a handle first (a pidfd on Linux) and check the identity after: if the check passes,
	// the handle refers to that very process, and signals through it cannot reach a newcomer.
	h, err := os.FindProcess(p.PID)
	if err != nil {
		return false, nil
	}
	defer func() { _ = h.Release() }()
	if !p.Alive() {
		return false, nil
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := h.Signal(sig); err != nil {
			if errors.Is(err, os.ErrProcessDone) {
				return true, nil
			}
			return false, fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID, err)
		}
		// The process is not our child, so it cannot be waited for; it is gone once its PID no
		// longer matches (reaped) or it is a zombie (its parent, usually init, will reap it).
		deadline := time.Now().Add(grace)
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(pollInterval)
		}
		if !p.Alive() {
			return true, nil
		}
	}
	return false, fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID)
}
