// Package faults is the fault suite: the four sparkpods services, with mutual TLS, on the
// real local control plane, through crashes of each service, a kube-apiserver restart, an
// etcd compaction, a pod quota, a rate-limited pod manager and a client that opens many
// streams and reads none. Every case ends with the same invariants: the application's
// executor pod count equals its target, no executor id was ever given to two pods, and
// every executor that ended produced exactly one event after the client's de-duplication.
//
// `go test` runs the quick variant (small targets, one seed), which fits in CI; with
// SPARKPODS_FAULTS=full it runs the full one (1,000 executors, several seeds). Each trial
// logs one greppable line:
//
//	FAULT case=kill-allocator seed=3 trials=1 target=1000 converged=12.3s pods=1000 ... reused=0 duplicates=0 lost=0
package faults

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/promtext"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// FullEnv names the environment variable that selects the full variant: SPARKPODS_FAULTS=full.
const FullEnv = "SPARKPODS_FAULTS"

// size is how big the cases are.
type size struct {
	variant string   // quick or full
	target  int      // executors of a scale-up
	seeds   []uint64 // trials per service kill
	exits   int      // exits injected per trial
	timeout time.Duration
}

func suiteSize() size {
	if os.Getenv(FullEnv) == "full" {
		return size{variant: "full", target: 1000, seeds: []uint64{1, 2, 3}, exits: 50, timeout: 5 * time.Minute}
	}
	return size{variant: "quick", target: 200, seeds: []uint64{1}, exits: 10, timeout: 2 * time.Minute}
}

// dedicatedControlPlane starts a control plane of the test's own, for the cases that kill
// its kube-apiserver or compact its etcd: the package's shared one must stay whole for the
// other tests. Its logs sit under the shared control plane's directory, kept when a test
// fails.
func dedicatedControlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	shared := controlplanetest.ControlPlane(t)
	began := time.Now()
	cp, err := controlplane.Start(context.Background(), controlplane.Options{Dir: shared.Dir() + "/" + strings.ReplaceAll(t.Name(), "/", "_")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("dedicated control plane ready in %v (logs in %s)", time.Since(began).Round(time.Millisecond), cp.Dir())
	return cp
}

// scrape reads a service's /metrics.
func scrape(t *testing.T, addr string) promtext.Metrics {
	t.Helper()
	m, err := scrapeQuiet(addr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// scrapeQuiet is scrape for goroutines other than the test's.
func scrapeQuiet(addr string) (promtext.Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return promtext.Scrape(ctx, addr)
}
