package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/snapshot/internal/snapshottest"
)

// benchEnv turns on TestScaleLatency, which takes about a minute and a half.
const benchEnv = "SPARKPODS_BENCH"

// TestScaleLatency measures the snapshot service at 10,000 executor pods of
// 100 applications on the real control plane:
//
//   - latency from a pod status write (a PATCH of status.message) to a
//     WatchSnapshots subscriber of all applications (batch interval 0)
//     receiving the change, measured both from the moment the PATCH was sent
//     and from the moment it returned, and for part of the writes next to a
//     plain client-go watch, which shows what the service adds;
//   - heap bytes per tracked pod: the test process's live heap after a GC,
//     before the service starts and after it has listed the 10,000 pods and
//     sent the subscriber its reset (so it counts the store, its history
//     ring, the reflector and the gRPC server, all in this process);
//   - LIST and WATCH requests for pods the API server served while the
//     service ran, from the API server's own /metrics.
//
// The pods name a scheduler that does not exist, so they stay Pending and
// unscheduled: the API server's time goes to the measured writes, not to
// binding and starting 10,000 pods.
//
//	SPARKPODS_BENCH=1 go test -run TestScaleLatency -v -count=1 -timeout 15m ./services/snapshot/internal/app/
func TestScaleLatency(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("a measurement, not a test: set " + benchEnv + "=1 to run it")
	}
	const (
		apps        = 100
		perApp      = 100
		writes      = 3500 // 35 s
		comparisons = 1000
		writeRate   = 100 // per second
		createConns = 32
	)
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	client := cp.Client()
	ctx := context.Background()

	names := make([]string, 0, apps*perApp)
	began := time.Now()
	createPods(t, client, ns, apps, perApp, createConns, func(name string) { names = append(names, name) })
	t.Logf("created %d pods in %v", len(names), time.Since(began).Round(time.Millisecond))

	beforeAPI := scrapeAPIServer(t, client)
	heapBefore := liveHeap()
	began = time.Now()
	svc := snapshottest.Start(t, cp.RESTConfig(), nil)
	synced := time.Since(began)

	// The subscriber: all applications, batch interval 0.
	var (
		mu       sync.Mutex
		received = map[string]time.Time{}
		resetAt  time.Time
	)
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := svc.Client.WatchSnapshots(streamCtx, &sparkpodsv1.WatchSnapshotsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvDone := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			now := time.Now()
			mu.Lock()
			if r := msg.GetReset_(); r != nil && r.GetLastChunk() {
				resetAt = now
			}
			for _, c := range msg.GetChanges().GetChanges() {
				for _, e := range c.GetUpserted() {
					if m := e.GetStatusMessage(); strings.HasPrefix(m, "bench-") || strings.HasPrefix(m, "direct-") {
						if _, seen := received[m]; !seen {
							received[m] = now
						}
					}
				}
			}
			mu.Unlock()
		}
	}()
	snapshottest.Eventually(t, 5*time.Minute, "the subscriber's reset", func(context.Context) bool {
		mu.Lock()
		defer mu.Unlock()
		return !resetAt.IsZero()
	})
	stats := svc.App.Store().Stats()
	heapAfter := liveHeap()
	if stats.Executors != apps*perApp {
		t.Fatalf("the store holds %d executors, want %d", stats.Executors, apps*perApp)
	}

	// Phase 1: status patches paced at writeRate, spread over every
	// application, each with a unique message; long enough for one periodic
	// full list (30s) to land in the middle.
	sent := patchStatuses(t, client, ns, names, "bench-", writes, writeRate)
	snapshottest.Eventually(t, time.Minute, "every write at the subscriber", func(context.Context) bool {
		mu.Lock()
		defer mu.Unlock()
		return countPrefix(received, "bench-") == writes
	})
	afterAPI := scrapeAPIServer(t, client)
	fromStart, fromReturn := latencies(&mu, received, "bench-", sent)

	// Phase 2: the same writes seen by a plain client-go watch of the
	// namespace too, to tell the API server's share of the latency from the
	// service's.
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := client.CoreV1().Pods(ns).Watch(streamCtx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	rawReceived := map[string]time.Time{}
	rawDone := make(chan struct{})
	go func() {
		defer close(rawDone)
		for ev := range raw.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok && strings.HasPrefix(pod.Status.Message, "direct-") {
				now := time.Now()
				mu.Lock()
				if _, seen := rawReceived[pod.Status.Message]; !seen {
					rawReceived[pod.Status.Message] = now
				}
				mu.Unlock()
			}
		}
	}()
	sent2 := patchStatuses(t, client, ns, names, "direct-", comparisons, writeRate)
	snapshottest.Eventually(t, time.Minute, "every compared write at both watchers", func(context.Context) bool {
		mu.Lock()
		defer mu.Unlock()
		return countPrefix(received, "direct-") == comparisons && len(rawReceived) == comparisons
	})
	raw.Stop()
	<-rawDone
	cancel()
	if err := <-recvDone; status.Code(err) != codes.Canceled {
		t.Errorf("subscriber stream: %v", err)
	}
	var viaService, viaWatch, overhead []time.Duration
	for i, w := range sent2 {
		m := fmt.Sprintf("direct-%d", i)
		viaService = append(viaService, received[m].Sub(w.end))
		viaWatch = append(viaWatch, rawReceived[m].Sub(w.end))
		overhead = append(overhead, received[m].Sub(rawReceived[m]))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n=== snapshot service at %d executor pods, %d applications (%d per application) ===\n", apps*perApp, apps, perApp)
	fmt.Fprintf(&b, "initial list to SERVING: %v; subscriber reset of all pods received %v after start\n", synced.Round(time.Millisecond), resetAt.Sub(began).Round(time.Millisecond))
	fmt.Fprintf(&b, "write → WatchSnapshots subscriber (all applications, batch interval 0), %d status PATCHes at %d/s:\n", writes, writeRate)
	fmt.Fprintf(&b, "  from PATCH sent:     %s\n", percentiles(fromStart))
	fmt.Fprintf(&b, "  from PATCH returned: %s\n", percentiles(fromReturn))
	fmt.Fprintf(&b, "the next %d PATCHes, seen by the subscriber and by a plain client-go watch of the namespace, from PATCH returned:\n", comparisons)
	fmt.Fprintf(&b, "  client-go watch:     %s\n", percentiles(viaWatch))
	fmt.Fprintf(&b, "  snapshot subscriber: %s\n", percentiles(viaService))
	fmt.Fprintf(&b, "  subscriber minus watch, per write: %s\n", percentiles(overhead))
	fmt.Fprintf(&b, "heap: %d bytes live before the service, %d after listing %d pods and sending the reset: %d bytes per tracked pod\n",
		heapBefore, heapAfter, stats.Executors, (int64(heapAfter)-int64(heapBefore))/int64(stats.Executors))
	fmt.Fprintf(&b, "API server, requests for pods during phase 1 (apiserver_request_total counts a request when it ends):\n")
	for _, verb := range []string{"LIST", "WATCH"} {
		fmt.Fprintf(&b, "  %-5s %v\n", verb, afterAPI.requests[verb]-beforeAPI.requests[verb])
	}
	fmt.Fprintf(&b, "  open WATCH requests for pods (apiserver_longrunning_requests): %v before the service started, %v with it running\n",
		beforeAPI.openWatches, afterAPI.openWatches)
	fmt.Fprintf(&b, "the service's own count: %v LIST and %v WATCH requests for pods; %v polls\n",
		counter(t, svc, "sparkpods_snapshot_list_requests_total"), counter(t, svc, "sparkpods_snapshot_watch_starts_total"),
		counter(t, svc, "sparkpods_snapshot_polls_total"))
	t.Log(b.String())
}

