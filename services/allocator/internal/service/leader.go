package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection configures the election among allocator replicas: one
// leads and runs the applications, the others stand by NOT_SERVING until the
// leader's Lease expires.
type LeaderElection struct {
	// Enabled turns the election on. Off, the process leads alone: never run
	// two such replicas, they would both create pods.
	Enabled bool
	// Namespace and Name locate the Lease. Required when Enabled.
	Namespace string
	Name      string
	// Identity names this replica in the Lease; empty picks hostname plus a
	// random suffix.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's election
	// timings; zero takes 15s, 10s and 2s.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// errLostLeadership ends a leader that could not renew its Lease: it exits,
// and a fresh process stands for election again.
var errLostLeadership = errors.New("allocator: lost the leader Lease; exiting so that a fresh process stands for election")

// elector runs the leader election and hands the leader's context to run.
type elector struct {
	le      *leaderelection.LeaderElector
	leading chan context.Context
}

func newElector(cfg LeaderElection, kube kubernetes.Interface, log *slog.Logger) (*elector, error) {
	if cfg.Namespace == "" || cfg.Name == "" {
		return nil, errors.New("allocator: leader election needs a Lease namespace and name")
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Identity = host + "_" + hex.EncodeToString(b)
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	e := &elector{leading: make(chan context.Context, 1)}
	log = log.With("identity", cfg.Identity, "lease", cfg.Namespace+"/"+cfg.Name)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		// Released only after the applications stopped (see run), so a
		// graceful stop hands over at once.
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading: starting the applications")
				e.leading <- ctx
			},
			OnStoppedLeading: func() { log.Info("not leading") },
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					log.Info("standing by; another replica leads", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("allocator: leader election: %w", err)
	}
	e.le = le
	return e, nil
}

// run stands for election until ctx ends and runs lead with the leader's
// context while this replica leads. The Lease is released only after lead
// has returned, so that a new leader never overlaps this one's rounds. It
// returns errLostLeadership if the Lease was lost, else lead's error.
func (e *elector) run(ctx context.Context, lead func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	electing, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElecting()
	led := make(chan struct{})
	g.Go(func() error {
		e.le.Run(electing)
		if ctx.Err() != nil {
			return nil
		}
		return errLostLeadership
	})
	g.Go(func() error {
		defer close(led)
		var leaderCtx context.Context
		select {
		case <-ctx.Done():
			return nil
		case leaderCtx = <-e.leading:
		}
		runCtx, cancel := context.WithCancel(leaderCtx)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		return lead(runCtx)
	})
	g.Go(func() error {
		<-ctx.Done()
		<-led
		stopElecting()
		return nil
	})
	return g.Wait()
}
