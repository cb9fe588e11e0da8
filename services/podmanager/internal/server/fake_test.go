package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/podmanager/internal/fairqueue"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// fakePods is an in-memory pod API with the API server's semantics for what
// the service relies on: AlreadyExists, NotFound, the UID precondition on
// delete and the UID immutability on patch. Errors can be injected per call.
type fakePods struct {
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	uids    int
	calls   atomic.Int64
	creates atomic.Int64
	// fail, if set, may return an error for a verb and pod name instead of
	// acting.
	fail func(verb, name string) error
	// lostReply, if set, may return an error for a pod after creating it:
	// the create was applied and its reply lost.
	lostReply func(name string) error
}

func newFakePods(pods ...*corev1.Pod) *fakePods {
	f := &fakePods{pods: map[string]*corev1.Pod{}}
	for _, p := range pods {
		f.add(p)
	}
	return f
}

func (f *fakePods) add(p *corev1.Pod) *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = p.DeepCopy()
	f.uids++
	p.UID = types.UID(fmt.Sprintf("uid-%d", f.uids))
	f.pods[p.Namespace+"/"+p.Name] = p
	return p
}

func (f *fakePods) get(ns, name string) *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pods[ns+"/"+name]; p != nil {
		return p.DeepCopy()
	}
	return nil
}

func (f *fakePods) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pods)
}

func (f *fakePods) injected(verb, name string) error {
	f.calls.Add(1)
	if f.fail != nil {
		return f.fail(verb, name)
	}
	return nil
}

func (f *fakePods) Create(ctx context.Context, ns string, pod *corev1.Pod) (*corev1.Pod, error) {
	if err := f.injected("create", pod.Name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.creates.Add(1)
	f.mu.Lock()
	_, exists := f.pods[ns+"/"+pod.Name]
	f.mu.Unlock()
	if exists {
		return nil, apierrors.NewAlreadyExists(podsResource, pod.Name)
	}
	created := f.add(pod)
	if f.lostReply != nil {
		if err := f.lostReply(pod.Name); err != nil {
			return nil, err
		}
	}
	return created, nil
}

func (f *fakePods) Get(_ context.Context, ns, name string) (*corev1.Pod, error) {
	if err := f.injected("get", name); err != nil {
		return nil, err
	}
	if p := f.get(ns, name); p != nil {
		return p, nil
	}
	return nil, apierrors.NewNotFound(podsResource, name)
}

func (f *fakePods) List(_ context.Context, ns string, sel labels.Selector) ([]corev1.Pod, error) {
	if err := f.injected("list", ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []corev1.Pod
	for _, p := range f.pods {
		if p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, *p.DeepCopy())
		}
	}
	return out, nil
}

func (f *fakePods) Delete(_ context.Context, ns, name string, uid types.UID, grace *int64) error {
	if err := f.injected("delete", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[ns+"/"+name]
	switch {
	case p == nil:
		return apierrors.NewNotFound(podsResource, name)
	case p.UID != uid:
		return apierrors.NewConflict(podsResource, name, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", uid, p.UID))
	}
	delete(f.pods, ns+"/"+name)
	return nil
}

func (f *fakePods) Patch(_ context.Context, ns, name string, pt types.PatchType, data []byte) (*corev1.Pod, error) {
	if err := f.injected("patch", name); err != nil {
		return nil, err
	}
	if pt != types.MergePatchType {
		return nil, apierrors.NewBadRequest("unexpected patch type " + string(pt))
	}
	var patch labelPatch
	if err := json.Unmarshal(data, &patch); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[ns+"/"+name]
	if p == nil {
		return nil, apierrors.NewNotFound(podsResource, name)
	}
	if patch.Metadata.UID != "" && patch.Metadata.UID != p.UID {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "uid"), patch.Metadata.UID, "field is immutable")})
	}
	for k, v := range patch.Metadata.Labels {
		p.Labels[k] = v
	}
	for k, v := range patch.Metadata.Annotations {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
	return p.DeepCopy(), nil
}

// newTestClient starts the service with pods on an in-memory gRPC
// connection and returns the real generated client.
func newTestClient(t *testing.T, pods *fakePods) (sparkpodsv1.PodServiceClient, *Server) {
	t.Helper()
	queue, err := fairqueue.New(fairqueue.Config{Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Pods: pods, Queue: queue, UnknownOutcomeRetry: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	queueDone := make(chan error, 1)
	go func() { queueDone <- queue.Run(ctx) }()

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	sparkpodsv1.RegisterPodServiceServer(gs, srv)
	serveDone := make(chan error, 1)
	go func() { serveDone <- gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		gs.GracefulStop()
		if err := <-serveDone; err != nil {
			t.Errorf("serve: %v", err)
		}
		cancel()
		if err := <-queueDone; err != nil {
			t.Errorf("queue: %v", err)
		}
	})
	return sparkpodsv1.NewPodServiceClient(conn), srv
}

// executorPod is a pod as the service would have made it.
func executorPod(ns, name, app string, id int64, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
		"spark-app-selector": app, "spark-role": "executor", "spark-exec-id": fmt.Sprint(id), "spark-exec-resourceprofile-id": "0",
	}}}
	for _, m := range mutate {
		m(p)
	}
	return p
}
