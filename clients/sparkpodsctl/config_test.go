package sparkpodsctl

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sparkpods/sparkpods/clients/transport"
)

// TestTransportFromConfigAndFlags checks how the TLS settings of a context
// and the flags combine: relative paths in the config are relative to its
// folder, each flag overrides its key, and TLS flags override a context's
// insecure: true.
func TestTransportFromConfigAndFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	cfg := Config{CurrentContext: "tls", Contexts: []Context{
		{Name: "tls", TLSCAFile: "pki/ca.crt", TLSCertFile: "pki/alice.crt", TLSKeyFile: "/abs/alice.key", TLSServerName: "sparkpods-snapshot"},
		{Name: "dev", Insecure: true},
		{Name: "token", TLSCAFile: "/etc/ca.crt", TokenFile: "token"},
	}}
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want transport.ClientOptions
	}{
		{"context, relative to the config's folder", nil, transport.ClientOptions{
			Files:      transport.Files{CAFile: filepath.Join(dir, "pki/ca.crt"), CertFile: filepath.Join(dir, "pki/alice.crt"), KeyFile: "/abs/alice.key"},
			ServerName: "sparkpods-snapshot",
		}},
		{"flags override keys", []string{"--tls-cert-file", "bob.crt", "--tls-key-file", "bob.key", "--tls-server-name", ""}, transport.ClientOptions{
			Files: transport.Files{CAFile: filepath.Join(dir, "pki/ca.crt"), CertFile: "bob.crt", KeyFile: "bob.key"},
		}},
		{"token context", []string{"--context", "token"}, transport.ClientOptions{
			Files: transport.Files{CAFile: "/etc/ca.crt"}, TokenFile: filepath.Join(dir, "token"),
		}},
		{"insecure context", []string{"--context", "dev"}, transport.ClientOptions{Insecure: true}},
		{"TLS flags override an insecure context", []string{"--context", "dev", "--tls-ca-file", "ca.crt"}, transport.ClientOptions{
			Files: transport.Files{CAFile: "ca.crt"},
		}},
		{"--insecure overrides a TLS context", []string{"--insecure"}, transport.ClientOptions{
			Files:      transport.Files{CAFile: filepath.Join(dir, "pki/ca.crt"), CertFile: filepath.Join(dir, "pki/alice.crt"), KeyFile: "/abs/alice.key"},
			ServerName: "sparkpods-snapshot", Insecure: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, o := newRoot(Streams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
			if err := cmd.ParseFlags(append([]string{"--config", path}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if err := o.complete(cmd); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, o.transport); diff != "" {
				t.Fatalf("transport options (-want +got):\n%s", diff)
			}
		})
	}
}
