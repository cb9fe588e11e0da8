package service

import (
	"flag"
	"fmt"
	"time"

	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/kubeclient"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/server"
)

// Default addresses of the podmanager.
const (
	DefaultListen        = ":50054"
	DefaultMetricsListen = ":9094"
)

// Flags are the podmanager's command-line flags.
type Flags struct {
	Server           grpcserver.Flags
	Kube             kubeclient.Flags
	Concurrency      int
	RequestCacheSize int
	RequestCacheTTL  time.Duration
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	f.Server.Bind(fs, DefaultListen, DefaultMetricsListen)
	// PodService is for the services that decide which pods exist.
	f.Server.BindSecurity(fs, "sparkpods-allocator", "sparkpods-lifecycle")
	f.Kube.Bind(fs, DefaultQPS, DefaultBurst)
	fs.IntVar(&f.Concurrency, "create-concurrency", DefaultConcurrency,
		"Kubernetes API calls in flight at once (pod creates, and also deletes and label patches); applications share them round-robin")
	fs.IntVar(&f.RequestCacheSize, "request-cache-size", server.DefaultRequestCacheSize,
		"how many CreateExecutorPods request ids to remember for answering retries")
	fs.DurationVar(&f.RequestCacheTTL, "request-cache-ttl", server.DefaultRequestCacheTTL,
		"how long to remember a CreateExecutorPods request id")
}

// Config turns the flags into a Config, building the logger and the
// Kubernetes client configuration.
func (f *Flags) Config() (Config, error) {
	logger, err := f.Server.Logger()
	if err != nil {
		return Config{}, err
	}
	if f.RequestCacheSize <= 0 || f.RequestCacheTTL <= 0 {
		return Config{}, fmt.Errorf("--request-cache-size and --request-cache-ttl must be positive")
	}
	rc, err := f.Kube.RESTConfig("sparkpods-podmanager")
	if err != nil {
		return Config{}, err
	}
	return Config{
		Listen: f.Server.Listen, MetricsListen: f.Server.MetricsListen, Limits: f.Server.Limits, Security: f.Server.Security, Logger: logger,
		REST: rc, QPS: f.Kube.QPS, Burst: f.Kube.Burst, Concurrency: f.Concurrency,
		RequestCacheSize: f.RequestCacheSize, RequestCacheTTL: f.RequestCacheTTL,
	}, nil
}