type write struct{ start, end time.Time }

// patchStatuses sets status.message of n pods to prefix<i>, paced at rate per
// second, spreading the writes over every application.
func patchStatuses(t *testing.T, client kubernetes.Interface, ns string, names []string, prefix string, n, rate int) []write {
	t.Helper()
	sent := make([]write, n)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := names[(i*7919)%len(names)]
			patch := fmt.Sprintf(`{"status":{"message":"%s%d"}}`, prefix, i)
			start := time.Now()
			if _, err := client.CoreV1().Pods(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
				t.Errorf("patch %s: %v", name, err)
			}
			sent[i] = write{start, time.Now()}
		}()
	}
	wg.Wait()
	return sent
}

func countPrefix(m map[string]time.Time, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func latencies(mu *sync.Mutex, received map[string]time.Time, prefix string, sent []write) (fromStart, fromReturn []time.Duration) {
	mu.Lock()
	defer mu.Unlock()
	for i, w := range sent {
		at := received[fmt.Sprintf("%s%d", prefix, i)]
		fromStart = append(fromStart, at.Sub(w.start))
		fromReturn = append(fromReturn, at.Sub(w.end))
	}
	return fromStart, fromReturn
}

func createPods(t *testing.T, client kubernetes.Interface, ns string, apps, perApp, conns int, created func(string)) {
	t.Helper()
	type job struct {
		app string
		id  int64
	}
	jobs := make(chan job)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				pod := snapshottest.ExecutorPod(ns, j.app, j.id, nil)
				pod.Spec.SchedulerName = "sparkpods-bench-no-scheduler"
				if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
					t.Errorf("create %s: %v", pod.Name, err)
					continue
				}
				mu.Lock()
				created(pod.Name)
				mu.Unlock()
			}
		}()
	}
	for a := range apps {
		for id := 1; id <= perApp; id++ {
			jobs <- job{app: fmt.Sprintf("spark-bench-%03d", a), id: int64(id)}
		}
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func percentiles(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (min %v)",
		at(0.50).Round(10*time.Microsecond), at(0.90).Round(10*time.Microsecond), at(0.99).Round(10*time.Microsecond),
		s[len(s)-1].Round(10*time.Microsecond), s[0].Round(10*time.Microsecond))
}

type apiServerCounts struct {
	requests    map[string]float64 // by verb, resource="pods"
	openWatches float64
}

// scrapeAPIServer reads the API server's pod request counters from /metrics.
func scrapeAPIServer(t *testing.T, client kubernetes.Interface) apiServerCounts {
	t.Helper()
	body, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("scrape the API server: %v", err)
	}
	c := apiServerCounts{requests: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		isRequests := strings.HasPrefix(line, "apiserver_request_total{")
		isOpen := strings.HasPrefix(line, "apiserver_longrunning_requests{")
		if (!isRequests && !isOpen) || !strings.Contains(line, `resource="pods"`) || !strings.Contains(line, `subresource=""`) {
			continue
		}
		value, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		for _, verb := range []string{"LIST", "WATCH"} {
			if strings.Contains(line, `verb="`+verb+`"`) {
				if isRequests {
					c.requests[verb] += value
				} else if verb == "WATCH" {
					c.openWatches += value
				}
			}
		}
	}
	return c
}

func counter(t *testing.T, svc *snapshottest.Service, name string) float64 {
	t.Helper()
	families, err := svc.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
