package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sparkpods/sparkpods/deploy/local/launch"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// nsPopulation is the namespace of scenarios 2, 3 and 5.
const nsPopulation = "bench-population"

// deliveryGrace is how long after the last write a change or an event may
// still arrive before it counts as lost.
const deliveryGrace = 15 * time.Second

// populationConf is what every application of the population adds to its
// Spark configuration. The allocator manages the applications (the lifecycle
// service serves only applications registered with it) but must leave the
// benchmark's pods alone: with a target of 0 it would delete pending pods
// older than the idle timeout as excess, so the timeout outlasts the run. The
// failure limit is lifted so that the failures the benchmark writes do not
// add FAILURE_LIMIT_EXCEEDED events to the measured streams.
var populationConf = map[string]string{
	"spark.dynamicAllocation.executorIdleTimeout": "86400s",
	"spark.executor.maxNumFailures":               "1000000",
}

// population is the growing population of executor pods and the services
// that watch it.
type population struct {
	e    *env
	ns   string
	apps []string
	// nextID is each application's next executor id.
	nextID []int64
	// alive are the executor pods that exist and have not been failed.
	alive []string
	// snapshot is the snapshot service's process and client; lifecycleAddr
	// the lifecycle service's address.
	snapshotProc  *launch.Service
	snapshot      sparkpodsv1.SnapshotServiceClient
	snapshotConn  *grpc.ClientConn
	lifecycleAddr string
	// events records when each pod's EXECUTOR_REMOVED event reached its
	// application's consumer.
	events *arrivals
}

