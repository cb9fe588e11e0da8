package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for a detached cluster left running for weeks; the PKI is
// regenerated on every Start, so nothing ever needs renewing.
const certValidity = 365 * 24 * time.Hour

// pki is the key material of one control plane. The files live in Dir/pki; the admin
// credentials are also kept in memory for the kubeconfig.
type pki struct {
	dir string

	caPEM        []byte
	adminCertPEM []byte
	adminKeyPEM  []byte
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// newPKI writes a fresh CA, the kube-apiserver serving certificate, an admin client
// certificate in the system:masters group and the service-account signing key pair.
// ECDSA P-256 throughout: generating RSA keys would add noticeable time to every test start.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	p := &pki{dir: dir}
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: ca key: %w", err)
	}
	caTemplate := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "sparkpods-local-ca"},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := sign(caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: ca: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pki: ca: %w", err)
	}
	p.caPEM = pemBytes("CERTIFICATE", caDER)
	if err := os.WriteFile(p.path("ca.crt"), p.caPEM, 0o600); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}

	serving := &x509.Certificate{
		Subject: pkix.Name{CommonName: "kube-apiserver"},
		// 10.0.0.1 is the kubernetes Service IP in --service-cluster-ip-range.
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, _, err := p.issue("apiserver", serving, ca, caKey, now); err != nil {
		return nil, err
	}

	// system:masters is bound to cluster-admin by the apiserver's own bootstrap policy, so this
	// identity works under RBAC before any controller has run.
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "sparkpods-admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.adminCertPEM, p.adminKeyPEM, err = p.issue("admin", admin, ca, caKey, now); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: service-account key: %w", err)
	}
	saPriv, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("pki: service-account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("pki: service-account key: %w", err)
	}
	if err := os.WriteFile(p.path("sa.key"), pemBytes("EC PRIVATE KEY", saPriv), 0o600); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(p.path("sa.pub"), pemBytes("PUBLIC KEY", saPub), 0o600); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return p, nil
}

// issue signs template with the CA and writes name.crt and name.key; it returns both as PEM.
func (p *pki) issue(name string, template, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s key: %w", name, err)
	}
	template.NotBefore, template.NotAfter = now.Add(-time.Hour), now.Add(certValidity)
	der, err := sign(template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s key: %w", name, err)
	}
	certPEM, keyPEM = pemBytes("CERTIFICATE", der), pemBytes("EC PRIVATE KEY", keyDER)
	if err := os.WriteFile(p.path(name+".crt"), certPEM, 0o600); err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(p.path(name+".key"), keyPEM, 0o600); err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return certPEM, keyPEM, nil
}

// sign gives template a random serial number and signs it.
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
