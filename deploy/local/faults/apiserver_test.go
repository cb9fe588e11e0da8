package faults

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
)

// TestControlPlaneFaults runs scale-ups through faults of the control plane itself, on a
// control plane of its own: kube-apiserver killed with SIGKILL and started again after a
// pause, and etcd's history compacted away while it is down so that every watch that
// resumes must list again (410 Gone); the snapshot service's relist counter shows the
// expiry happened.
func TestControlPlaneFaults(t *testing.T) {
	sz := suiteSize()
	cp := dedicatedControlPlane(t)
	s := startStack(t, cp, nil)
	for _, seed := range sz.seeds {
		t.Run(fmt.Sprintf("apiserver-restart/seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, nameHash("apiserver-restart")))
			a, ctx := s.scaleUp(t, fmt.Sprintf("apiserver-%d", seed), rng, sz)
			before := s.snapshotSource(t)
			killed := time.Now()
			if err := cp.KillAPIServer(); err != nil {
				t.Fatal(err)
			}
			down := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
			if err := pause(ctx, down); err != nil {
				t.Fatal(err)
			}
			if err := cp.StartAPIServer(ctx); err != nil {
				t.Fatal(err)
			}
			a.figures = func() []string { return []string{s.snapshotSource(t).since(before)} }
			a.finish("apiserver-restart", seed, killed, sz.timeout, fmt.Sprintf("down=%.1fs", down.Seconds()))
		})
		t.Run(fmt.Sprintf("etcd-compaction/seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, nameHash("etcd-compaction")))
			a, ctx := s.scaleUp(t, fmt.Sprintf("compaction-%d", seed), rng, sz)
			before := s.snapshotSource(t)
			began := time.Now()
			// With kube-apiserver down, move etcd's revision past everything any watcher has
			// seen, and compact up to it: every watch then resumes from a revision etcd no
			// longer has, and the new kube-apiserver's watch cache begins after it, so each
			// one gets 410 Gone and must list again.
			if err := cp.KillAPIServer(); err != nil {
				t.Fatal(err)
			}
			if err := bumpEtcd(ctx, cp); err != nil {
				t.Fatal(err)
			}
			rev, err := cp.CompactEtcd(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := cp.StartAPIServer(ctx); err != nil {
				t.Fatal(err)
			}
			a.figures = func() []string {
				after := s.snapshotSource(t)
				if after.relists == before.relists {
					t.Errorf("the snapshot service did not list again after the compaction: its watch did not expire")
				}
				return []string{after.since(before)}
			}
			a.finish("etcd-compaction", seed, began, sz.timeout, fmt.Sprintf("compacted_revision=%d", rev))
		})
	}
}

// scaleUp registers an application, starts its exits and its scale-up to sz.target, and
// returns once a random share of its executors (5% to 95%) have a pod: the moment for a
// fault. The context ends with the test.
func (s *stack) scaleUp(t *testing.T, appID string, rng *rand.Rand, sz size) (*app, context.Context) {
	t.Helper()
	a := s.newApp(t, appID, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.startExits(ctx, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), sz.exits, 200*time.Millisecond)
	a.setTarget(sz.target)
	a.waitCreated(max(1, int(float64(sz.target)*(0.05+0.9*rng.Float64()))), sz.timeout)
	return a, ctx
}

// sourceCounts are the snapshot service's counts of its own API traffic.
type sourceCounts struct{ watches, relists, polls float64 }

func (s *stack) snapshotSource(t *testing.T) sourceCounts {
	t.Helper()
	m := scrape(t, s.proc(snapshotSvc).MetricsAddr())
	return sourceCounts{
		watches: m.Sum("sparkpods_snapshot_watch_starts_total"),
		relists: m.Sum("sparkpods_snapshot_relists_total"),
		polls:   m.Sum("sparkpods_snapshot_polls_total", `result="ok"`),
	}
}

// since formats what happened after before, for a FAULT line.
func (c sourceCounts) since(before sourceCounts) string {
	return fmt.Sprintf("snapshot_watches=%.0f snapshot_relists=%.0f snapshot_polls=%.0f",
		c.watches-before.watches, c.relists-before.relists, c.polls-before.polls)
}

// bumpEtcd writes one key straight into etcd, past kube-apiserver, through etcd's JSON
// gateway: it raises etcd's revision without any watcher seeing an event. The etcd client
// address is read from the etcd process's command line.
func bumpEtcd(ctx context.Context, cp *controlplane.ControlPlane) error {
	var endpoint string
	for _, p := range cp.Processes() {
		if p.Name != "etcd" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		if err != nil {
			return fmt.Errorf("etcd's command line: %w", err)
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if v, ok := strings.CutPrefix(arg, "--listen-client-urls="); ok {
				endpoint, _, _ = strings.Cut(v, ",")
			}
		}
	}
	if endpoint == "" {
		return errors.New("etcd's client address not found")
	}
	body := fmt.Sprintf(`{"key":%q,"value":%q}`,
		base64.StdEncoding.EncodeToString([]byte("/fault-suite/bump")), base64.StdEncoding.EncodeToString([]byte(time.Now().String())))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/v3/kv/put", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("etcd put: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd put: %s", resp.Status)
	}
	return nil
}