// population runs scenarios 2 (latency), 3 (memory) and 5 (fan-out) on one
// population of executor pods that grows through e.sz.Levels, filling
// res.Latency, res.Memory, res.MemoryNote and res.FanOut as it goes, so that
// what was measured before a failure is kept.
func (e *env) population(ctx context.Context, res *results) error {
	e.log.say("scenarios 2, 3 and 5: %d applications growing through %v executor pods; latency at %v, fan-out to %v subscribers at %d",
		e.sz.Apps, e.sz.Levels, e.sz.LatencyLevels, e.sz.FanOutSubscribers, e.sz.FanOutLevel)
	p := &population{e: e, ns: nsPopulation, events: newArrivals()}
	if err := e.createNamespace(ctx, p.ns); err != nil {
		return err
	}
	defer func() {
		// The namespace goes with its pods; the control plane stops right
		// after, so its deletion is not waited for.
		_ = e.kube.CoreV1().Namespaces().Delete(context.Background(), p.ns, metav1.DeleteOptions{})
	}()
	svcs := e.services("population")
	defer svcs.stop()
	if err := p.start(ctx, svcs); err != nil {
		return err
	}
	stopConsumers, err := p.consumeEvents(ctx)
	if err != nil {
		return err
	}
	defer stopConsumers()

	for i, level := range e.sz.Levels {
		last := i == len(e.sz.Levels)-1
		cut, err := p.grow(ctx, level, last)
		if err != nil {
			return err
		}
		if cut != "" {
			res.MemoryNote = cut
		}
		if err := p.waitSnapshot(ctx); err != nil {
			return err
		}
		mem, err := serviceMemory(ctx, p.snapshotProc.MetricsAddr(), p.snapshotProc.PID())
		if err != nil {
			return fmt.Errorf("snapshot memory at %d pods: %w", len(p.alive), err)
		}
		res.Memory = append(res.Memory, memoryPoint{Pods: len(p.alive), memory: mem})
		e.log.say("  %d pods: snapshot live heap %.1f MiB, heap in use %.1f MiB, RSS %.1f MiB",
			len(p.alive), mem.HeapLive/(1<<20), mem.HeapInuse/(1<<20), mem.RSS/(1<<20))

		if slices.Contains(e.sz.LatencyLevels, level) {
			run, err := p.latency(ctx, level)
			if err != nil {
				return fmt.Errorf("latency at %d pods: %w", len(p.alive), err)
			}
			res.Latency = append(res.Latency, run)
		}
		if level == e.sz.FanOutLevel {
			res.FanOut = fanOut{Pods: len(p.alive), Rate: e.sz.ChurnRate}
			for _, n := range e.sz.FanOutSubscribers {
				row, err := p.fanOut(ctx, n)
				if err != nil {
					return fmt.Errorf("fan-out to %d subscribers: %w", n, err)
				}
				res.FanOut.Rows = append(res.FanOut.Rows, row)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// start creates the driver pods, starts the four services, and registers
// every application with the allocator before any executor pod exists, so
// that the lifecycle service manages each application from its first
// snapshot.
func (p *population) start(ctx context.Context, svcs *serviceSet) error {
	e := p.e
	p.apps = make([]string, e.sz.Apps)
	p.nextID = make([]int64, e.sz.Apps)
	drivers := make([]*corev1.Pod, e.sz.Apps)
	for i := range p.apps {
		p.apps[i] = fmt.Sprintf("pop-%04d", i)
		p.nextID[i] = 1
		drivers[i] = driverPod(p.apps[i])
	}
	if err := createPods(ctx, e.kube, p.ns, drivers, nil); err != nil {
		return err
	}
	// --max-streams-per-client: fan-out opens more streams than the default
	// allows one client. The benchmark's own clients also dial from
	// separate loopback addresses (dialFrom), as separate clients would.
	streams := "--max-streams-per-client=1000"
	snapshot, err := svcs.start(ctx, "snapshot", "snapshot", "--namespaces="+p.ns, streams)
	if err != nil {
		return err
	}
	podman, err := svcs.start(ctx, "podmanager", "podmanager")
	if err != nil {
		return err
	}
	alloc, err := svcs.start(ctx, "allocator", "allocator", "--snapshot-addr="+snapshot.Addr(),
		"--podmanager-addr="+podman.Addr(), "--leader-elect=false", "--namespace="+p.ns)
	if err != nil {
		return err
	}
	allocConn, err := svcs.dial(alloc)
	if err != nil {
		return err
	}
	sched := sparkpodsv1.NewSchedulerServiceClient(allocConn)
	for _, app := range p.apps {
		conf := sparkConf(p.ns, app)
		maps.Copy(conf, populationConf)
		if _, err := sched.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
			Namespace: p.ns, AppId: app, DriverPodName: app + "-driver", SparkConf: conf,
		}); err != nil {
			return fmt.Errorf("RegisterApplication %s: %w", app, err)
		}
	}
	lifecycle, err := svcs.start(ctx, "lifecycle", "lifecycle", "--snapshot-addr="+snapshot.Addr(),
		"--podmanager-addr="+podman.Addr(), "--allocator-addr="+alloc.Addr(), "--namespaces="+p.ns, streams)
	if err != nil {
		return err
	}
	conn, err := svcs.dial(snapshot)
	if err != nil {
		return err
	}
	p.snapshotProc, p.snapshotConn, p.snapshot, p.lifecycleAddr = snapshot, conn, sparkpodsv1.NewSnapshotServiceClient(conn), lifecycle.Addr()
	return nil
}

// grow creates executor pods, spread evenly over the applications, until
// level exist. The last level is bounded by BigLevelBudget; when creation
// is cut short, grow returns a note saying so and the population is what
// was created.
func (p *population) grow(ctx context.Context, level int, last bool) (cut string, err error) {
	e := p.e
	n := level - len(p.alive)
	if n <= 0 {
		return "", nil
	}
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		a := (len(p.alive) + i) % len(p.apps)
		pods[i] = executorPod(p.apps[a], p.nextID[a])
		p.nextID[a]++
	}
	createCtx := ctx
	if last {
		var cancel context.CancelFunc
		createCtx, cancel = context.WithTimeout(ctx, e.sz.BigLevelBudget)
		defer cancel()
	}
	var created atomic.Int64
	began := time.Now()
	stop := every(ctx, 5*time.Second, func() {
		c := created.Load()
		e.log.say("  creating pods up to %d: %d of %d created in %s (%.0f/s)",
			level, c, n, secs(time.Since(began)), float64(c)/time.Since(began).Seconds())
	})
	err = createPods(createCtx, e.kube, p.ns, pods, func() { created.Add(1) })
	stop()
	took := time.Since(began)
	stopped := err != nil && ctx.Err() == nil && errors.Is(createCtx.Err(), context.DeadlineExceeded)
	if err != nil && !stopped {
		return "", err
	}
	// Creates may have gone through after their context ended: the API
	// server's list is the population.
	if p.alive, err = p.listAlive(ctx); err != nil {
		return "", err
	}
	if stopped {
		cut = fmt.Sprintf("Creating the %d-pod level was stopped after its %s budget (%.0f pods/s on this machine): "+
			"the last memory point is measured at the %d pods that existed then.",
			level, secs(e.sz.BigLevelBudget), float64(created.Load())/took.Seconds(), len(p.alive))
	}
	e.log.say("  %d executor pods exist (%d created in %s)", len(p.alive), created.Load(), secs(took))
	if cut != "" {
		e.log.say("  %s", cut)
	}
	return cut, nil
}

// listAlive lists the names of the executor pods that are still Pending:
// every pod of the population that has not been failed.
func (p *population) listAlive(ctx context.Context) ([]string, error) {
	var names []string
	opts := metav1.ListOptions{LabelSelector: executorSel, FieldSelector: "status.phase=Pending", Limit: 5000}
	for {
		list, err := p.e.kube.CoreV1().Pods(p.ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", p.ns, err)
		}
		for i := range list.Items {
			names = append(names, list.Items[i].Name)
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return names, nil
		}
	}
}

// waitSnapshot waits until the snapshot service counts every alive pod as
// pending.
func (p *population) waitSnapshot(ctx context.Context) error {
	want := len(p.alive)
	var have int
	began := time.Now()
	err := poll(ctx, 200*time.Millisecond, 2*time.Minute+time.Duration(want/100)*time.Second,
		fmt.Sprintf("snapshot service holds %d pending executors", want), func(ctx context.Context) (bool, error) {
			n, err := p.snapshotPending(ctx)
			have = n
			return n == want, err
		})
	if err != nil {
		return fmt.Errorf("%w (it holds %d)", err, have)
	}
	p.e.log.say("  snapshot service holds all %d pods (%s after the last create)", want, secs(time.Since(began)))
	return nil
}

// snapshotPending sums the pending executors of every application of the
// namespace, as ListApplications counts them.
func (p *population) snapshotPending(ctx context.Context) (int, error) {
	var n int
	req := &sparkpodsv1.ListApplicationsRequest{Namespace: p.ns, PageSize: 5000}
	for {
		resp, err := p.snapshot.ListApplications(ctx, req)
		if err != nil {
			return 0, err
		}
		for _, a := range resp.GetApplications() {
			n += int(a.GetCounts().GetPending())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return n, nil
		}
	}
}

// arrivals records when each key (a status message, a pod name) was first
// received by one consumer, and the bytes of the messages it received.
type arrivals struct {
	mu          sync.Mutex
	at          map[string]time.Time
	changeBytes int
	resetBytes  int
	ready       chan struct{} // closed when the initial state is in
	readyOnce   sync.Once
	err         error
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]time.Time{}, ready: make(chan struct{})}
}

