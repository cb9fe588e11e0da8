package faults

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// TestPodQuota makes pod creations fail as a full namespace does: a ResourceQuota on pods
// lets half the target in, and the API server refuses the rest with 403 Forbidden. The
// allocator must back off rather than ask again in a loop (its creation attempts, counted
// by the pod manager, stay within what its exponential backoff allows), and once the quota
// is lifted the application must reach its target.
func TestPodQuota(t *testing.T) {
	sz := suiteSize()
	s := startStack(t, controlplanetest.ControlPlane(t), nil)
	const batch = 20
	a := s.newApp(t, "quota", map[string]string{"spark.kubernetes.allocation.batch.size": strconv.Itoa(batch)})
	allowed := sz.target / 2
	window := 15 * time.Second
	if sz.variant == "full" {
		window = 60 * time.Second
	}
	ctx := context.Background()
	quotas := s.cp.Client().CoreV1().ResourceQuotas(s.ns)
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		// The driver pod counts too.
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(allowed+1), resource.DecimalSI)}},
	}
	if _, err := quotas.Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The quota admission plugin refuses every pod until the controller has counted the
	// namespace's usage.
	eventually(t, time.Minute, func() string {
		q, err := quotas.Get(ctx, quota.Name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if _, ok := q.Status.Used[corev1.ResourcePods]; !ok {
			return "quota usage not counted yet"
		}
		return ""
	})
	a.setTarget(sz.target)
	a.waitCreated(allowed, sz.timeout)
	pm := s.proc(podmanagerSvc)
	forbidden := func() float64 {
		return scrape(t, pm.MetricsAddr()).Sum("sparkpods_podmanager_kube_request_duration_seconds_count", `verb="create"`, `result="Forbidden"`)
	}
	before := forbidden()
	if err := pause(ctx, window); err != nil {
		t.Fatal(err)
	}
	attempts := forbidden() - before
	// The first failed request is retried at the next round, then the wait doubles from
	// one batch delay (1s): in window, at most 2 + log2(window/1s) + 1 requests of a batch.
	limit := float64(batch) * (3 + math.Ceil(math.Log2(window.Seconds())))
	if attempts > limit {
		t.Errorf("%.0f refused pod creations in %v: a hot loop (backoff allows at most %.0f)", attempts, window, limit)
	}
	if attempts == 0 {
		t.Errorf("no pod creation was refused in %v: the quota did not bite", window)
	}
	lifted := time.Now()
	if err := quotas.Delete(ctx, quota.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a.finish("quota", 0, lifted, sz.timeout, fmt.Sprintf("quota_pods=%d window=%.0fs refused_creates=%.0f refused_limit=%.0f", allowed, window.Seconds(), attempts, limit))
}

// TestRateLimitedPodManager runs a scale-up, with exits, through a pod manager whose client
// side rate limit towards the API server is very low, as an overloaded API server would be:
// the calls queue up and take long, and the allocator's requests must neither time out
// into duplicates nor pile up retries. The pod manager's create calls must equal the pods
// created (no retry storm).
func TestRateLimitedPodManager(t *testing.T) {
	sz := suiteSize()
	target, qps := 60, 5
	if sz.variant == "full" {
		target, qps = 300, 5
	}
	s := startStack(t, controlplanetest.ControlPlane(t), map[string][]string{
		podmanagerSvc: {"--kube-qps=" + strconv.Itoa(qps), "--kube-burst=" + strconv.Itoa(qps)},
	})
	rng := rand.New(rand.NewPCG(1, nameHash("rate-limit")))
	a := s.newApp(t, "ratelimit", nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.startExits(ctx, rng, max(3, sz.exits/2), time.Second)
	began := time.Now()
	a.setTarget(target)
	pm := s.proc(podmanagerSvc)
	a.figures = func() []string {
		m := scrape(t, pm.MetricsAddr())
		creates := m.Sum("sparkpods_podmanager_kube_request_duration_seconds_count", `verb="create"`)
		if int(creates) != s.pods.created(a.id) {
			t.Errorf("the pod manager made %.0f create calls for %d executor pods", creates, s.pods.created(a.id))
		}
		return []string{fmt.Sprintf("qps=%d create_calls=%.0f replays=%.0f rate_limit_wait=%.1fs", qps, creates,
			m.Sum("sparkpods_podmanager_request_id_replays_total"), m.Sum("sparkpods_podmanager_rate_limit_wait_seconds_sum"))}
	}
	a.finish("rate-limit", 1, began, sz.timeout+time.Duration(target/qps)*2*time.Second)
}
