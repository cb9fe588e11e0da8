package transport

import (
	"errors"
	"flag"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// ClientOptions say how to reach a sparkpods service: over TLS verified with
// a CA bundle, optionally presenting a client certificate (mutual TLS) and
// optionally sending a bearer token; or, for development only, in plaintext.
type ClientOptions struct {
	// Files are the CA bundle that signs the services' certificates and,
	// for mutual TLS, this caller's certificate and key.
	Files Files
	// TokenFile, when set, holds a ServiceAccount token sent with every call.
	TokenFile string
	// ServerName overrides the name the server certificate must carry.
	ServerName string
	// Insecure dials in plaintext with no credentials at all.
	Insecure bool
}

// BindClientFlags registers the client-side flags on fs: --tls-ca-file,
// --tls-cert-file, --tls-key-file, --token-file, --tls-server-name and
// --insecure.
func (o *ClientOptions) BindClientFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Files.CAFile, "tls-ca-file", "", "PEM CA bundle that signs the sparkpods services' certificates")
	fs.StringVar(&o.Files.CertFile, "tls-cert-file", "", "PEM client certificate for mutual TLS (with --tls-key-file)")
	fs.StringVar(&o.Files.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&o.TokenFile, "token-file", "", "file holding a Kubernetes ServiceAccount token sent as a bearer token")
	fs.StringVar(&o.ServerName, "tls-server-name", "", "name the services' certificates must carry (default: the host dialled)")
	fs.BoolVar(&o.Insecure, "insecure", false, "plaintext, unauthenticated connections (development only)")
}

// DialOptions are the grpc.DialOptions for o. It fails when o is neither
// insecure nor has a CA file, naming what is missing.
func (o *ClientOptions) DialOptions() ([]grpc.DialOption, error) {
	if o.Insecure {
		if o.TokenFile != "" {
			return nil, errors.New("a token is never sent in plaintext: drop --insecure or --token-file")
		}
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	if o.Files.CAFile == "" {
		return nil, errors.New("--tls-ca-file is required to reach the services over TLS (or --insecure for a plaintext development setup)")
	}
	creds, err := o.Files.ClientCredentials(o.ServerName)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.TokenFile != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(&BearerToken{File: o.TokenFile}))
	}
	return opts, nil
}
