package transport_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

const serverName = "sparkpods-snapshot"

// testServer is a gRPC server with the health service on a loopback
// listener; it records the authorization metadata of every call.
type testServer struct {
	addr string

	mu   sync.Mutex
	auth [][]string
}

func (s *testServer) lastAuth() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.auth...)
}

func startServer(t *testing.T, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String()}
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		ts.mu.Lock()
		ts.auth = append(ts.auth, md.Get("authorization"))
		ts.mu.Unlock()
		return h(ctx, req)
	}))
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return ts
}

// peerCertificate makes a new connection, calls the health service and
// returns the certificate the server presented on it.
func peerCertificate(t *testing.T, addr string, creds credentials.TransportCredentials) *x509.Certificate {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatalf("health check over TLS: %v", err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("no TLS peer certificate (auth info %T)", p.AuthInfo)
	}
	return info.State.PeerCertificates[0]
}

func certOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func sameSerial(a, b *big.Int) bool { return a.Cmp(b) == 0 }

// fixture is a CA folder, a server certificate served with a fake clock,
// and client credentials trusting the CA file with their own fake clock.
type fixture struct {
	dir         string
	server      transport.Files
	clk         *clocktesting.FakeClock
	addr        string
	clientCreds credentials.TransportCredentials
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.Issue(serverName)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	serverTLS, err := transport.ServerConfigWithClock(files, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, grpc.Creds(credentials.NewTLS(serverTLS)))
	creds, err := transport.ClientCredentialsWithClock(transport.Files{CAFile: ca.CAFile()}, "", clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, server: files, clk: clk, addr: ts.addr, clientCreds: creds}
}

func (f *fixture) recheck() { f.clk.Step(transport.RecheckInterval + time.Millisecond) }

