package service

import (
	"cmp"
	"flag"
	"os"
	"time"

	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/kubeclient"
)

// Default addresses of the allocator and of the services it calls (their
// own defaults, on this host).
const (
	DefaultListen         = ":50052"
	DefaultMetricsListen  = ":9092"
	DefaultSnapshotAddr   = "localhost:8081"
	DefaultPodManagerAddr = "localhost:50054"
)

// Flags are the allocator's command-line flags.
type Flags struct {
	Server         grpcserver.Flags
	Kube           kubeclient.Flags
	SnapshotAddr   string
	PodManagerAddr string
	Namespace      string
	Leader         LeaderElection
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	f.Server.Bind(fs, DefaultListen, DefaultMetricsListen)
	// The lifecycle service reads registrations to judge exits.
	f.Server.BindSecurity(fs, "sparkpods-lifecycle")
	f.Kube.Bind(fs, 20, 40)
	fs.StringVar(&f.SnapshotAddr, "snapshot-addr", DefaultSnapshotAddr, "address of the snapshot service (sparkpods.v1.SnapshotService), host:port")
	fs.StringVar(&f.PodManagerAddr, "podmanager-addr", DefaultPodManagerAddr, "address of the pod manager (sparkpods.v1.PodService), host:port")
	fs.StringVar(&f.Namespace, "namespace", "",
		"namespace for the ConfigMaps that persist registrations, targets and executor-id high-water marks; "+
			"empty keeps each application's ConfigMap in its own namespace, owned by its driver pod")
	fs.BoolVar(&f.Leader.Enabled, "leader-elect", true,
		"elect a leader among replicas with a Lease; only the leader serves and allocates (turn off only for a single replica)")
	fs.StringVar(&f.Leader.Namespace, "leader-election-namespace", "",
		"namespace of the leader Lease (default: --namespace, then $POD_NAMESPACE, then default)")
	fs.StringVar(&f.Leader.Name, "leader-election-name", "sparkpods-allocator", "name of the leader Lease")
	fs.DurationVar(&f.Leader.LeaseDuration, "leader-election-lease-duration", 15*time.Second,
		"how long a leader's Lease lasts without renewal: the longest a hand-over takes after the leader dies")
	fs.DurationVar(&f.Leader.RenewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"how long the leader keeps trying to renew before it gives up and exits")
	fs.DurationVar(&f.Leader.RetryPeriod, "leader-election-retry-period", 2*time.Second,
		"how often replicas try to acquire or renew the Lease")
}

// Config turns the flags into a Config, building the logger and the
// Kubernetes client configuration.
func (f *Flags) Config() (Config, error) {
	logger, err := f.Server.Logger()
	if err != nil {
		return Config{}, err
	}
	rest, err := f.Kube.RESTConfig("sparkpods-allocator")
	if err != nil {
		return Config{}, err
	}
	leader := f.Leader
	if leader.Namespace == "" {
		leader.Namespace = cmp.Or(f.Namespace, os.Getenv("POD_NAMESPACE"), "default")
	}
	return Config{
		LeaderElection: leader,
		Listen:         f.Server.Listen,
		MetricsListen:  f.Server.MetricsListen,
		Limits:         f.Server.Limits,
		Security:       f.Server.Security,
		Logger:         logger,
		REST:           rest,
		SnapshotAddr:   f.SnapshotAddr,
		PodManagerAddr: f.PodManagerAddr,
		Namespace:      f.Namespace,
	}, nil
}
