package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// nsLoad is scenario 4's namespace.
const nsLoad = "bench-apiload"

// sparkPollInterval is Spark's spark.kubernetes.executor.apiPollingInterval
// default: every driver lists its executor pods this often, beside its
// watch.
const sparkPollInterval = 30 * time.Second

// podRequests are the API server's counters for pod LIST and WATCH
// requests at one moment, from its own /metrics.
type podRequests struct {
	lists, watchesEnded, openWatches float64
	listBytes, watchBytes            float64
}

// scrapePodRequests reads the pod LIST/WATCH counters. A WATCH is counted by
// apiserver_request_total only when it ends; the ones still open are the
// apiserver_longrunning_requests gauge. Bytes: LIST response sizes, and the
// sizes of the watch events the API server encoded for pods (per watcher).
func (e *env) scrapePodRequests(ctx context.Context) (podRequests, error) {
	m, err := e.scrapeAPIServer(ctx)
	if err != nil {
		return podRequests{}, err
	}
	pods := `resource="pods"`
	noSub := `subresource=""`
	return podRequests{
		lists:        m.Sum("apiserver_request_total", `verb="LIST"`, pods, noSub),
		watchesEnded: m.Sum("apiserver_request_total", `verb="WATCH"`, pods, noSub),
		openWatches:  m.Sum("apiserver_longrunning_requests", `verb="WATCH"`, pods, noSub),
		listBytes:    m.Sum("apiserver_response_sizes_sum", `verb="LIST"`, pods, noSub),
		// Labelled by resource since Kubernetes 1.30, by kind before.
		watchBytes: m.Sum("apiserver_watch_events_sizes_sum", pods) + m.Sum("apiserver_watch_events_sizes_sum", `kind="Pod"`),
	}, nil
}

// window measures what the API server served for pods between two scrapes,
// relative to base (the open watches of the control plane's own
// components, taken before anything of the scenario ran).
func window(before, after, base podRequests) apiLoadRow {
	return apiLoadRow{
		Lists:       after.lists - before.lists,
		Watches:     (after.openWatches - before.openWatches) + (after.watchesEnded - before.watchesEnded),
		OpenWatches: after.openWatches - base.openWatches,
		ListBytes:   after.listBytes - before.listBytes,
		WatchBytes:  after.watchBytes - before.watchBytes,
	}
}

// apiServerLoad runs scenario 4: for each count of registered applications,
// the pod LIST and WATCH requests the API server serves in a fixed window
// while the sparkpods services manage them, next to what Spark's
// per-driver polling issues (worked out per application, and for
// PollerApps applications issued for real by driver-like pollers).
func (e *env) apiServerLoad(ctx context.Context) (apiLoad, error) {
	res := apiLoad{Window: e.sz.LoadWindow, PollInterval: sparkPollInterval}
	e.log.say("scenario 4: API server load for %v registered applications (%d executor pods each), %s windows",
		e.sz.LoadApps, e.sz.LoadPodsPerApp, secs(e.sz.LoadWindow))
	if err := e.createNamespace(ctx, nsLoad); err != nil {
		return res, err
	}
	base, err := e.scrapePodRequests(ctx)
	if err != nil {
		return res, err
	}
	for _, apps := range e.sz.LoadApps {
		ids, err := e.loadPopulation(ctx, apps)
		if err != nil {
			return res, err
		}
		// The pollers go first: unregistering the applications at the end
		// of the sparkpods row deletes their executor pods.
		if apps == e.sz.PollerApps {
			row, err := e.pollerLoad(ctx, ids, base)
			if err != nil {
				return res, fmt.Errorf("driver-like pollers: %w", err)
			}
			res.Rows = append(res.Rows, row)
		}
		row, err := e.sparkpodsLoad(ctx, ids, base)
		if err != nil {
			return res, fmt.Errorf("%d applications: %w", apps, err)
		}
		res.Rows = append(res.Rows, row)
		perWindow := float64(apps) * e.sz.LoadWindow.Seconds() / sparkPollInterval.Seconds()
		res.Rows = append(res.Rows, apiLoadRow{
			What: "Spark drivers (computed)", Apps: apps, Computed: true,
			Lists: perWindow, Watches: float64(apps), OpenWatches: float64(apps),
			ExecutorPods: apps * e.sz.LoadPodsPerApp,
		})
		if err := e.deletePods(ctx, nsLoad, labelAppID, 5*time.Minute); err != nil {
			return res, err
		}
	}
	return res, nil
}