func TestServerCertificateReload(t *testing.T) {
	tests := []struct {
		name string
		// rotate replaces the server's certificate files.
		rotate func(t *testing.T, f *fixture)
	}{
		{
			name: "same CA, same name, new key",
			rotate: func(t *testing.T, f *fixture) {
				ca, err := servicepki.Open(f.dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ca.Issue(serverName); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "new CA",
			rotate: func(t *testing.T, f *fixture) {
				for _, name := range []string{"ca.crt", "ca.key"} {
					if err := os.Remove(filepath.Join(f.dir, name)); err != nil {
						t.Fatal(err)
					}
				}
				ca, err := servicepki.Open(f.dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ca.Issue(serverName, "sparkpods"); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			before := peerCertificate(t, f.addr, f.clientCreds)
			if !sameSerial(before.SerialNumber, certOf(t, f.server.CertFile).SerialNumber) {
				t.Fatal("the server does not present the certificate in its file")
			}

			tt.rotate(t, f)
			want := certOf(t, f.server.CertFile)
			if sameSerial(want.SerialNumber, before.SerialNumber) {
				t.Fatal("rotation did not change the certificate")
			}

			// Within the recheck interval the files are not looked at.
			if got := peerCertificate(t, f.addr, f.clientCreds); !sameSerial(got.SerialNumber, before.SerialNumber) {
				t.Fatalf("certificate changed before the recheck interval passed: serial %v", got.SerialNumber)
			}

			f.recheck()
			got := peerCertificate(t, f.addr, f.clientCreds)
			if !sameSerial(got.SerialNumber, want.SerialNumber) {
				t.Fatalf("new connection got serial %v, want the rotated certificate's %v", got.SerialNumber, want.SerialNumber)
			}
		})
	}
}

func TestReloadKeepsPreviousMaterialOnBadFiles(t *testing.T) {
	tests := []struct {
		name string
		// spoil damages one of f's files in place, as a writer that does not
		// rename would leave it.
		spoil func(t *testing.T, f *fixture)
	}{
		{name: "garbage certificate", spoil: func(t *testing.T, f *fixture) { overwrite(t, f.server.CertFile, []byte("not a certificate")) }},
		{name: "half-written certificate", spoil: func(t *testing.T, f *fixture) { truncateHalf(t, f.server.CertFile) }},
		{name: "half-written key", spoil: func(t *testing.T, f *fixture) { truncateHalf(t, f.server.KeyFile) }},
		{name: "empty CA bundle", spoil: func(t *testing.T, f *fixture) { overwrite(t, f.server.CAFile, nil) }},
		{name: "certificate removed", spoil: func(t *testing.T, f *fixture) {
			if err := os.Remove(f.server.CertFile); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			before := peerCertificate(t, f.addr, f.clientCreds)
			caPEM, err := os.ReadFile(f.server.CAFile)
			if err != nil {
				t.Fatal(err)
			}

			tt.spoil(t, f)
			f.recheck()
			got := peerCertificate(t, f.addr, f.clientCreds)
			if !sameSerial(got.SerialNumber, before.SerialNumber) {
				t.Fatalf("after a bad file the server presents serial %v, want the previous %v", got.SerialNumber, before.SerialNumber)
			}

			// A later good write is picked up: a failed reload is retried.
			overwrite(t, f.server.CAFile, caPEM)
			ca, err := servicepki.Open(f.dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ca.Issue(serverName); err != nil {
				t.Fatal(err)
			}
			want := certOf(t, f.server.CertFile)
			f.recheck()
			if got := peerCertificate(t, f.addr, f.clientCreds); !sameSerial(got.SerialNumber, want.SerialNumber) {
				t.Fatalf("after the repair the server presents serial %v, want %v", got.SerialNumber, want.SerialNumber)
			}
		})
	}
}

func overwrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, path, data[:len(data)/2])
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	serverFiles, err := ca.Issue(serverName)
	if err != nil {
		t.Fatal(err)
	}
	clientFiles, err := ca.Issue("sparkpods-allocator", "sparkpods")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := serverFiles.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var mu sync.Mutex
	ts := startServer(t, grpc.Creds(credentials.NewTLS(serverTLS)), grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			var name string
			if p, ok := peer.FromContext(ctx); ok {
				if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
					name = info.State.VerifiedChains[0][0].Subject.CommonName
				}
			}
			mu.Lock()
			got = append(got, name)
			mu.Unlock()
			return h(ctx, req)
		}))

	tests := []struct {
		name  string
		files transport.Files
		want  string
	}{
		{name: "client certificate", files: clientFiles, want: "sparkpods-allocator"},
		{name: "CA only", files: transport.Files{CAFile: ca.CAFile()}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := tt.files.ClientCredentials("")
			if err != nil {
				t.Fatal(err)
			}
			peerCertificate(t, ts.addr, creds)
			mu.Lock()
			defer mu.Unlock()
			if last := got[len(got)-1]; last != tt.want {
				t.Fatalf("server saw client %q, want %q", last, tt.want)
			}
		})
	}
}

