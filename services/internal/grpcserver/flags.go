package grpcserver

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/services/internal/access"
)

// Flags are the command-line flags every sparkpods service shares for its
// servers, its security and its logs.
type Flags struct {
	// Listen is --listen, the gRPC address.
	Listen string
	// MetricsListen is --metrics-listen, the /metrics and pprof address.
	MetricsListen string
	// LogLevel is --log-level: debug, info, warn or error.
	LogLevel string
	// LogFormat is --log-format: text or json.
	LogFormat string
	// Security are the --tls-*, --insecure, --trusted-callers and
	// --token-audiences flags, registered by BindSecurity.
	Security SecurityConfig
	// Limits are the --max-* flags.
	Limits Limits
}

// Bind registers the flags on fs with the service's default ports.
func (f *Flags) Bind(fs *flag.FlagSet, defaultListen, defaultMetricsListen string) {
	fs.StringVar(&f.Listen, "listen", defaultListen, "gRPC listen address, host:port")
	fs.StringVar(&f.MetricsListen, "metrics-listen", defaultMetricsListen, "Prometheus /metrics, /healthz, /readyz and /debug/pprof listen address, host:port; empty disables it")
	fs.StringVar(&f.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&f.Limits.MaxRecvMessageBytes, "max-recv-message-bytes", DefaultMaxRecvMessageBytes, "largest request message accepted, bytes")
	fs.DurationVar(&f.Limits.MaxUnaryDuration, "max-unary-duration", DefaultMaxUnaryDuration, "longest a unary call may run; longer or missing client deadlines are cut to it")
	fs.IntVar(&f.Limits.MaxStreamsPerClient, "max-streams-per-client", DefaultMaxStreamsPerClient, "most streams one client (its identity, or its IP address when unauthenticated) may hold open")
}

// BindSecurity registers the transport-security and access flags on fs,
// with the identities of the services that call this one as the default of
// --trusted-callers. A service that binds them builds its server and its
// calls with SecurityConfig.Build.
func (f *Flags) BindSecurity(fs *flag.FlagSet, defaultTrusted ...string) {
	fs.StringVar(&f.Security.TLS.CertFile, "tls-cert-file", "", "PEM certificate this service serves and presents to the services it calls (reloaded on change)")
	fs.StringVar(&f.Security.TLS.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file (reloaded on change)")
	fs.StringVar(&f.Security.TLS.CAFile, "tls-ca-file", "", "PEM CA bundle that signs the sparkpods services' and operators' client certificates (reloaded on change)")
	fs.BoolVar(&f.Security.Insecure, "insecure", false, "serve and call in plaintext with no authentication or authorization (development only)")
	f.Security.Trusted = append([]string(nil), defaultTrusted...)
	fs.Var((*stringList)(&f.Security.Trusted), "trusted-callers", "comma-separated identities (certificate common names or ServiceAccount user names) of the sparkpods services allowed to call this one without an RBAC check")
	fs.Var((*stringList)(&f.Security.TokenAudiences), "token-audiences", "comma-separated audiences bearer tokens must carry (TokenReview); empty accepts the API server's own audience")
}

// Logger builds the structured logger the flags describe, writing to stderr.
func (f *Flags) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", f.LogFormat)
	}
}

// SecurityConfig says how a service secures its server and its calls.
type SecurityConfig struct {
	// TLS is this service's certificate (served, and presented to the
	// services it calls) and the CA bundle that signs the other services'
	// and operators' client certificates.
	TLS transport.Files
	// Insecure serves and calls in plaintext with no access control.
	Insecure bool
	// Trusted are the identities of the sparkpods services that call this
	// one (see access.Config.Trusted).
	Trusted []string
	// TokenAudiences are the audiences bearer tokens must carry.
	TokenAudiences []string
}

// Security is a server's transport security and access control, built from
// a SecurityConfig; TLS and Guard are nil with Insecure.
type Security struct {
	TLS   *tls.Config
	Guard *access.Guard
	// Dial are the options for calling the other sparkpods services with
	// this service's certificate (or in plaintext with --insecure).
	Dial []grpc.DialOption
}

// The client-side rate limit of the access reviews. They have a client of
// their own so that a burst of new callers (a hundred drivers starting) is
// not queued behind, and does not hold back, the service's own API calls.
const (
	reviewQPS   = 100
	reviewBurst = 200
)

// Build makes the server's TLS configuration, its access guard (which
// checks tokens and RBAC with the API server rc reaches, through a client
// and rate limit of its own) and the dial options for the services it
// calls. It fails, naming the flags, when TLS is neither configured nor
// explicitly turned off.
func (f SecurityConfig) Build(service string, rc *rest.Config, registry prometheus.Registerer, logger *slog.Logger) (Security, error) {
	if f.Insecure {
		if f.TLS != (transport.Files{}) {
			return Security{}, errors.New("--insecure and --tls-* flags contradict each other: choose one")
		}
		logger.Warn("--insecure: serving and calling in plaintext, with no authentication or authorization; for development only")
		dial, err := (&transport.ClientOptions{Insecure: true}).DialOptions()
		return Security{Dial: dial}, err
	}
	if f.TLS.CertFile == "" || f.TLS.KeyFile == "" || f.TLS.CAFile == "" {
		return Security{}, errors.New("--tls-cert-file, --tls-key-file and --tls-ca-file are required " +
			"(the services speak mutual TLS to each other); pass --insecure for a plaintext development setup")
	}
	reviews := rest.CopyConfig(rc)
	reviews.QPS, reviews.Burst, reviews.RateLimiter = reviewQPS, reviewBurst, nil
	kube, err := kubernetes.NewForConfig(reviews)
	if err != nil {
		return Security{}, fmt.Errorf("access reviews: kubernetes client: %w", err)
	}
	tlsConfig, err := f.TLS.ServerConfig()
	if err != nil {
		return Security{}, fmt.Errorf("TLS: %w", err)
	}
	dial, err := (&transport.ClientOptions{Files: f.TLS}).DialOptions()
	if err != nil {
		return Security{}, err
	}
	guard, err := access.New(access.Config{
		Service:        service,
		Rules:          access.Rules,
		Trusted:        f.Trusted,
		Tokens:         kube.AuthenticationV1().TokenReviews(),
		TokenAudiences: f.TokenAudiences,
		Access:         kube.AuthorizationV1().SubjectAccessReviews(),
		Registry:       registry,
		Logger:         logger,
	})
	if err != nil {
		return Security{}, err
	}
	return Security{TLS: tlsConfig, Guard: guard, Dial: dial}, nil
}

// stringList is a comma-separated flag value.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
