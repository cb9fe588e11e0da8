package grpcserver

import (
	"flag"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

func TestSecurityConfigBuild(t *testing.T) {
	ca, err := servicepki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.Issue("sparkpods-podmanager")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       SecurityConfig
		wantErr   string
		wantGuard bool
	}{
		{name: "insecure", cfg: SecurityConfig{Insecure: true}},
		{name: "insecure and TLS", cfg: SecurityConfig{Insecure: true, TLS: transport.Files{CAFile: files.CAFile}}, wantErr: "contradict"},
		{name: "nothing", cfg: SecurityConfig{}, wantErr: "--tls-cert-file, --tls-key-file and --tls-ca-file are required"},
		{name: "no key", cfg: SecurityConfig{TLS: transport.Files{CertFile: files.CertFile, CAFile: files.CAFile}}, wantErr: "--insecure"},
		{name: "unreadable certificate", cfg: SecurityConfig{TLS: transport.Files{CertFile: files.CAFile + ".absent", KeyFile: files.KeyFile, CAFile: files.CAFile}}, wantErr: "TLS:"},
		{name: "mutual TLS", cfg: SecurityConfig{TLS: files, Trusted: []string{"sparkpods-allocator"}}, wantGuard: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec, err := tt.cfg.Build("podmanager", &rest.Config{Host: "https://127.0.0.1:1"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Build error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(sec.Dial) == 0 {
				t.Fatal("no dial options")
			}
			if got := sec.Guard != nil && sec.TLS != nil; got != tt.wantGuard {
				t.Fatalf("guard and TLS built: %v, want %v", got, tt.wantGuard)
			}
		})
	}
}

func TestTrustedCallersFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "default", want: []string{"sparkpods-allocator", "sparkpods-lifecycle"}},
		{name: "replaced, blanks dropped", args: []string{"--trusted-callers", " a, ,b,"}, want: []string{"a", "b"}},
		{name: "emptied", args: []string{"--trusted-callers", ""}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f.Bind(fs, ":0", "")
			f.BindSecurity(fs, "sparkpods-allocator", "sparkpods-lifecycle")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.Security.Trusted, tt.want) {
				t.Fatalf("Trusted = %q, want %q", f.Security.Trusted, tt.want)
			}
		})
	}
}