// loadPopulation creates apps applications' driver and executor pods, left
// unscheduled: the population is what the services list and watch.
func (e *env) loadPopulation(ctx context.Context, apps int) ([]string, error) {
	ids := make([]string, apps)
	var pods []*corev1.Pod
	for i := range ids {
		ids[i] = fmt.Sprintf("load-%d-%04d", apps, i)
		pods = append(pods, driverPod(ids[i]))
		for id := range e.sz.LoadPodsPerApp {
			pods = append(pods, executorPod(ids[i], int64(id+1)))
		}
	}
	var created int
	var mu sync.Mutex
	stop := every(ctx, 5*time.Second, func() {
		mu.Lock()
		defer mu.Unlock()
		e.log.say("  created %d/%d pods", created, len(pods))
	})
	defer stop()
	err := createPods(ctx, e.kube, nsLoad, pods, func() { mu.Lock(); created++; mu.Unlock() })
	return ids, err
}

// sparkpodsLoad is one measured row: the snapshot service, the pod manager
// and the allocator with apps registered applications, each at its target
// (so the allocator writes nothing), measured once the snapshot service
// reports every application.
func (e *env) sparkpodsLoad(ctx context.Context, ids []string, base podRequests) (apiLoadRow, error) {
	apps := len(ids)
	svcs := e.services(fmt.Sprintf("apiload-%d", apps))
	defer svcs.stop()
	before, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	snapshot, err := svcs.start(ctx, "snapshot", "snapshot", "--namespaces="+nsLoad)
	if err != nil {
		return apiLoadRow{}, err
	}
	podman, err := svcs.start(ctx, "podmanager", "podmanager")
	if err != nil {
		return apiLoadRow{}, err
	}
	alloc, err := svcs.start(ctx, "allocator", "allocator", "--snapshot-addr="+snapshot.Addr(),
		"--podmanager-addr="+podman.Addr(), "--leader-elect=false", "--namespace="+nsLoad)
	if err != nil {
		return apiLoadRow{}, err
	}
	allocConn, err := svcs.dial(alloc)
	if err != nil {
		return apiLoadRow{}, err
	}
	snapConn, err := svcs.dial(snapshot)
	if err != nil {
		return apiLoadRow{}, err
	}
	sched := sparkpodsv1.NewSchedulerServiceClient(allocConn)
	for i, id := range ids {
		conf := sparkConf(nsLoad, id)
		conf["spark.executor.instances"] = fmt.Sprint(e.sz.LoadPodsPerApp)
		if _, err := sched.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
			Namespace: nsLoad, AppId: id, DriverPodName: id + "-driver", SparkConf: conf,
		}); err != nil {
			return apiLoadRow{}, fmt.Errorf("RegisterApplication %s: %w", id, err)
		}
		if _, err := sched.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: nsLoad, AppId: id,
			Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 0, TotalExecutors: int32(e.sz.LoadPodsPerApp)}}}); err != nil {
			return apiLoadRow{}, fmt.Errorf("SetExecutorTargets %s: %w", id, err)
		}
		if (i+1)%100 == 0 {
			e.log.say("  registered %d/%d applications", i+1, apps)
		}
	}
	snap := sparkpodsv1.NewSnapshotServiceClient(snapConn)
	if err := poll(ctx, 500*time.Millisecond, 2*time.Minute, "snapshot service lists every application", func(ctx context.Context) (bool, error) {
		n, err := countApplications(ctx, snap)
		return n >= apps, err
	}); err != nil {
		return apiLoadRow{}, err
	}

	// The window starts once everything is up: it measures the steady
	// state, as Spark's per-window figures do.
	start, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	cpu0, err := cpuSeconds(snapshot.PID())
	if err != nil {
		return apiLoadRow{}, err
	}
	e.log.say("  %d applications registered; measuring for %s", apps, secs(e.sz.LoadWindow))
	if err := pause(ctx, e.sz.LoadWindow); err != nil {
		return apiLoadRow{}, err
	}
	end, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	cpu1, err := cpuSeconds(snapshot.PID())
	if err != nil {
		return apiLoadRow{}, err
	}
	row := window(start, end, base)
	// The services' start-up (the initial list is streamed over the watch)
	// is part of what a new replica costs: count the watch from before.
	row.Watches = window(before, end, base).Watches
	row.What = "sparkpods (measured)"
	row.Apps = apps
	row.ExecutorPods = apps * e.sz.LoadPodsPerApp
	row.SnapshotCPU = (cpu1 - cpu0) / e.sz.LoadWindow.Seconds()
	for _, id := range ids {
		if _, err := sched.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{Namespace: nsLoad, AppId: id}); err != nil {
			return row, fmt.Errorf("UnregisterApplication %s: %w", id, err)
		}
	}
	return row, nil
}