func TestServerNameOverride(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		serverName string
		wantErr    bool
	}{
		{name: "service name in the certificate", serverName: serverName + ".sparkpods.svc"},
		{name: "name not in the certificate", serverName: "sparkpods-allocator", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := transport.Files{CAFile: f.server.CAFile}.ClientCredentials(tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestFilesErrors(t *testing.T) {
	dir := t.TempDir()
	ca, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.Issue(serverName)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{name: "server without CA", build: func() error {
			_, err := transport.Files{CertFile: files.CertFile, KeyFile: files.KeyFile}.ServerConfig()
			return err
		}, wantErr: "CA file is required"},
		{name: "server without certificate", build: func() error {
			_, err := transport.Files{CAFile: files.CAFile}.ServerConfig()
			return err
		}, wantErr: "certificate file and its key file are required"},
		{name: "client certificate without key", build: func() error {
			_, err := transport.Files{CAFile: files.CAFile, CertFile: files.CertFile}.ClientCredentials("")
			return err
		}, wantErr: "go together"},
		{name: "CA bundle without certificates", build: func() error {
			_, err := transport.Files{CAFile: garbage}.ClientCredentials("")
			return err
		}, wantErr: "holds no PEM certificate"},
		{name: "missing CA file", build: func() error {
			_, err := transport.Files{CAFile: filepath.Join(dir, "absent.crt")}.ClientCredentials("")
			return err
		}, wantErr: "no such file"},
		{name: "key of another certificate", build: func() error {
			other, err := ca.Issue("other")
			if err != nil {
				return err
			}
			_, err = transport.Files{CAFile: files.CAFile, CertFile: files.CertFile, KeyFile: other.KeyFile}.ServerConfig()
			return err
		}, wantErr: "key pair"},
		{name: "valid server", build: func() error {
			_, err := files.ServerConfig()
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBearerTokenSent(t *testing.T) {
	f := newFixture(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token *transport.BearerToken
		want  string
	}{
		{name: "fixed token", token: &transport.BearerToken{Token: "fixed-token"}, want: "Bearer fixed-token"},
		{name: "token file, trimmed", token: &transport.BearerToken{File: tokenFile}, want: "Bearer file-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServerTLS(t, f)
			conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(f.clientCreds), grpc.WithPerRPCCredentials(tt.token))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			auth := ts.lastAuth()
			if len(auth) != 1 || len(auth[0]) != 1 || auth[0][0] != tt.want {
				t.Fatalf("server saw authorization %q, want [[%q]]", auth, tt.want)
			}
		})
	}
}

// startServerTLS starts a second server with f's server certificate.
func startServerTLS(t *testing.T, f *fixture) *testServer {
	t.Helper()
	cfg, err := f.server.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, grpc.Creds(credentials.NewTLS(cfg)))
}

func TestBearerTokenRefusesPlaintext(t *testing.T) {
	token := &transport.BearerToken{Token: "secret"}
	if !token.RequireTransportSecurity() {
		t.Fatal("BearerToken does not require transport security")
	}
	ts := startServer(t)
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(token))
	if err != nil {
		return // refused at dial: the token can never be sent
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("a call carrying a bearer token succeeded in plaintext")
	}
	if auth := ts.lastAuth(); len(auth) != 0 {
		t.Fatalf("the plaintext server received a call with authorization %q", auth)
	}
}

func TestBearerTokenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   *transport.BearerToken
		wantErr string
	}{
		{name: "no token", token: &transport.BearerToken{}, wantErr: "empty"},
		{name: "empty file", token: &transport.BearerToken{File: empty}, wantErr: "is empty"},
		{name: "missing file", token: &transport.BearerToken{File: filepath.Join(dir, "absent")}, wantErr: "token file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := tt.token.GetRequestMetadata(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GetRequestMetadata = %v, %v; want an error containing %q", md, err, tt.wantErr)
			}
		})
	}
}

func TestDialOptions(t *testing.T) {
	dir := t.TempDir()
	ca, err := servicepki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue("operator")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     transport.ClientOptions
		wantOpts int
		wantErr  string
	}{
		{name: "insecure", opts: transport.ClientOptions{Insecure: true}, wantOpts: 1},
		{name: "insecure with a token", opts: transport.ClientOptions{Insecure: true, TokenFile: "/token"}, wantErr: "never sent in plaintext"},
		{name: "no CA", opts: transport.ClientOptions{}, wantErr: "--tls-ca-file is required"},
		{name: "no CA with a token", opts: transport.ClientOptions{TokenFile: "/token"}, wantErr: "--tls-ca-file is required"},
		{name: "CA only", opts: transport.ClientOptions{Files: transport.Files{CAFile: ca.CAFile()}}, wantOpts: 1},
		{name: "mutual TLS and a token", opts: transport.ClientOptions{Files: client, TokenFile: "/token"}, wantOpts: 2},
		{name: "missing CA file", opts: transport.ClientOptions{Files: transport.Files{CAFile: filepath.Join(dir, "absent")}}, wantErr: "TLS:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.opts.DialOptions()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DialOptions error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(opts) != tt.wantOpts {
				t.Fatalf("%d dial options, want %d", len(opts), tt.wantOpts)
			}
		})
	}
}
