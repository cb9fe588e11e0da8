// Package transport is how sparkpods speaks TLS: certificates and CA bundles
// read from files and reloaded when the files change (so cert-manager or a
// projected Secret can rotate them without a restart), server and client
// tls.Configs built from them, ServiceAccount tokens sent as bearer
// credentials, and the gRPC dial options that combine the two. The services
// use it for their servers and for the calls they make to each other; the
// Go clients and sparkpodsctl use it to reach the services.
package transport

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// recheckInterval bounds how often the files are stat'ed: at most once per
// interval, on a handshake. No goroutine polls them.
const recheckInterval = time.Second

// Files names a PEM certificate chain, its private key and a CA bundle. The
// certificate is presented to peers; the CA bundle verifies them.
type Files struct {
	// CertFile is the PEM certificate chain presented to peers.
	CertFile string
	// KeyFile is the PEM private key of CertFile.
	KeyFile string
	// CAFile is the PEM bundle of certificate authorities trusted to sign
	// peers' certificates.
	CAFile string
}

// reloader holds the current key pair and CA pool and reloads them when a
// file's content changes. A reload that fails (a
// half-written file, say) keeps the previous material and is retried on the
// next check, so a rotation never takes a working server down.
type reloader struct {
	files Files
	now   func() time.Time

	mu        sync.Mutex
	checked   time.Time
	stamps    [3]fileStamp
	cert      *tls.Certificate
	pool      *x509.CertPool
	lastError error
}

// fileStamp identifies a file's content by its hash: modification times
// are too coarse (two writes within one kernel tick share one) and sizes of
// same-kind keys and certificates are often equal.
type fileStamp [sha256.Size]byte

func stampOf(path string) (fileStamp, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}, err
	}
	return sha256.Sum256(data), nil
}

// newReloader loads files; now is the clock of the recheck interval (tests
// pass a fake one, which must also stamp this first load).
func newReloader(files Files, needCert bool, now func() time.Time) (*reloader, error) {
	if files.CAFile == "" {
		return nil, errors.New("transport: a CA file is required")
	}
	if needCert && (files.CertFile == "" || files.KeyFile == "") {
		return nil, errors.New("transport: a certificate file and its key file are required")
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, errors.New("transport: the certificate file and the key file go together")
	}
	r := &reloader{files: files, now: now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reloader) paths() [3]string {
	return [3]string{r.files.CertFile, r.files.KeyFile, r.files.CAFile}
}

// load reads every file; the caller holds mu or is the constructor.
func (r *reloader) load() error {
	var stamps [3]fileStamp
	for i, p := range r.paths() {
		if p == "" {
			continue
		}
		st, err := stampOf(p)
		if err != nil {
			return fmt.Errorf("transport: %w", err)
		}
		stamps[i] = st
	}
	var cert *tls.Certificate
	if r.files.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
		if err != nil {
			return fmt.Errorf("transport: key pair %s, %s: %w", r.files.CertFile, r.files.KeyFile, err)
		}
		cert = &pair
	}
	caPEM, err := os.ReadFile(r.files.CAFile)
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("transport: CA file %s holds no PEM certificate", r.files.CAFile)
	}
	r.cert, r.pool, r.stamps = cert, pool, stamps
	r.checked = r.now()
	return nil
}

// current returns the key pair and CA pool, reloading them first when a
// file changed since the last check.
func (r *reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Sub(r.checked) < recheckInterval {
		return r.cert, r.pool
	}
	r.checked = r.now()
	changed := false
	for i, p := range r.paths() {
		if p == "" {
			continue
		}
		st, err := stampOf(p)
		if err != nil || st != r.stamps[i] {
			changed = true
			break
		}
	}
	if changed {
		r.lastError = r.load()
	}
	return r.cert, r.pool
}

// ServerConfig is a TLS server configuration that presents CertFile and
// verifies client certificates against CAFile when a client offers one.
// Clients without a certificate are let through the handshake so that they
// can authenticate with a bearer token instead; the services' access check
// refuses callers that have neither.
func (f Files) ServerConfig() (*tls.Config, error) {
	r, err := newReloader(f, true, time.Now)
	if err != nil {
		return nil, err
	}
	return r.serverConfig(), nil
}

// serverConfig is ServerConfig over r.
func (r *reloader) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := r.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    pool,
				ClientAuth:   tls.VerifyClientCertIfGiven,
				NextProtos:   []string{"h2"},
			}, nil
		},
	}
}

// clientConfig is a TLS client configuration with the CA pool and key pair
// as they are now; ClientCredentials builds one per handshake.
func (r *reloader) clientConfig(serverName string) *tls.Config {
	cert, pool := r.current()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}
