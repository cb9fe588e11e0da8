package sparkpodsctl

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestPrintExecutors(t *testing.T) {
	execs := []*sparkpodsv1.Executor{
		{ExecutorId: 1, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING, PodName: "app-exec-1", NodeName: "kwok-node-0",
			CreateTime: timestamppb.New(now.Add(-90 * time.Second))},
		{ExecutorId: 2, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, ResourceProfileId: 1, PodName: "app-exec-2", NodeName: "kwok-node-1",
			CreateTime:  timestamppb.New(now.Add(-3 * time.Hour)),
			Termination: &sparkpodsv1.ContainerTermination{ExitCode: 137, Reason: "OOMKilled"}},
		{ExecutorId: 3, State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING, PodName: "app-exec-3", Decommissioning: true,
			CreateTime: timestamppb.New(now.Add(-5 * time.Minute))},
	}
	var b bytes.Buffer
	if err := printExecutors(&b, execs, now); err != nil {
		t.Fatal(err)
	}
	want := `ID   STATE     PROFILE   POD          NODE          EXIT     REASON            AGE
1    Running   0         app-exec-1   kwok-node-0   <none>   <none>            90s
2    Failed    1         app-exec-2   kwok-node-1   137      OOMKilled         3h
3    Pending   0         app-exec-3   <none>        <none>   Decommissioning   5m
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Fatalf("table (-want +got):\n%s", diff)
	}
}

func TestPrintEvents(t *testing.T) {
	evs := []*sparkpodsv1.ExecutorEvent{{
		Sequence: 7, Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED, ExecutorId: 4,
		State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED, ResourceProfileId: 1, Time: timestamppb.New(now.Add(-10 * time.Second)),
		Exit: &sparkpodsv1.ExecutorExit{ExitCode: 52, ExitCausedByApp: true,
			Message: "The executor with id 4 exited with exit code 52(JVM OOM).\n\nThe API gave the following brief reason: Error"},
	}, {
		Sequence: 8, Type: sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED, Time: timestamppb.New(now),
		Exit: &sparkpodsv1.ExecutorExit{ExitCode: 11, Message: "Max number of executor failures (3) reached"},
	}}
	var b bytes.Buffer
	if err := printEvents(&b, evs, now); err != nil {
		t.Fatal(err)
	}
	want := `SEQ   TYPE                   EXECUTOR   PROFILE   STATE    EXIT   BY-APP   AGE   REASON
7     Removed                4          1         Failed   52     true     10s   The executor with id 4 exited with exit code 52(JVM OOM).
8     FailureLimitExceeded   0          0         <none>   11     false    0s    Max number of executor failures (3) reached
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Fatalf("table (-want +got):\n%s", diff)
	}
}

