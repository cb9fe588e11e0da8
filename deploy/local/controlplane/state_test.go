package controlplane

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startSleeper starts a process that lives until it is signalled, and returns it as a child.
func startSleeper(t *testing.T) *child {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary:", err)
	}
	died := make(chan *child, 1)
	c, err := startChild("sleeper", sleep, t.TempDir(), []string{"300"}, os.Environ(), false, died)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.stop(time.Second) })
	return c
}

func TestStopDetachedSparesReusedPID(t *testing.T) {
	c := startSleeper(t)
	dir := t.TempDir()

	// The PID is alive, but with another start time it is not the process that was recorded,
	// as after the original exited and the PID was handed out again.
	reused := c.Process
	reused.startTicks++
	if err := writeState(State{Dir: dir, Processes: []Process{reused}}); err != nil {
		t.Fatal(err)
	}
	stopped, err := StopDetached(dir, time.Second)
	if err != nil || len(stopped) != 0 {
		t.Fatalf("StopDetached = %v, %v; want nothing stopped", stopped, err)
	}
	if !c.Alive() {
		t.Fatal("StopDetached signalled a process it had not started")
	}
	if _, err := os.Stat(filepath.Join(dir, PIDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale PID file kept: %v", err)
	}

	// The same for another binary under the recorded PID.
	other := c.Process
	other.Binary = "/usr/bin/not-" + filepath.Base(c.Binary)
	if err := writeState(State{Dir: dir, Processes: []Process{other}}); err != nil {
		t.Fatal(err)
	}
	if stopped, err := StopDetached(dir, time.Second); err != nil || len(stopped) != 0 || !c.Alive() {
		t.Fatalf("StopDetached = %v, %v, alive %v; want nothing stopped", stopped, err, c.Alive())
	}

	// The recorded process itself is stopped.
	if err := writeState(State{Dir: dir, Processes: []Process{c.Process}}); err != nil {
		t.Fatal(err)
	}
	stopped, err = StopDetached(dir, 5*time.Second)
	if err != nil || len(stopped) != 1 {
		t.Fatalf("StopDetached = %v, %v; want the sleeper stopped", stopped, err)
	}
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("sleeper still running after StopDetached")
	}
}

func TestReadStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadState(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("ReadState of an empty dir: err = %v, want ErrNotRunning", err)
	}
	want := State{
		Dir:        dir,
		Server:     "https://127.0.0.1:16443",
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Processes:  []Process{{Name: "etcd", PID: 42, Binary: "/x/bin/etcd", startTicks: 7}},
	}
	if err := writeState(want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Server != want.Server || got.Kubeconfig != want.Kubeconfig || len(got.Processes) != 1 || got.Processes[0] != want.Processes[0] {
		t.Errorf("ReadState = %+v, want %+v", got, want)
	}
}

func TestOptionsValidation(t *testing.T) {
	emptyBin := t.TempDir()
	tests := []struct {
		name    string
		opts    Options
		wantErr error // nil: any error
	}{
		{name: "no dir", opts: Options{BinDir: emptyBin}},
		{name: "negative nodes", opts: Options{Dir: t.TempDir(), BinDir: emptyBin, Nodes: -1}},
		{name: "bad port", opts: Options{Dir: t.TempDir(), BinDir: emptyBin, APIServerPort: 70000}},
		{name: "no binaries", opts: Options{Dir: t.TempDir(), BinDir: emptyBin}, wantErr: ErrMissingBinaries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.withDefaults()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
