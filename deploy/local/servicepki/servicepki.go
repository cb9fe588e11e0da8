// Package servicepki is the local certificate authority of the sparkpods
// services: `make run`, the tests and the fault suite use it to give every
// service a certificate for mutual TLS, and operators a client certificate
// for sparkpodsctl and grpcurl, so the local default path is as secure as a
// production one. In a real cluster the same files come from cert-manager
// or any CA; see the README.
package servicepki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sparkpods/sparkpods/clients/transport"
)

// validity is long enough for a local setup left running for months.
const validity = 365 * 24 * time.Hour

// Authority is a CA kept as ca.crt and ca.key in one folder, with the
// certificates it issued beside them.
type Authority struct {
	dir  string
	cert *x509.Certificate
	key  crypto.Signer
}

// Open loads the CA in dir, creating the folder and a new CA when there is
// none, so that certificates issued by earlier runs stay valid.
func Open(dir string) (*Authority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("servicepki: %w", err)
	}
	a := &Authority{dir: dir}
	certPEM, certErr := os.ReadFile(a.path("ca.crt"))
	keyPEM, keyErr := os.ReadFile(a.path("ca.key"))
	if certErr == nil && keyErr == nil {
		if err := a.parse(certPEM, keyPEM); err != nil {
			return nil, err
		}
		if time.Until(a.cert.NotAfter) > 24*time.Hour {
			return a, nil
		}
	}
	if err := a.create(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Authority) path(name string) string { return filepath.Join(a.dir, name) }

// CAFile is the CA bundle that verifies every certificate a issues.
func (a *Authority) CAFile() string { return a.path("ca.crt") }

// Dir is the folder holding the CA and the issued certificates.
func (a *Authority) Dir() string { return a.dir }

func (a *Authority) parse(certPEM, keyPEM []byte) error {
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return fmt.Errorf("servicepki: %s holds no PEM CA certificate and key", a.dir)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return fmt.Errorf("servicepki: CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return fmt.Errorf("servicepki: CA key: %w", err)
	}
	a.cert, a.key = cert, key
	return nil
}

func (a *Authority) create() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("servicepki: CA key: %w", err)
	}
	now := time.Now()
	template := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "sparkpods-services-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(template, template, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("servicepki: CA: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("servicepki: CA key: %w", err)
	}
	certPEM, keyPEM := pemBytes("CERTIFICATE", der), pemBytes("EC PRIVATE KEY", keyDER)
	if err := writeFiles(pemFile{a.path("ca.key"), keyPEM}, pemFile{a.path("ca.crt"), certPEM}); err != nil {
		return err
	}
	return a.parse(certPEM, keyPEM)
}

// Issue writes name.crt and name.key: a certificate whose common name is
// the identity name (what the services authorize) and whose organizations
// are its groups, valid both as a server certificate for localhost,
// 127.0.0.1 and the in-cluster Service names of name, and as a client
// certificate. Issuing a name again replaces its files, which the services
// pick up without a restart.
func (a *Authority) Issue(name string, groups ...string) (transport.Files, error) {
	if name == "" {
		return transport.Files{}, errors.New("servicepki: a certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return transport.Files{}, fmt.Errorf("servicepki: %s key: %w", name, err)
	}
	now := time.Now()
	template := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: groups},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost", name, name + ".sparkpods", name + ".sparkpods.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := sign(template, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return transport.Files{}, fmt.Errorf("servicepki: %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return transport.Files{}, fmt.Errorf("servicepki: %s key: %w", name, err)
	}
	files := transport.Files{CertFile: a.path(name + ".crt"), KeyFile: a.path(name + ".key"), CAFile: a.CAFile()}
	if err := writeFiles(pemFile{files.KeyFile, pemBytes("EC PRIVATE KEY", keyDER)}, pemFile{files.CertFile, pemBytes("CERTIFICATE", der)}); err != nil {
		return transport.Files{}, err
	}
	return files, nil
}

// writeFiles writes each file through a temporary file and a
// rename, so that a service reloading its certificate never reads half a
// file.
func writeFiles(files ...pemFile) error {
	for _, f := range files {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return fmt.Errorf("servicepki: %w", err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return fmt.Errorf("servicepki: %w", err)
		}
	}
	return nil
}

type pemFile struct {
	path string
	data []byte
}

func sign(template, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, template, parent, pub, signer)
}

func pemBytes(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

// ClientOptions issues a certificate for the identity name in groups and
// returns the options to call the services with it over mutual TLS.
func (a *Authority) ClientOptions(name string, groups ...string) (transport.ClientOptions, error) {
	files, err := a.Issue(name, groups...)
	if err != nil {
		return transport.ClientOptions{}, err
	}
	return transport.ClientOptions{Files: files}, nil
}