func TestPrintMessageFormats(t *testing.T) {
	resp := &sparkpodsv1.ListApplicationsResponse{Applications: []*sparkpodsv1.ApplicationSummary{{
		Namespace: "spark", AppId: "spark-1", Revision: 12, Counts: &sparkpodsv1.ExecutorCounts{Running: 3, Failed: 1},
	}}}
	tests := []struct{ format, want string }{
		{OutputYAML, "applications:\n- appId: spark-1\n  counts:\n    failed: 1\n    running: 3\n  namespace: spark\n  revision: \"12\"\n"},
		{"json-line", `{"applications":[{"namespace":"spark","appId":"spark-1","revision":"12","counts":{"running":3,"failed":1}}]}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := printMessage(&b, tt.format, resp); err != nil {
				t.Fatal(err)
			}
			// protojson may vary whitespace; compare without it.
			got, want := strings.Join(strings.Fields(b.String()), ""), strings.Join(strings.Fields(tt.want), "")
			if got != want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
	var b bytes.Buffer
	if err := printApplications(&b, resp.GetApplications()); err != nil {
		t.Fatal(err)
	}
	want := "NAMESPACE   APP       PENDING   RUNNING   SUCCEEDED   FAILED   DELETED   REVISION\nspark       spark-1   0         3         0           1        0         12\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Fatalf("table (-want +got):\n%s", diff)
	}
}

func TestConfigResolveAndFlagOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	cfg := Config{CurrentContext: "b", Contexts: []Context{
		{Name: "a", Snapshot: "a:1"},
		{Name: "b", Snapshot: "b:1", Allocator: "b:2", Namespace: "spark"},
	}}
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want options
	}{
		{"current context with defaults", nil,
			options{snapshot: "b:1", allocator: "b:2", lifecycle: "localhost:50053", podmanager: "localhost:50054", namespace: "spark"}},
		{"another context", []string{"--context", "a"},
			options{snapshot: "a:1", allocator: "localhost:50052", lifecycle: "localhost:50053", podmanager: "localhost:50054", namespace: "default"}},
		{"flags override", []string{"--snapshot-addr", "x:9", "-n", "other"},
			options{snapshot: "x:9", allocator: "b:2", lifecycle: "localhost:50053", podmanager: "localhost:50054", namespace: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, o := newRoot(Streams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
			// A command that only resolves the endpoints.
			cmd.SetArgs(append([]string{"--config", path, "get", "apps", "--help"}, tt.args...))
			if err := cmd.ParseFlags(append([]string{"--config", path}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if err := o.complete(cmd); err != nil {
				t.Fatal(err)
			}
			got := [5]string{o.snapshot, o.allocator, o.lifecycle, o.podmanager, o.namespace}
			want := [5]string{tt.want.snapshot, tt.want.allocator, tt.want.lifecycle, tt.want.podmanager, tt.want.namespace}
			if got != want {
				t.Fatalf("endpoints = %v, want %v", got, want)
			}
		})
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown output", []string{"get", "apps", "-o", "xml"}, ExitUsage, `--output "xml": want table, json or yaml`},
		{"missing config", []string{"--config", filepath.Join(dir, "nope"), "get", "apps"}, ExitUsage, "no such file"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
		{"bad executor id", []string{"kill", "app", "x"}, ExitUsage, `executor id "x"`},
		{"scale needs a count", []string{"scale", "app"}, ExitUsage, "--executors N"},
		{"nothing listening", []string{"--insecure", "--snapshot-addr", "127.0.0.1:1", "--timeout", "2s", "get", "apps"}, ExitError, "the service is unavailable"},
		{"no CA bundle", []string{"--snapshot-addr", "127.0.0.1:1", "get", "apps"}, ExitUsage, "no CA bundle to verify the services with: set --tls-ca-file"},
		{"CA bundle missing", []string{"--tls-ca-file", filepath.Join(dir, "nope.crt"), "get", "apps"}, ExitUsage, "nope.crt: no such file"},
		{"token in plaintext", []string{"--insecure", "--token-file", filepath.Join(dir, "token"), "get", "apps"}, ExitUsage, "a token is never sent in plaintext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			t.Setenv(ConfigEnv, filepath.Join(dir, "absent"))
			code := Run(context.Background(), tt.args, Streams{Out: &out, ErrOut: &errOut})
			if code != tt.wantCode || !strings.Contains(errOut.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestDescribeServerErrors(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.NotFound, `application spark/x is not registered`), `Error from server (NotFound): application spark/x is not registered`},
		{status.Error(codes.Unavailable, "connection refused"), "error: the service is unavailable (connection refused); check its address"},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`),
			"error: the TLS handshake with the service failed (connection error"},
		{status.Error(codes.Unauthenticated, "no credentials: present a client certificate"),
			"Error from server (Unauthenticated): no credentials: present a client certificate\nsparkpodsctl's credentials were not accepted: give a client certificate"},
		{status.Error(codes.PermissionDenied, `user "bob" may not list sparkpods.io/applications in namespace "spark"`),
			`Error from server (PermissionDenied): user "bob" may not list sparkpods.io/applications in namespace "spark"` + "\nthe caller is authenticated but has no RBAC grant for this"},
	}
	for _, tt := range tests {
		if got := describe(tt.err); !strings.HasPrefix(got, tt.want) {
			t.Errorf("describe(%v) = %q, want prefix %q", tt.err, got, tt.want)
		}
	}
}
