package service_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/service"
)

// BenchEnv turns on TestCreateThroughput.
const benchEnv = "SPARKPODS_BENCH"

// TestCreateThroughput measures executor pods created per second through
// PodService against the raw create rate of the same API server: a plain
// parallel client-go loop with the same concurrency, the same client-side
// rate limit and the same pods, in the same run. Each leg creates 500 pods:
// one CreateExecutorPods call, or 500 creates shared by the raw loop's
// workers, so both have the same ramp-down at the end of a leg. The legs
// alternate raw, service, service, raw, twice (ABBA ABBA), so that the load
// kwok and the scheduler add as pods pile up, and any other load on the
// machine, falls on both alike.
//
//	SPARKPODS_BENCH=1 go test -run TestCreateThroughput -v -count=1 ./services/podmanager/internal/service/
func TestCreateThroughput(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("set " + benchEnv + "=1 to run the create-throughput benchmark")
	}
	const (
		legPods = 500 // one CreateExecutorPods call, as an allocator would send a batch
		legs    = 4   // per side
	)
	qps, burst, workers := float64(service.DefaultQPS), service.DefaultBurst, service.DefaultConcurrency
	s := start(t)
	cp := controlplanetest.ControlPlane(t)
	ns := controlplanetest.Namespace(t)
	driver := driverPod(t, s.kube, ns, "spark-bench")

	rc := cp.RESTConfig()
	rc.QPS, rc.Burst = float32(qps), burst
	raw, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	builder, err := podspec.NewBuilder(podspec.Application{
		Namespace: ns, AppID: "spark-bench-raw", Conf: sparkconf.Conf(sparkConf("spark-bench-raw")),
		Driver: &podspec.DriverPod{Name: driver.Name, UID: driver.UID},
	})
	if err != nil {
		t.Fatal(err)
	}

	var nextRaw, nextSvc int64
	rawLeg := func() time.Duration {
		from := nextRaw
		nextRaw += legPods
		pods := make(chan *corev1.Pod, legPods)
		for id := from + 1; id <= from+legPods; id++ {
			p, err := builder.Build(id, 0)
			if err != nil {
				t.Fatal(err)
			}
			pods <- p
		}
		close(pods)
		var (
			wg     sync.WaitGroup
			failed atomic.Int64
		)
		began := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range pods {
					if _, err := raw.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("raw loop: %d creates failed", failed.Load())
		}
		return time.Since(began)
	}
	svcLeg := func() time.Duration {
		from := nextSvc + 1
		nextSvc += legPods
		req := createRequest(ns, "spark-bench", driver.Name, from, from+legPods-1)
		began := time.Now()
		resp, err := s.client.CreateExecutorPods(context.Background(), req)
		took := time.Since(began)
		if err != nil {
			t.Fatal(err)
		}
		if n := countOutcomes(resp.GetResults())[sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED]; n != legPods {
			t.Fatalf("PodService created %d of %d: %v", n, legPods, resp.GetResults()[0])
		}
		return took
	}

	var (
		rawTime, svcTime time.Duration
		trace            string
	)
	leg := func(name string, run func() time.Duration, total *time.Duration) {
		d := run()
		*total += d
		trace += fmt.Sprintf(" %s %.0f/s", name, legPods/d.Seconds())
	}
	for range legs / 2 {
		leg("raw", rawLeg, &rawTime)
		leg("svc", svcLeg, &svcTime)
		leg("svc", svcLeg, &svcTime)
		leg("raw", rawLeg, &rawTime)
	}

	total := legs * legPods
	rawRate := float64(total) / rawTime.Seconds()
	svcRate := float64(total) / svcTime.Seconds()
	report := fmt.Sprintf("create throughput, %d pods each in legs of %d, concurrency %d, rate limit %.0f QPS burst %d:\n"+
		"  raw client-go loop: %7.1f pods/s (%v)\n  PodService:         %7.1f pods/s (%v)\n  ratio:              %7.2f (target >= 0.80)\n  legs:%s",
		total, legPods, workers, qps, burst, rawRate, rawTime.Round(time.Millisecond), svcRate, svcTime.Round(time.Millisecond), svcRate/rawRate, trace)
	fmt.Println(report)
	t.Log(report)
	if n := len(executorPods(t, s.kube, ns, "spark-bench")); n != total {
		t.Fatalf("%d PodService pods exist, want %d", n, total)
	}
	if svcRate < 0.8*rawRate {
		t.Errorf("PodService reached %.2f of the raw create rate; the target is 0.8", svcRate/rawRate)
	}
}
