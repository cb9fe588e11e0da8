package sparkpodsctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// ConfigEnv names the environment variable with the config file's path.
const ConfigEnv = "SPARKPODSCONFIG"

// Config is the endpoint configuration file, in the tradition of a
// kubeconfig: named contexts, each with the addresses of the four services,
// a default namespace and how to authenticate to them, and the one in use.
//
//	current-context: local
//	contexts:
//	- name: local
//	  snapshot: 127.0.0.1:8081
//	  allocator: 127.0.0.1:50052
//	  lifecycle: 127.0.0.1:50053
//	  podmanager: 127.0.0.1:50054
//	  namespace: spark
//	  tls-ca-file: pki/ca.crt
//	  tls-cert-file: pki/alice.crt
//	  tls-key-file: pki/alice.key
//
// The TLS keys are the flags of the same names. Relative file paths are
// relative to the config file's folder, as in a kubeconfig.
type Config struct {
	CurrentContext string    `json:"current-context,omitempty"`
	Contexts       []Context `json:"contexts,omitempty"`
}

// Context is one set of endpoints and the credentials to call them with.
type Context struct {
	Name       string `json:"name"`
	Snapshot   string `json:"snapshot,omitempty"`
	Allocator  string `json:"allocator,omitempty"`
	Lifecycle  string `json:"lifecycle,omitempty"`
	Podmanager string `json:"podmanager,omitempty"`
	Namespace  string `json:"namespace,omitempty"`

	// TLSCAFile is the PEM CA bundle that signs the services' certificates;
	// required unless Insecure.
	TLSCAFile string `json:"tls-ca-file,omitempty"`
	// TLSCertFile and TLSKeyFile are a client certificate and its key: the
	// caller's identity (common name) and groups (organizations).
	TLSCertFile string `json:"tls-cert-file,omitempty"`
	TLSKeyFile  string `json:"tls-key-file,omitempty"`
	// TokenFile holds a Kubernetes ServiceAccount token sent as a bearer
	// token, the other way to authenticate.
	TokenFile string `json:"token-file,omitempty"`
	// TLSServerName is the name the services' certificates must carry,
	// when it is not the host dialled.
	TLSServerName string `json:"tls-server-name,omitempty"`
	// Insecure dials in plaintext, for services run with --insecure
	// (development only).
	Insecure bool `json:"insecure,omitempty"`
}

// DefaultContext holds the services' own default listen ports on localhost.
var DefaultContext = Context{
	Snapshot:   "localhost:8081",
	Allocator:  "localhost:50052",
	Lifecycle:  "localhost:50053",
	Podmanager: "localhost:50054",
	Namespace:  "default",
}

// DefaultConfigPath is $SPARKPODSCONFIG, else ~/.sparkpods/config.
func DefaultConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".sparkpods", "config")
}

// LoadConfig reads a config file; a missing file is an empty config unless
// required.
func LoadConfig(path string, required bool) (*Config, error) {
	var c Config
	if path == "" {
		return &c, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !required:
		return &c, nil
	case err != nil:
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Write saves the config, creating its folder.
func (c *Config) Write(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// Resolve returns the named context (the current one when name is empty)
// with the defaults filled in. File paths are returned as written; see
// Context.relativeTo.
func (c *Config) Resolve(name string) (Context, error) {
	if name == "" {
		name = c.CurrentContext
	}
	ctx := DefaultContext
	if name == "" {
		return ctx, nil
	}
	for _, k := range c.Contexts {
		if k.Name != name {
			continue
		}
		ctx.Name = k.Name
		for dst, src := range map[*string]string{
			&ctx.Snapshot: k.Snapshot, &ctx.Allocator: k.Allocator, &ctx.Lifecycle: k.Lifecycle,
			&ctx.Podmanager: k.Podmanager, &ctx.Namespace: k.Namespace,
		} {
			if src != "" {
				*dst = src
			}
		}
		ctx.TLSCAFile, ctx.TLSCertFile, ctx.TLSKeyFile = k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile
		ctx.TokenFile, ctx.TLSServerName, ctx.Insecure = k.TokenFile, k.TLSServerName, k.Insecure
		return ctx, nil
	}
	return Context{}, fmt.Errorf("context %q is not in the config", name)
}

// relativeTo makes the context's relative file paths relative to dir, the
// folder of the config file that names them.
func (k Context) relativeTo(dir string) Context {
	for _, p := range []*string{&k.TLSCAFile, &k.TLSCertFile, &k.TLSKeyFile, &k.TokenFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return k
}
