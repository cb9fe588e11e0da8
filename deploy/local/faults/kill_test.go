package faults

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// TestKillDuringScaleUp kills each service with SIGKILL at a random point of a scale-up,
// with executors exiting all along, and starts it again after a random pause. Every trial
// is a new application on one set of services.
func TestKillDuringScaleUp(t *testing.T) {
	sz := suiteSize()
	s := startStack(t, controlplanetest.ControlPlane(t), nil)
	for _, name := range serviceNames {
		for _, seed := range sz.seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, nameHash(name)))
				a, ctx := s.scaleUp(t, fmt.Sprintf("kill-%s-%d", name, seed), rng, sz)
				killed := time.Now()
				created := s.pods.created(a.id)
				s.kill(name)
				down := time.Duration(rng.IntN(2000)) * time.Millisecond
				if err := pause(ctx, down); err != nil {
					t.Fatal(err)
				}
				s.start(t, name)
				a.finish("kill-"+name, seed, killed, sz.timeout,
					fmt.Sprintf("killed_at=%d down=%.1fs", created, down.Seconds()))
			})
		}
	}
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}
