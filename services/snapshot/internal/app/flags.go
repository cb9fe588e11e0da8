package app

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sparkpods/sparkpods/services/internal/grpcserver"
	"github.com/sparkpods/sparkpods/services/internal/kubeclient"
	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/server"
)

// Default addresses of the snapshot service.
const (
	DefaultListen        = ":8081"
	DefaultMetricsListen = ":9081"
)

// Flags are the service's command-line flags.
type Flags struct {
	Server                 grpcserver.Flags
	Kube                   kubeclient.Flags
	Namespaces             string
	Watch, Poll            bool
	PollInterval           time.Duration
	CheckAllContainers     bool
	ExecutorContainerName  string
	DecommissionLabel      string
	HistoryLimit           int
	MaxExecutorsPerMessage int
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	f.Server.Bind(fs, DefaultListen, DefaultMetricsListen)
	// The allocator and the lifecycle service watch every application.
	f.Server.BindSecurity(fs, "sparkpods-allocator", "sparkpods-lifecycle")
	f.Kube.Bind(fs, 50, 100)
	fs.StringVar(&f.Namespaces, "namespaces", "", "comma-separated namespaces to watch for executor pods; empty watches all namespaces with one watch")
	fs.BoolVar(&f.Watch, "enable-api-watcher", true, "watch executor pods and apply each change (Spark's spark.kubernetes.executor.enableApiWatcher)")
	fs.BoolVar(&f.Poll, "enable-api-polling", true, "periodically list all executor pods as a full snapshot; needed for missing-pod detection (Spark's spark.kubernetes.executor.enableApiPolling)")
	fs.DurationVar(&f.PollInterval, "api-polling-interval", 30*time.Second, "interval of the full list, served from the API server's watch cache (Spark's spark.kubernetes.executor.apiPollingInterval)")
	fs.BoolVar(&f.CheckAllContainers, "check-all-containers", true, "for pods without the "+snapshotmodel.AnnotationCheckAllContainers+" annotation: any container exiting non-zero fails a restartPolicy=Never pod (Spark's spark.kubernetes.executor.checkAllContainers; true since Spark 4.0)")
	fs.StringVar(&f.ExecutorContainerName, "executor-container-name", snapshotmodel.DefaultExecutorContainerName, "for pods without the "+snapshotmodel.AnnotationExecutorContainerName+" annotation: the Spark container whose exit code decides the state (Spark's spark.kubernetes.executor.podTemplateContainerName)")
	fs.StringVar(&f.DecommissionLabel, "decommission-label", "", "label that marks an executor pod as decommissioning (Spark's spark.kubernetes.executor.decommissionLabel); empty reports none")
	fs.IntVar(&f.HistoryLimit, "history", snapshotmodel.DefaultHistoryLimit, "changes kept so that watchers can resume from a revision; an older revision, or a watcher that falls this far behind, gets a full reset")
	fs.IntVar(&f.MaxExecutorsPerMessage, "max-executors-per-message", server.DefaultMaxExecutorsPerMessage, "most executors in one WatchSnapshots message; larger resets and backlogs are split")
}

// Config validates the flags and builds the service's Config.
func (f *Flags) Config() (Config, error) {
	var cfg Config
	logger, err := f.Server.Logger()
	if err != nil {
		return cfg, err
	}
	if !f.Watch && !f.Poll {
		return cfg, fmt.Errorf("--enable-api-watcher and --enable-api-polling are both false: enable at least one, or no executor pod is ever seen")
	}
	if f.Poll && f.PollInterval <= 0 {
		return cfg, fmt.Errorf("--api-polling-interval %v: must be positive", f.PollInterval)
	}
	if f.HistoryLimit < 1 {
		return cfg, fmt.Errorf("--history %d: must be at least 1", f.HistoryLimit)
	}
	if f.MaxExecutorsPerMessage < 1 {
		return cfg, fmt.Errorf("--max-executors-per-message %d: must be at least 1", f.MaxExecutorsPerMessage)
	}
	var namespaces []string
	for _, ns := range strings.Split(f.Namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return cfg, fmt.Errorf("--namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		namespaces = append(namespaces, ns)
	}
	rc, err := f.Kube.RESTConfig("sparkpods-snapshot")
	if err != nil {
		return cfg, err
	}
	return Config{
		Listen:        f.Server.Listen,
		MetricsListen: f.Server.MetricsListen,
		Limits:        f.Server.Limits,
		Security:      f.Server.Security,
		RESTConfig:    rc,
		Logger:        logger,
		Namespaces:    namespaces,
		Watch:         f.Watch,
		Poll:          f.Poll,
		PollInterval:  f.PollInterval,
		Mapping: snapshotmodel.Mapping{
			CheckAllContainers:    f.CheckAllContainers,
			ExecutorContainerName: f.ExecutorContainerName,
			DecommissionLabel:     f.DecommissionLabel,
		},
		HistoryLimit:           f.HistoryLimit,
		MaxExecutorsPerMessage: f.MaxExecutorsPerMessage,
	}, nil
}
