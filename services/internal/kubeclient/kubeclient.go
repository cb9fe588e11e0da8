// Package kubeclient builds the Kubernetes client configuration of a sparkpods
// service from its flags: a Spark master URL (k8s://https://host:port), a
// kubeconfig file, or the in-cluster service account, in that order.
package kubeclient

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Flags are --kubeconfig, --master, --kube-qps and --kube-burst.
type Flags struct {
	// Kubeconfig is a kubeconfig path; empty falls back to $KUBECONFIG, then
	// to the in-cluster configuration.
	Kubeconfig string
	// Master is an API server URL in Spark's form, k8s://https://host:port
	// (k8s://host:port means https), or a plain https:// URL. It overrides
	// the kubeconfig's server; credentials still come from the kubeconfig or
	// the in-cluster service account.
	Master string
	// QPS and Burst are the client-side rate limit towards the API server.
	QPS   float64
	Burst int
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet, defaultQPS float64, defaultBurst int) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, then in-cluster)")
	fs.StringVar(&f.Master, "master", "", "Kubernetes API server as a Spark master URL, k8s://https://host:port (overrides the kubeconfig's server)")
	fs.Float64Var(&f.QPS, "kube-qps", defaultQPS, "client-side queries per second towards the API server")
	fs.IntVar(&f.Burst, "kube-burst", defaultBurst, "client-side burst towards the API server")
}

// RESTConfig returns the client configuration the flags describe, with
// userAgent set so the API server's audit logs and metrics name the service.
func (f *Flags) RESTConfig(userAgent string) (*rest.Config, error) {
	server := ""
	if f.Master != "" {
		var err error
		if server, err = ParseMasterURL(f.Master); err != nil {
			return nil, err
		}
	}
	// --kubeconfig names one file; $KUBECONFIG may list several, merged the
	// way kubectl merges them.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	useKubeconfig := f.Kubeconfig != "" || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != ""
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case useKubeconfig:
		overrides := &clientcmd.ConfigOverrides{}
		overrides.ClusterInfo.Server = server
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig: %w", err)
		}
	default:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			if errors.Is(err, rest.ErrNotInCluster) {
				return nil, errors.New("no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod")
			}
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
		if server != "" {
			cfg.Host = server
		}
	}
	cfg.QPS = float32(f.QPS)
	cfg.Burst = f.Burst
	cfg.UserAgent = userAgent
	return cfg, nil
}

// ParseMasterURL turns a Spark master URL into an API server URL:
// k8s://https://host:port → https://host:port, k8s://host:port →
// https://host:port (Spark's default scheme), k8s://http://host:port →
// http://host:port. A plain http(s) URL is accepted as is.
func ParseMasterURL(master string) (string, error) {
	rest := master
	if strings.HasPrefix(master, "k8s://") {
		rest = strings.TrimPrefix(master, "k8s://")
		if !strings.Contains(rest, "://") {
			rest = "https://" + rest
		}
	}
	u, err := url.Parse(rest)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("master URL %q: want k8s://https://host:port", master)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"), nil
}
