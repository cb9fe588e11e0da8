package servicepki_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

func TestOpenReusesTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(first.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	second, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(second.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("a second Open replaced a valid CA")
	}
	if second.Dir() != dir {
		t.Fatalf("Dir = %q, want %q", second.Dir(), dir)
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v, want 0600", st.Mode().Perm())
	}
}

func TestOpenRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ca.crt", "ca.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := servicepki.Open(dir); err == nil || !strings.Contains(err.Error(), "no PEM CA certificate") {
		t.Fatalf("Open over garbage: %v", err)
	}
}

func TestIssue(t *testing.T) {
	ca, err := servicepki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	tests := []struct {
		name    string
		cn      string
		groups  []string
		wantErr bool
	}{
		{name: "service", cn: "sparkpods-allocator", groups: []string{"sparkpods"}},
		{name: "operator without groups", cn: "operator"},
		{name: "no name", cn: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := ca.Issue(tt.cn, tt.groups...)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Issue accepted an empty name")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if files.CAFile != ca.CAFile() || filepath.Dir(files.CertFile) != ca.Dir() {
				t.Fatalf("files %+v are not beside the CA", files)
			}
			pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != tt.cn || !slices.Equal(cert.Subject.Organization, tt.groups) {
				t.Fatalf("subject %v, want CN %q O %q", cert.Subject, tt.cn, tt.groups)
			}
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Fatalf("not valid for usage %v: %v", usage, err)
				}
			}
			for _, host := range []string{"localhost", "127.0.0.1", "::1", tt.cn, tt.cn + ".sparkpods.svc"} {
				if err := cert.VerifyHostname(host); err != nil {
					t.Fatalf("not valid for %s: %v", host, err)
				}
			}
			for _, tmp := range []string{files.CertFile + ".tmp", files.KeyFile + ".tmp"} {
				if _, err := os.Stat(tmp); !os.IsNotExist(err) {
					t.Fatalf("temporary file %s left behind", tmp)
				}
			}
		})
	}
}