// countApplications pages through ListApplications.
func countApplications(ctx context.Context, snap sparkpodsv1.SnapshotServiceClient) (int, error) {
	n, token := 0, ""
	for {
		resp, err := snap.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{Namespace: nsLoad, PageSize: 1000, PageToken: token})
		if err != nil {
			return n, err
		}
		n += len(resp.GetApplications())
		if token = resp.GetNextPageToken(); token == "" {
			return n, nil
		}
	}
}

// pollerLoad issues Spark's requests for real: per application, what the
// driver's ExecutorPodsWatchSnapshotSource and
// ExecutorPodsPollingSnapshotSource do — one watch of the application's
// executor pods, and a LIST of them every apiPollingInterval. Drivers start
// at unrelated times, so each poller's first LIST falls at a random point
// of the interval.
func (e *env) pollerLoad(ctx context.Context, ids []string, base podRequests) (apiLoadRow, error) {
	apps := len(ids)
	e.log.say("  %d driver-like pollers: one watch and a LIST every %s each", apps, secs(sparkPollInterval))
	pollCtx, stopPollers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopPollers(); wg.Wait() }()
	var errMu sync.Mutex
	var firstErr error
	record := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil && pollCtx.Err() == nil {
			firstErr = err
		}
	}
	before, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	for _, id := range ids {
		selector := labelAppID + "=" + id + "," + executorSel
		pods := e.kube.CoreV1().Pods(nsLoad)
		w, err := pods.Watch(pollCtx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return apiLoadRow{}, fmt.Errorf("watch for %s: %w", id, err)
		}
		phase := time.Duration(rand.Int64N(int64(sparkPollInterval)))
		wg.Go(func() {
			defer w.Stop()
			for {
				select {
				case <-pollCtx.Done():
					return
				case _, ok := <-w.ResultChan():
					if !ok {
						return
					}
				}
			}
		})
		wg.Go(func() {
			timer := time.NewTimer(phase)
			defer timer.Stop()
			for {
				select {
				case <-pollCtx.Done():
					return
				case <-timer.C:
				}
				if _, err := pods.List(pollCtx, metav1.ListOptions{LabelSelector: selector}); err != nil {
					record(err)
				}
				timer.Reset(sparkPollInterval)
			}
		})
	}
	start, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	if err := pause(ctx, e.sz.LoadWindow); err != nil {
		return apiLoadRow{}, err
	}
	end, err := e.scrapePodRequests(ctx)
	if err != nil {
		return apiLoadRow{}, err
	}
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr != nil {
		return apiLoadRow{}, fmt.Errorf("a poller's LIST failed: %w", firstErr)
	}
	row := window(start, end, base)
	row.Watches = window(before, end, base).Watches
	row.What = "Spark-like pollers (measured)"
	row.Apps = apps
	row.ExecutorPods = apps * e.sz.LoadPodsPerApp
	return row, nil
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