func (a *arrivals) record(key string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, seen := a.at[key]; !seen {
		a.at[key] = now
	}
}

func (a *arrivals) get(key string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[key]
	return t, ok
}

func (a *arrivals) bytes() (reset, changes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.resetBytes, a.changeBytes
}

func (a *arrivals) setReady() { a.readyOnce.Do(func() { close(a.ready) }) }

func (a *arrivals) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	a.setReady()
}

func (a *arrivals) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// dialFrom connects to addr as benchmark client number client: with its
// own certificate, from the loopback address 127.0.1.<client+1> (then
// 127.0.2.…). The services limit the streams one client may hold, and the
// benchmark's subscribers stand for separate clients.
func (e *env) dialFrom(addr string, client int) (*grpc.ClientConn, error) {
	opts, err := e.clientDialOptions(client)
	if err != nil {
		return nil, err
	}
	src := &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+client/250), byte(1+client%250))}
	dialer := &net.Dialer{LocalAddr: src}
	return grpc.NewClient(addr, append(opts,
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", a)
		}))...)
}

// subscribe opens a WatchSnapshots stream of every application of the
// namespace with batch interval 0 (each change sent as soon as it
// happens), and records when each executor status message starting with
// prefix first arrives, and the size of every message.
func (p *population) subscribe(ctx context.Context, conn *grpc.ClientConn, prefix string) (*arrivals, error) {
	stream, err := sparkpodsv1.NewSnapshotServiceClient(conn).WatchSnapshots(ctx, &sparkpodsv1.WatchSnapshotsRequest{Namespace: p.ns})
	if err != nil {
		return nil, fmt.Errorf("WatchSnapshots: %w", err)
	}
	a := newArrivals()
	go func() {
		for {
			resp, err := stream.Recv()
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					a.fail(fmt.Errorf("WatchSnapshots: %w", err))
				}
				return
			}
			size := proto.Size(resp)
			switch ev := resp.GetEvent().(type) {
			case *sparkpodsv1.WatchSnapshotsResponse_Reset_:
				a.mu.Lock()
				a.resetBytes += size
				a.mu.Unlock()
				if ev.Reset_.GetLastChunk() {
					a.setReady()
				}
			case *sparkpodsv1.WatchSnapshotsResponse_Changes:
				a.mu.Lock()
				a.changeBytes += size
				for _, c := range ev.Changes.GetChanges() {
					for _, x := range c.GetUpserted() {
						if m := x.GetStatusMessage(); strings.HasPrefix(m, prefix) {
							if _, seen := a.at[m]; !seen {
								a.at[m] = now
							}
						}
					}
				}
				a.mu.Unlock()
			}
		}
	}()
	return a, nil
}

