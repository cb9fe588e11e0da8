package app

import (
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/kubeclient"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/eventstore"
)

// Default addresses of the lifecycle service and the services it calls.
const (
	DefaultListen         = ":50053"
	DefaultMetricsListen  = ":9093"
	DefaultSnapshotAddr   = "localhost:8081"
	DefaultPodManagerAddr = "localhost:50054"
	DefaultAllocatorAddr  = "localhost:50052"
)

// Flags are the service's command-line flags.
type Flags struct {
	Server                                      grpcserver.Flags
	Kube                                        kubeclient.Flags
	SnapshotAddr, PodManagerAddr, AllocatorAddr string
	MaxSegmentBytes, MaxUnacknowledged          int
	Namespaces                                  string
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	f.Server.Bind(fs, DefaultListen, DefaultMetricsListen)
	// No sparkpods service calls the lifecycle service: every caller is
	// checked with RBAC.
	f.Server.BindSecurity(fs)
	f.Kube.Bind(fs, 20, 40)
	fs.StringVar(&f.SnapshotAddr, "snapshot-addr", DefaultSnapshotAddr, "address of the snapshot service (sparkpods.v1.SnapshotService), host:port")
	fs.StringVar(&f.PodManagerAddr, "podmanager-addr", DefaultPodManagerAddr, "address of the pod manager (sparkpods.v1.PodService), host:port")
	fs.StringVar(&f.AllocatorAddr, "allocator-addr", DefaultAllocatorAddr, "address of the scheduler API (sparkpods.v1.SchedulerService, hosted by the allocator), host:port")
	fs.IntVar(&f.MaxSegmentBytes, "event-segment-bytes", eventstore.DefaultMaxSegmentBytes, "largest size of one ConfigMap of recorded events, in bytes (at most 768 KiB)")
	fs.StringVar(&f.Namespaces, "namespaces", "", "comma-separated namespaces whose applications to manage (and whose event ConfigMaps to read); empty manages all namespaces")
	fs.IntVar(&f.MaxUnacknowledged, "max-unacknowledged-events", eventstore.DefaultMaxUnacknowledged, "unacknowledged events kept per application; past it the oldest are dropped")
}

// Config validates the flags and builds the service's Config.
func (f *Flags) Config() (Config, error) {
	logger, err := f.Server.Logger()
	if err != nil {
		return Config{}, err
	}
	if f.MaxSegmentBytes < 1<<10 || f.MaxUnacknowledged < 1 {
		return Config{}, fmt.Errorf("--event-segment-bytes must be at least 1024 and --max-unacknowledged-events at least 1")
	}
	var namespaces []string
	for _, ns := range strings.Split(f.Namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return Config{}, fmt.Errorf("--namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		namespaces = append(namespaces, ns)
	}
	rc, err := f.Kube.RESTConfig("sparkpods-lifecycle")
	if err != nil {
		return Config{}, err
	}
	return Config{
		Listen: f.Server.Listen, MetricsListen: f.Server.MetricsListen, Limits: f.Server.Limits, Security: f.Server.Security, RESTConfig: rc, Logger: logger,
		SnapshotAddr: f.SnapshotAddr, PodManagerAddr: f.PodManagerAddr, AllocatorAddr: f.AllocatorAddr,
		MaxSegmentBytes: f.MaxSegmentBytes, MaxUnacknowledged: f.MaxUnacknowledged, Namespaces: namespaces,
	}, nil
}
