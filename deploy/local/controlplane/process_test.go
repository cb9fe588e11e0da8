package controlplane

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitErrorMarksLostPort(t *testing.T) {
	tests := []struct {
		name      string
		log       string
		wantRetry bool
	}{
		{name: "port taken", log: "listen tcp 127.0.0.1:40001: bind: address already in use\n", wantRetry: true},
		{name: "other failure", log: "error: unknown flag --bogus\n", wantRetry: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "etcd.log")
			if err := os.WriteFile(logPath, []byte(tt.log), 0o644); err != nil {
				t.Fatal(err)
			}
			c := &child{Process: Process{Name: "etcd"}, logPath: logPath, waitErr: &exec.ExitError{}}
			err := c.exitError("etcd")
			if got := errors.Is(err, errAddrInUse); got != tt.wantRetry {
				t.Errorf("errors.Is(err, errAddrInUse) = %v, want %v (err: %v)", got, tt.wantRetry, err)
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(tt.log)) {
				t.Errorf("error %q does not quote the log", err)
			}
		})
	}
}

func TestProcessAliveForSelf(t *testing.T) {
	ticks, state, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := procExe(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self := Process{Name: "test", PID: os.Getpid(), Binary: exe, startTicks: ticks}
	if !self.Alive() || state == 'Z' {
		t.Errorf("the test binary itself is not Alive: %+v state %c", self, state)
	}
	if gone := (Process{PID: 1 << 30}); gone.Alive() {
		t.Error("a PID beyond pid_max is Alive")
	}
}