// rawWatch is a plain client-go watch of the namespace's executor pods from
// the current resourceVersion, recording when each status message starting
// with prefix first arrives.
func (p *population) rawWatch(ctx context.Context, prefix string) (*arrivals, error) {
	pods := p.e.kube.CoreV1().Pods(p.ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: executorSel, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", p.ns, err)
	}
	rv := list.ResourceVersion
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: executorSel, ResourceVersion: rv})
	if err != nil {
		return nil, fmt.Errorf("watch pods in %s: %w", p.ns, err)
	}
	a := newArrivals()
	a.setReady()
	go func() {
		defer func() { w.Stop() }()
		for {
			for ev := range w.ResultChan() {
				now := time.Now()
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type != watch.Modified {
					continue
				}
				rv = pod.ResourceVersion
				if m := pod.Status.Message; strings.HasPrefix(m, prefix) {
					a.record(m, now)
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The API server ends watches after a while; go on from the last
			// object seen, as a reflector does.
			if w, err = pods.Watch(ctx, metav1.ListOptions{LabelSelector: executorSel, ResourceVersion: rv}); err != nil {
				a.fail(fmt.Errorf("re-watch pods in %s: %w", p.ns, err))
				return
			}
		}
	}()
	return a, nil
}

// consumeEvents opens one WatchExecutorEvents stream per application, as
// each driver would, and records when each pod's EXECUTOR_REMOVED event
// arrives, acknowledging events as a driver does. stop ends the streams and
// closes their connections.
func (p *population) consumeEvents(ctx context.Context) (stop func(), err error) {
	// A few streams per connection and client address: the lifecycle
	// service limits the streams one client address may hold.
	const perConn = 25
	ctx, cancel := context.WithCancel(ctx)
	var (
		conns []*grpc.ClientConn
		wg    sync.WaitGroup
	)
	stop = func() {
		cancel()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for i, app := range p.apps {
		if i%perConn == 0 {
			c, err := p.e.dialFrom(p.lifecycleAddr, i/perConn)
			if err != nil {
				stop()
				return nil, err
			}
			conns = append(conns, c)
		}
		client := sparkpodsv1.NewLifecycleServiceClient(conns[len(conns)-1])
		wg.Go(func() { p.consumeApp(ctx, client, app) })
	}
	return stop, nil
}

// consumeApp follows one application's events until ctx ends, resuming
// after the last sequence on a broken stream.
func (p *population) consumeApp(ctx context.Context, client sparkpodsv1.LifecycleServiceClient, app string) {
	var after int64
	for ctx.Err() == nil {
		stream, err := client.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: p.ns, AppId: app, AfterSequence: after})
		for err == nil {
			var resp *sparkpodsv1.WatchExecutorEventsResponse
			if resp, err = stream.Recv(); err != nil {
				break
			}
			now := time.Now()
			ev := resp.GetEvent()
			if ev == nil {
				continue
			}
			if ev.GetType() == sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED {
				p.events.record(ev.GetPodName(), now)
			}
			after = max(after, ev.GetSequence())
			_, _ = client.AcknowledgeExecutorEvents(ctx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{Namespace: p.ns, AppId: app, Sequence: after})
		}
		if ctx.Err() == nil {
			p.e.log.say("  lifecycle events of %s: %v; reconnecting", app, err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// writes records the measured writes by key (status message or pod name).
type writes struct {
	mu     sync.Mutex
	byKey  map[string]write
	errs   int
	first  error
	lastAt time.Time // when the last write was sent
}

func (w *writes) add(key string, wr write, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs++
		if w.first == nil {
			w.first = err
		}
		return
	}
	if w.byKey == nil {
		w.byKey = map[string]write{}
	}
	w.byKey[key] = wr
	if wr.sent.After(w.lastAt) {
		w.lastAt = wr.sent
	}
}

// churn patches the status message of n pods at rate per second, the i-th
// with the message prefix+i, and returns the writes keyed by message.
func (p *population) churn(ctx context.Context, targets []string, rate int, prefix string) *writes {
	w := &writes{}
	paced(ctx, len(targets), rate, func(ctx context.Context, i int) {
		msg := fmt.Sprintf("%s%d", prefix, i)
		wr, err := patchMessage(ctx, p.e.kube, p.ns, targets[i], msg)
		w.add(msg, wr, err)
	})
	return w
}

// latency runs scenario 2 at the current population: Churn of status
// changes at ChurnRate on random pods, watched by one WatchSnapshots
// subscriber of all applications and by a plain watch of the namespace,
// while FailureRate pods per second fail and their applications' lifecycle
// consumers wait for EXECUTOR_REMOVED.
func (p *population) latency(ctx context.Context, level int) (latencyRun, error) {
	e := p.e
	run := latencyRun{Pods: len(p.alive), Apps: len(p.apps)}
	prefix := fmt.Sprintf("bench-latency-%d-", level)
	nChanges := int(e.sz.Churn.Seconds() * float64(e.sz.ChurnRate))
	nFailures := int(e.sz.Churn.Seconds() * float64(e.sz.FailureRate))
	e.log.say("  latency at %d pods: %d status changes at %d/s and %d failures at %d/s",
		len(p.alive), nChanges, e.sz.ChurnRate, nFailures, e.sz.FailureRate)
	// The failing pods first, then the changed pods from the rest, so that
	// no change lands on a failing pod. The changes cycle through the rest
	// in a random order: a pod changes again only after every other one
	// has, so no change is coalesced with another into one snapshot delta.
	perm := rand.Perm(len(p.alive))
	failTargets := make([]string, min(nFailures, len(p.alive)/2))
	for i := range failTargets {
		failTargets[i] = p.alive[perm[i]]
	}
	rest := perm[len(failTargets):]
	changeTargets := make([]string, nChanges)
	for i := range changeTargets {
		changeTargets[i] = p.alive[rest[i%len(rest)]]
	}
	if len(failTargets) < nFailures {
		e.log.say("  only %d of the %d failures: half the pods at most", len(failTargets), nFailures)
	}

	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	sub, err := p.subscribe(subCtx, p.snapshotConn, prefix)
	if err != nil {
		return run, err
	}
	if err := waitReady(ctx, sub); err != nil {
		return run, err
	}
	raw, err := p.rawWatch(subCtx, prefix)
	if err != nil {
		return run, err
	}

	began := time.Now()
	var wg sync.WaitGroup
	var changes *writes
	fails := &writes{}
	wg.Go(func() { changes = p.churn(ctx, changeTargets, e.sz.ChurnRate, prefix) })
	if len(failTargets) > 0 {
		wg.Go(func() {
			paced(ctx, len(failTargets), e.sz.FailureRate, func(ctx context.Context, i int) {
				wr, err := failPod(ctx, e.kube, p.ns, failTargets[i])
				fails.add(failTargets[i], wr, err)
			})
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	if changes.errs > 0 || fails.errs > 0 {
		e.log.say("  %d status patches and %d failure patches failed (first: %v %v)", changes.errs, fails.errs, changes.first, fails.first)
	}
	failed := make(map[string]bool, len(fails.byKey))
	for name := range fails.byKey {
		failed[name] = true
	}
	p.alive = removeAll(p.alive, failed)

	run.Changes, run.Failures = len(changes.byKey), len(fails.byKey)
	run.Window = changes.lastAt.Sub(began)
	if run.Window > 0 {
		run.Rate = float64(run.Changes) / run.Window.Seconds()
	}
	if fw := fails.lastAt.Sub(began); fw > 0 {
		run.FailureRate = float64(run.Failures) / fw.Seconds()
	}

	all := func() bool {
		return countSeen(sub, changes.byKey) == run.Changes && countSeen(raw, changes.byKey) == run.Changes &&
			countSeen(p.events, fails.byKey) == run.Failures
	}
	waitAll(ctx, all)
	if err := sub.failed(); err != nil {
		return run, err
	}
	if err := raw.failed(); err != nil {
		return run, err
	}
	stopSub()

	var fromReturned, fromSent, rawLat, lifecycle []time.Duration
	for msg, wr := range changes.byKey {
		if t, ok := sub.get(msg); ok {
			fromReturned = append(fromReturned, t.Sub(wr.returned))
			fromSent = append(fromSent, t.Sub(wr.sent))
		} else {
			run.LostChanges++
		}
		if t, ok := raw.get(msg); ok {
			rawLat = append(rawLat, t.Sub(wr.returned))
		}
	}
	for name, wr := range fails.byKey {
		if t, ok := p.events.get(name); ok {
			lifecycle = append(lifecycle, t.Sub(wr.returned))
		} else {
			run.LostEvents++
		}
	}
	run.Subscriber, run.SubscriberFromSent = summarize(fromReturned), summarize(fromSent)
	run.RawWatch, run.Lifecycle = summarize(rawLat), summarize(lifecycle)
	if lostRaw := run.Changes - len(rawLat); lostRaw > 0 {
		e.log.say("  the raw watch missed %d of %d changes", lostRaw, run.Changes)
	}
	e.log.say("  subscriber: %s; raw watch: %s; lifecycle: %s; lost %d changes, %d events",
		run.Subscriber, run.RawWatch, run.Lifecycle, run.LostChanges, run.LostEvents)
	return run, nil
}

// fanOut runs scenario 5 for one subscriber count: n WatchSnapshots
// subscribers of all applications, each on its own connection, then
// FanOutChurn of status changes at ChurnRate.
func (p *population) fanOut(ctx context.Context, n int) (fanOutRow, error) {
	e := p.e
	row := fanOutRow{Subscribers: n}
	prefix := fmt.Sprintf("bench-fanout-%d-", n)
	e.log.say("  fan-out to %d subscribers at %d pods", n, len(p.alive))

	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subs := make([]*arrivals, n)
	for i := range subs {
		conn, err := e.dialFrom(p.snapshotProc.Addr(), i)
		if err != nil {
			return row, err
		}
		defer func() { _ = conn.Close() }()
		if subs[i], err = p.subscribe(subCtx, conn, prefix); err != nil {
			return row, fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	var resetBytes float64
	for _, s := range subs {
		if err := waitReady(ctx, s); err != nil {
			return row, err
		}
		r, _ := s.bytes()
		resetBytes += float64(r)
	}
	row.ResetBytes = resetBytes / float64(n)
	baseBytes := make([]int, n)
	for i, s := range subs {
		_, baseBytes[i] = s.bytes()
	}

	nChanges := int(e.sz.FanOutChurn.Seconds() * float64(e.sz.ChurnRate))
	perm := rand.Perm(len(p.alive))
	targets := make([]string, nChanges)
	for i := range targets {
		targets[i] = p.alive[perm[i%len(perm)]]
	}
	cpu0, err := cpuSeconds(p.snapshotProc.PID())
	if err != nil {
		return row, err
	}
	began := time.Now()
	changes := p.churn(ctx, targets, e.sz.ChurnRate, prefix)
	if ctx.Err() != nil {
		return row, ctx.Err()
	}
	row.Changes = len(changes.byKey)
	waitAll(ctx, func() bool {
		for _, s := range subs {
			if countSeen(s, changes.byKey) < row.Changes {
				return false
			}
		}
		return true
	})
	// CPU over the churn and the deliveries that followed it.
	cpu1, err := cpuSeconds(p.snapshotProc.PID())
	if err != nil {
		return row, err
	}
	row.CPU = (cpu1 - cpu0) / time.Since(began).Seconds()

	var delivery []time.Duration
	var changeBytes float64
	for i, s := range subs {
		if err := s.failed(); err != nil {
			return row, fmt.Errorf("subscriber %d: %w", i, err)
		}
		_, b := s.bytes()
		changeBytes += float64(b - baseBytes[i])
		for msg, wr := range changes.byKey {
			if t, ok := s.get(msg); ok {
				delivery = append(delivery, t.Sub(wr.returned))
			} else {
				// Lost counts (change, subscriber) pairs.
				row.Lost++
			}
		}
	}
	if row.Changes > 0 {
		row.BytesPerChange = changeBytes / float64(row.Changes) / float64(n)
	}
	row.Delivery = summarize(delivery)
	e.log.say("  %d subscribers: reset %.0f KiB each, %.0f bytes per change per subscriber, snapshot CPU %.2f cores, delivery %s, lost %d",
		n, row.ResetBytes/1024, row.BytesPerChange, row.CPU, row.Delivery, row.Lost)
	return row, nil
}

// waitReady waits until a subscriber has its initial state.
func waitReady(ctx context.Context, a *arrivals) error {
	select {
	case <-a.ready:
		return a.failed()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Minute):
		return errors.New("no initial snapshot within 2 minutes")
	}
}

// waitAll waits until done reports true or deliveryGrace has passed.
func waitAll(ctx context.Context, done func() bool) {
	_ = poll(ctx, 50*time.Millisecond, deliveryGrace, "deliveries", func(context.Context) (bool, error) { return done(), nil })
}

// countSeen counts the keys of ws that a has received.
func countSeen(a *arrivals, ws map[string]write) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k := range ws {
		if _, ok := a.at[k]; ok {
			n++
		}
	}
	return n
}

func removeAll(names []string, drop map[string]bool) []string {
	out := names[:0]
	for _, n := range names {
		if !drop[n] {
			out = append(out, n)
		}
	}
	return out
}
