package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// benchEnv turns on TestTimeTo1000Executors, which takes minutes.
const benchEnv = "SPARKPODS_BENCH"

// TestTimeTo1000Executors measures how long 1,000 executors take to be
// created and running (kwok) on one control plane: through the allocator
// with its defaults, through the allocator with Spark's pacing, and with a
// plain parallel client-go loop creating similar pods (the API server's own
// limit). The batch delay is Spark's default, 1s.
func TestTimeTo1000Executors(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("set " + benchEnv + "=1 to measure time to 1,000 executors")
	}
	const n = 1000
	cp := controlplanetest.ControlPlane(t)

	// Each measurement ends by deleting its pods: the fake nodes hold about
	// 2,000 executors.
	viaAllocator := func(appID string, conf map[string]string) time.Duration {
		var took time.Duration
		t.Run(appID, func(t *testing.T) {
			ns := controlplanetest.Namespace(t)
			s := startServices(t, ns)
			register(t, s, ns, appID, conf)
			began := time.Now()
			setTargets(t, s.client, ns, appID, map[int32]int32{0: n})
			settled(t, s, ns, appID, map[string]int{"0": n, "1": 0}, 10*time.Minute)
			took = time.Since(began)
			if _, err := s.client.UnregisterApplication(context.Background(),
				&sparkpodsv1.UnregisterApplicationRequest{Namespace: ns, AppId: appID}); err != nil {
				t.Fatalf("UnregisterApplication: %v", err)
			}
			eventually(t, 5*time.Minute, func() string {
				if n := len(executorPods(t, cp.Client(), ns, appID)); n > 0 {
					return fmt.Sprintf("%d executor pods left", n)
				}
				return ""
			})
		})
		return took
	}
	defaults := viaAllocator("spark-defaults", map[string]string{"spark.kubernetes.allocation.batch.delay": "1s"})
	sparkPacing := viaAllocator("spark-pacing", map[string]string{"spark.kubernetes.allocation.batch.delay": "1s",
		"sparkpods.allocation.roundOnSnapshot": "false"})
	if t.Failed() {
		return
	}

	rawNS := controlplanetest.Namespace(t)
	rc := cp.RESTConfig()
	rc.QPS, rc.Burst = -1, 0
	raw, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var g errgroup.Group
	g.SetLimit(32)
	for id := 1; id <= n; id++ {
		g.Go(func() error {
			_, err := raw.CoreV1().Pods(rawNS).Create(context.Background(), rawExecutorPod(id), metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("raw create: %v", err)
	}
	eventually(t, 10*time.Minute, func() string {
		c := count(executorPods(t, cp.Client(), rawNS, "raw"))
		if c.running["0"] != n {
			return fmt.Sprintf("%d of %d raw pods running", c.running["0"], n)
		}
		return ""
	})
	rawLimit := time.Since(began)
	t.Logf("time to %d executors created and running: allocator defaults (batch 20, a round on every snapshot) %v (%.2f× raw); "+
		"Spark's pacing (batch 20 per 1s round) %v (%.2f× raw); raw parallel client-go loop %v",
		n, defaults.Round(time.Millisecond), defaults.Seconds()/rawLimit.Seconds(),
		sparkPacing.Round(time.Millisecond), sparkPacing.Seconds()/rawLimit.Seconds(), rawLimit.Round(time.Millisecond))
}

// rawExecutorPod is an executor-like pod of the application "raw".
func rawExecutorPod(id int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "raw-exec-" + strconv.Itoa(id),
			Labels: map[string]string{"spark-app-selector": "raw", "spark-role": "executor",
				"spark-exec-id": strconv.Itoa(id), "spark-exec-resourceprofile-id": "0"},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "spark-kubernetes-executor", Image: "spark:4.2.0", Args: []string{"executor"},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1408Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1408Mi")},
				},
			}},
		},
	}
}
