// Package allocatortest provides fakes of the allocator's dependencies for
// its unit tests: an in-memory PodService served over bufconn, so that the
// allocator talks to it through the real generated client, and a snapshot
// source the test feeds by hand. Only tests import it.
package allocatortest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Pod is an executor pod of the fake PodService.
type Pod struct {
	ID     int64
	RP     int32
	State  sparkpodsv1.ExecutorState
	Labels map[string]string
}

// PodService is an in-memory PodService for one application at a time. New
// pods are pending. It is safe for concurrent use.
type PodService struct {
	sparkpodsv1.UnimplementedPodServiceServer

	mu      sync.Mutex
	pods    map[int64]*Pod
	creates [][]int64
	deletes []*sparkpodsv1.DeleteExecutorPodsRequest
	labels  []*sparkpodsv1.LabelExecutorPodsRequest
	// beforeCreate, when set, runs before each create; a non-nil error
	// fails the call.
	beforeCreate func(*sparkpodsv1.CreateExecutorPodsRequest) error
	// failIDs are executor ids whose creation fails.
	failIDs map[int64]bool
}

// StartPodService serves a PodService over bufconn until the test ends and
// returns it with a client connected to it.
func StartPodService(t testing.TB) (*PodService, sparkpodsv1.PodServiceClient) {
	t.Helper()
	ps := &PodService{pods: map[int64]*Pod{}, failIDs: map[int64]bool{}}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sparkpodsv1.RegisterPodServiceServer(srv, ps)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ps, sparkpodsv1.NewPodServiceClient(conn)
}

// BeforeCreate sets a hook run before every create.
func (p *PodService) BeforeCreate(fn func(*sparkpodsv1.CreateExecutorPodsRequest) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.beforeCreate = fn
}

// FailCreation makes the creation of the given executor ids fail.
func (p *PodService) FailCreation(ids ...int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		p.failIDs[id] = true
	}
}

// CreateExecutorPods creates pending pods.
func (p *PodService) CreateExecutorPods(_ context.Context, req *sparkpodsv1.CreateExecutorPodsRequest) (*sparkpodsv1.CreateExecutorPodsResponse, error) {
	p.mu.Lock()
	hook := p.beforeCreate
	p.mu.Unlock()
	if hook != nil {
		if err := hook(req); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &sparkpodsv1.CreateExecutorPodsResponse{}
	var ids []int64
	for _, r := range req.GetPods() {
		id := r.GetExecutorId()
		ids = append(ids, id)
		res := &sparkpodsv1.ExecutorPodResult{ExecutorId: id, PodName: fmt.Sprintf("exec-%d", id)}
		switch {
		case p.failIDs[id]:
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_FAILED
			res.Code = 8 // RESOURCE_EXHAUSTED
			res.Message = "exceeded quota"
		case p.pods[id] != nil:
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_ALREADY_EXISTS
		default:
			p.pods[id] = &Pod{ID: id, RP: r.GetResourceProfileId(), State: sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING, Labels: map[string]string{}}
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_CREATED
		}
		resp.Results = append(resp.Results, res)
	}
	p.creates = append(p.creates, ids)
	return resp, nil
}

// DeleteExecutorPods removes pods, honouring the phase filter.
func (p *PodService) DeleteExecutorPods(_ context.Context, req *sparkpodsv1.DeleteExecutorPodsRequest) (*sparkpodsv1.DeleteExecutorPodsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deletes = append(p.deletes, req)
	ids := req.GetExecutorIds()
	if req.GetAllExecutors() {
		ids = slices.Sorted(maps.Keys(p.pods))
	}
	resp := &sparkpodsv1.DeleteExecutorPodsResponse{}
	for _, id := range ids {
		res := &sparkpodsv1.ExecutorPodResult{ExecutorId: id}
		pod := p.pods[id]
		switch {
		case pod == nil:
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND
		case req.GetPhase() == sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_PENDING && pod.State != sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING,
			req.GetPhase() == sparkpodsv1.PodPhaseFilter_POD_PHASE_FILTER_RUNNING && pod.State != sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING:
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_SKIPPED
		default:
			delete(p.pods, id)
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_DELETED
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// LabelExecutorPods sets labels on pods.
func (p *PodService) LabelExecutorPods(_ context.Context, req *sparkpodsv1.LabelExecutorPodsRequest) (*sparkpodsv1.LabelExecutorPodsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.labels = append(p.labels, req)
	resp := &sparkpodsv1.LabelExecutorPodsResponse{}
	for _, id := range req.GetExecutorIds() {
		res := &sparkpodsv1.ExecutorPodResult{ExecutorId: id, Outcome: sparkpodsv1.PodOutcome_POD_OUTCOME_NOT_FOUND}
		if pod := p.pods[id]; pod != nil {
			maps.Copy(pod.Labels, req.GetLabels())
			res.Outcome = sparkpodsv1.PodOutcome_POD_OUTCOME_LABELED
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// SetState sets the state of executors' pods.
func (p *PodService) SetState(state sparkpodsv1.ExecutorState, ids ...int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if pod := p.pods[id]; pod != nil {
			pod.State = state
		}
	}
}

// Pods returns a copy of the pods, by executor id.
func (p *PodService) Pods() map[int64]Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]Pod, len(p.pods))
	for id, pod := range p.pods {
		c := *pod
		c.Labels = maps.Clone(pod.Labels)
		out[id] = c
	}
	return out
}

// Creates returns the executor ids of each create call, in order.
func (p *PodService) Creates() [][]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.creates)
}

// Deletes returns the delete calls, in order.
func (p *PodService) Deletes() []*sparkpodsv1.DeleteExecutorPodsRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.deletes)
}

// Labels returns the label calls, in order.
func (p *PodService) Labels() []*sparkpodsv1.LabelExecutorPodsRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.labels)
}

// Snapshot returns the pods as the snapshot of application namespace/appID
// at revision rev.
func (p *PodService) Snapshot(namespace, appID string, rev int64) *sparkpodsv1.ExecutorSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &sparkpodsv1.ExecutorSnapshot{Namespace: namespace, AppId: appID, Revision: rev}
	for _, id := range slices.Sorted(maps.Keys(p.pods)) {
		pod := p.pods[id]
		s.Executors = append(s.Executors, &sparkpodsv1.Executor{
			ExecutorId: id, State: pod.State, ResourceProfileId: pod.RP, PodName: fmt.Sprintf("exec-%d", id),
		})
	}
	return s
}

// Source is a snapshot source that delivers what the test sends.
type Source struct {
	updates chan snapshotwatcher.Update
	done    chan struct{}
}

// NewSource returns a Source.
func NewSource() *Source {
	return &Source{updates: make(chan snapshotwatcher.Update), done: make(chan struct{})}
}

// Run delivers the updates sent with Send until ctx ends.
func (s *Source) Run(ctx context.Context, fn func(context.Context, snapshotwatcher.Update) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-s.updates:
			err := fn(ctx, u)
			s.done <- struct{}{}
			if err != nil {
				return err
			}
		}
	}
}

// Send delivers u and returns once it has been applied.
func (s *Source) Send(ctx context.Context, u snapshotwatcher.Update) error {
	select {
	case s.updates <- u:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
