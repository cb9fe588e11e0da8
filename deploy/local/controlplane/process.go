package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process identifies one control-plane process.
type Process struct {
	Name   string // etcd, kube-apiserver, kube-controller-manager, kube-scheduler or kwok
	PID    int
	Binary string // absolute path of the executable, as the kernel reported it after start

	// startTicks is the process start time in clock ticks since boot (/proc/PID/stat field
	// 22). Together with Binary it tells our process apart from a later one that reuses the PID.
	startTicks uint64
}

// Alive reports whether p is still running, and is still the process that was started: a
// reused PID with another binary or another start time does not count. Zombies do not count.
func (p Process) Alive() bool {
	ticks, state, err := procStat(p.PID)
	if err != nil || state == 'Z' || ticks != p.startTicks {
		return false
	}
	exe, err := procExe(p.PID)
	return err == nil && exe == p.Binary
}

// child is a process started by this ControlPlane.
type child struct {
	Process
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // Wait's result; read only after exited is closed
}

// startChild runs bin with args, logging to dir/name.log. A detached child gets its own
// session so it outlives the caller and its terminal; an attached child gets its own
// process group, so a Ctrl-C aimed at `go test` reaches only the test binary, which then
// stops the children in order; and Pdeathsig, so the kernel kills it if the test binary dies first.
// Every exit is reported on died, which must have room for one value per child.
func startChild(name, bin, dir string, args, env []string, detached bool, died chan<- *child) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// The log is an *os.File, so the child writes to it directly: no pipe that would break
	// when a detached child's starter exits.
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	err = cmd.Start()
	_ = log.Close() // the child holds its own descriptor now
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{
		Process: Process{Name: name, PID: cmd.Process.Pid, Binary: bin},
		cmd:     cmd,
		logPath: logPath,
		exited:  make(chan struct{}),
	}
	// Record the identity the kernel sees now, while the PID is certainly ours.
	if ticks, _, err := procStat(c.PID); err == nil {
		c.startTicks = ticks
	}
	if exe, err := procExe(c.PID); err == nil {
		c.Binary = exe
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
		died <- c
	}()
	return c, nil
}

// stop sends SIGTERM, waits up to grace, then sends SIGKILL. It returns once the process has
// been reaped.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", c.Name, c.PID, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-c.exited:
		return nil
	case <-timer.C:
	}
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", c.Name, c.PID, err)
	}
	<-c.exited
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", c.Name, c.PID, grace)
}

// exitError describes an unexpected exit with the end of the child's log, which is where
// kube-apiserver and friends explain themselves.
func (c *child) exitError(while string) error {
	status := "exited"
	if c.waitErr != nil {
		status = c.waitErr.Error()
	}
	tail := logTail(c.logPath, 20)
	err := fmt.Errorf("%s %s while waiting for %s; last lines of %s:\n%s",
		c.Name, status, while, c.logPath, tail)
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return err
}

// errAddrInUse marks a child that lost its port to another process; Start then retries.
var errAddrInUse = errors.New("port taken")

// logTail returns the last n lines of the file at path, or a note why it could not.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// procStat returns the start time (clock ticks since boot) and state of pid.
func procStat(pid int) (startTicks uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces; parse after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 { // fields[0] is field 3 (state); fields[19] is field 22 (starttime)
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	startTicks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return startTicks, fields[0][0], nil
}

// procExe returns the executable of pid. A binary rebuilt while the process runs shows up
// as "PATH (deleted)"; it is still the same program, so the suffix is dropped.
func procExe(pid int) (string, error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(exe, " (deleted)"), nil
}
