package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// register creates the driver pod and registers the application with a
// second resource profile.
func register(t *testing.T, s *services, ns, appID string, extra map[string]string) {
	t.Helper()
	createDriver(t, s.cp.Client(), ns, appID)
	if _, err := s.client.RegisterApplication(context.Background(), &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: sparkConf(ns, appID, extra),
		ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
	}); err != nil {
		t.Fatalf("RegisterApplication: %v", err)
	}
}

// settled waits until the allocator has nothing outstanding and the
// application has exactly want[rp] live executor pods per profile, all
// running.
func settled(t *testing.T, s *services, ns, appID string, want map[string]int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() string {
		resp, err := s.client.GetApplication(context.Background(), &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: appID})
		if err != nil {
			return err.Error()
		}
		for _, p := range resp.GetProfiles() {
			if p.GetOutstanding() != 0 || len(p.GetNewlyCreatedExecutorIds()) != 0 {
				return fmt.Sprintf("profile %d has requests outstanding", p.GetResourceProfileId())
			}
		}
		c := count(executorPods(t, s.cp.Client(), ns, appID))
		total := 0
		for rp, n := range want {
			total += n
			if c.byRP[rp] != n || c.running[rp] != n {
				return fmt.Sprintf("want %v running executor pods per profile, have %+v", want, c)
			}
		}
		if c.total != total {
			return fmt.Sprintf("want %d executor pods, have %+v", total, c)
		}
		return ""
	})
}

// kill kills n running executors of profile rp.
func kill(t *testing.T, s *services, ns, appID, rp string, n int) {
	t.Helper()
	var ids []int64
	for _, p := range executorPods(t, s.cp.Client(), ns, appID) {
		if p.DeletionTimestamp == nil && p.Labels["spark-exec-resourceprofile-id"] == rp && len(ids) < n {
			id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
			ids = append(ids, id)
		}
	}
	resp, err := s.client.KillExecutors(context.Background(), &sparkpodsv1.KillExecutorsRequest{Namespace: ns, AppId: appID, ExecutorIds: ids})
	if err != nil || len(resp.GetAcceptedExecutorIds()) != n {
		t.Fatalf("KillExecutors(%d of profile %s): %v, %v", n, rp, resp, err)
	}
}

// TestScaleUpAndDownTwoProfiles scales an application 0 → 200 → 50 → 0
// executors over two resource profiles the way Spark's dynamic allocation
// does: raise the targets; to scale down, lower them and kill the excess
// (running executors are never deleted as excess).
func TestScaleUpAndDownTwoProfiles(t *testing.T) {
	began := time.Now()
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	const appID = "spark-updown"
	register(t, s, ns, appID, map[string]string{"spark.kubernetes.dynamicAllocation.deleteGracePeriod": "200ms"})

	setTargets(t, s.client, ns, appID, map[int32]int32{0: 100, 1: 100})
	settled(t, s, ns, appID, map[string]int{"0": 100, "1": 100}, 90*time.Second)
	t.Logf("0 → 200 in %v", time.Since(began).Round(time.Millisecond))

	step := time.Now()
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 25, 1: 25})
	kill(t, s, ns, appID, "0", 75)
	kill(t, s, ns, appID, "1", 75)
	settled(t, s, ns, appID, map[string]int{"0": 25, "1": 25}, 60*time.Second)
	t.Logf("200 → 50 in %v", time.Since(step).Round(time.Millisecond))

	step = time.Now()
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 0, 1: 0})
	kill(t, s, ns, appID, "0", 25)
	kill(t, s, ns, appID, "1", 25)
	settled(t, s, ns, appID, map[string]int{"0": 0, "1": 0}, 60*time.Second)
	t.Logf("50 → 0 in %v; test took %v", time.Since(step).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestMaxPendingPodsCapsAndSplits keeps pods pending: with
// spark.kubernetes.allocation.maxPendingPods=6 and two profiles short of
// their targets, the slots are split 3 and 3, and no more pods come.
func TestMaxPendingPodsCapsAndSplits(t *testing.T) {
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	const appID = "spark-maxpending"
	register(t, s, ns, appID, map[string]string{
		"spark.kubernetes.executor.annotation.sparkpods.io/hold-pending": "true",
		"spark.kubernetes.allocation.maxPendingPods":                     "6",
	})
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 10, 1: 10})
	eventually(t, 30*time.Second, func() string {
		resp, err := s.client.GetApplication(context.Background(), &sparkpodsv1.GetApplicationRequest{Namespace: ns, AppId: appID})
		if err != nil {
			return err.Error()
		}
		for _, p := range resp.GetProfiles() {
			if p.GetPending() != 3 || !strings.Contains(p.GetBlockedReason(), "maxPendingPods (6) reached") {
				return fmt.Sprintf("profile %d: want 3 pending, blocked by maxPendingPods; have %v", p.GetResourceProfileId(), p)
			}
		}
		return ""
	})
	if c := count(executorPods(t, s.cp.Client(), ns, appID)); c.total != 6 || c.pending["0"] != 3 || c.pending["1"] != 3 {
		t.Fatalf("want 3+3 pending executor pods, have %+v", c)
	}
}

// TestUnseenPodsTimeOutAndAreReplaced creates pods the snapshot never shows
// (labelled spark-exec-inactive, which snapshots leave out): after the pod
// creation timeout the allocator deletes them and requests replacements
// with new ids.
func TestUnseenPodsTimeOutAndAreReplaced(t *testing.T) {
	ns := controlplanetest.Namespace(t)
	s := startServices(t, ns)
	const appID = "spark-unseen"
	register(t, s, ns, appID, map[string]string{
		"spark.kubernetes.executor.label.spark-exec-inactive": "true",
		// The creation timeout is max(5 × batch delay, this): 1s.
		"spark.kubernetes.allocation.executor.timeout": "1s",
	})
	setTargets(t, s.client, ns, appID, map[int32]int32{0: 2})
	eventually(t, 30*time.Second, func() string {
		live := map[int64]bool{}
		for _, p := range executorPods(t, s.cp.Client(), ns, appID) {
			if p.DeletionTimestamp == nil {
				id, _ := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
				live[id] = true
			}
		}
		if live[1] || live[2] || !live[3] || !live[4] {
			return fmt.Sprintf("want executors 1 and 2 timed out and deleted, 3 and 4 requested; live: %v", live)
		}
		return ""
	})
}
