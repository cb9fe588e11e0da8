package sparkconf

import (
	"errors"
	"strings"
	"testing"
)

func TestEntryDefaultsAndFallback(t *testing.T) {
	conf := Conf{"spark.kubernetes.container.image": "spark:4.0"}
	img, ok, err := ExecutorContainerImage.Lookup(conf)
	if err != nil || !ok || img != "spark:4.0" {
		t.Fatalf("ExecutorContainerImage.Lookup = %q, %v, %v; want the fallback key's value", img, ok, err)
	}
	conf["spark.kubernetes.executor.container.image"] = "exec:4.0"
	if img, _ := ExecutorContainerImage.Get(conf); img != "exec:4.0" {
		t.Fatalf("ExecutorContainerImage.Get = %q, want the executor key to win", img)
	}
	if mem, err := ExecutorMemory.Get(Conf{}); err != nil || mem != 1024 {
		t.Fatalf("ExecutorMemory default = %d, %v; want 1024", mem, err)
	}
	if on, err := ExecutorCheckAllContainers.Get(Conf{}); err != nil || !on {
		t.Fatalf("ExecutorCheckAllContainers default = %v, %v; want true (Spark 4.0+)", on, err)
	}
}

func TestEntryErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		conf Conf
		get  func(Conf) error
		key  string
	}{
		{"bad size", Conf{"spark.executor.memory": "4x"}, func(c Conf) error { _, err := ExecutorMemory.Get(c); return err }, "spark.executor.memory"},
		{"zero cores", Conf{"spark.executor.cores": "0"}, func(c Conf) error { _, err := ExecutorCores.Get(c); return err }, "spark.executor.cores"},
		{"bad policy", Conf{"spark.kubernetes.container.image.pullPolicy": "always"}, func(c Conf) error { _, err := ImagePullPolicy.Get(c); return err }, "spark.kubernetes.container.image.pullPolicy"},
		{"bad bool", Conf{"spark.kubernetes.executor.checkAllContainers": "yes"}, func(c Conf) error { _, err := ExecutorCheckAllContainers.Get(c); return err }, "spark.kubernetes.executor.checkAllContainers"},
		{"missing image", Conf{}, func(c Conf) error { _, err := ExecutorContainerImage.Require(c); return err }, "spark.kubernetes.executor.container.image"},
		{"blank image", Conf{"spark.kubernetes.container.image": " "}, func(c Conf) error { _, err := ExecutorContainerImage.Require(c); return err }, "spark.kubernetes.executor.container.image"},
		{"bad fallback value", Conf{"spark.kubernetes.scheduler.name": "x"}, func(c Conf) error { _, err := ExecutorSchedulerName.Require(c); return err }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.get(tt.conf)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %v is not a *sparkconf.Error", err)
			}
			if cerr.Key != tt.key || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q names key %q, want %q", err, cerr.Key, tt.key)
			}
		})
	}
}

func TestErrorRedactsSecretsAndTruncates(t *testing.T) {
	err := &Error{Key: "spark.authenticate.secret", Value: "hunter2", Reason: "bad"}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("%q repeats a secret", err)
	}
	long := &Error{Key: "spark.kubernetes.executor.podTemplateFile", Value: strings.Repeat("x", 1000), Reason: "bad"}
	if len(long.Error()) > 300 {
		t.Fatalf("error message is %d bytes long; want a bounded message", len(long.Error()))
	}
}

func TestWithPrefix(t *testing.T) {
	conf := Conf{"spark.kubernetes.executor.label.team": "a", "spark.kubernetes.executor.labels": "x", "spark.executorEnv.FOO": "1"}
	got := conf.WithPrefix(ExecutorLabelPrefix)
	if len(got) != 1 || got["team"] != "a" {
		t.Fatalf("WithPrefix = %v", got)
	}
}
