package access_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/access"
)

const (
	allocator = "sparkpods-allocator"
	// alice is the ServiceAccount the fake TokenReview knows as aliceToken;
	// the fake SubjectAccessReview lets her act in namespace "a" only.
	alice      = "system:serviceaccount:a:spark-driver"
	aliceToken = "alice-token"
)

// fakeTokens is a TokenReview that knows a fixed set of tokens.
type fakeTokens struct {
	mu        sync.Mutex
	users     map[string]authenticationv1.UserInfo
	err       error
	calls     int
	audiences []string
}

func (f *fakeTokens) Create(_ context.Context, review *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.audiences = review.Spec.Audiences
	if f.err != nil {
		return nil, f.err
	}
	out := review.DeepCopy()
	if u, ok := f.users[review.Spec.Token]; ok {
		out.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u}
	} else {
		out.Status = authenticationv1.TokenReviewStatus{Error: "token has expired"}
	}
	return out, nil
}

func (f *fakeTokens) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeTokens) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeAccess is a SubjectAccessReview that allows alice in namespace "a".
type fakeAccess struct {
	mu    sync.Mutex
	err   error
	calls int
	last  authorizationv1.SubjectAccessReviewSpec
}

func (f *fakeAccess) Create(_ context.Context, review *authorizationv1.SubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.last = review.Spec
	if f.err != nil {
		return nil, f.err
	}
	out := review.DeepCopy()
	ra := review.Spec.ResourceAttributes
	if review.Spec.User == alice && ra != nil && ra.Namespace == "a" && ra.Group == access.APIGroup && ra.Resource == access.Resource {
		out.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "RBAC: allowed by RoleBinding spark/a"}
	} else {
		out.Status = authorizationv1.SubjectAccessReviewStatus{Reason: "no RBAC policy matched"}
	}
	return out, nil
}

func (f *fakeAccess) snapshot() (int, authorizationv1.SubjectAccessReviewSpec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.last
}

func (f *fakeAccess) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// The services: real generated stubs with a method or two answering OK,
// recording who called them.

type podServer struct {
	sparkpodsv1.UnimplementedPodServiceServer
}

func (podServer) CreateExecutorPods(context.Context, *sparkpodsv1.CreateExecutorPodsRequest) (*sparkpodsv1.CreateExecutorPodsResponse, error) {
	return &sparkpodsv1.CreateExecutorPodsResponse{}, nil
}

type schedulerServer struct {
	sparkpodsv1.UnimplementedSchedulerServiceServer
	mu   sync.Mutex
	last access.Identity
}

func (s *schedulerServer) SetExecutorTargets(ctx context.Context, _ *sparkpodsv1.SetExecutorTargetsRequest) (*sparkpodsv1.SetExecutorTargetsResponse, error) {
	id, ok := access.IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no identity in the handler's context")
	}
	s.mu.Lock()
	s.last = id
	s.mu.Unlock()
	return &sparkpodsv1.SetExecutorTargetsResponse{}, nil
}

func (s *schedulerServer) lastIdentity() access.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

type lifecycleServer struct {
	sparkpodsv1.UnimplementedLifecycleServiceServer
	mu      sync.Mutex
	watches int
}

func (s *lifecycleServer) WatchExecutorEvents(req *sparkpodsv1.WatchExecutorEventsRequest, stream grpc.ServerStreamingServer[sparkpodsv1.WatchExecutorEventsResponse]) error {
	s.mu.Lock()
	s.watches++
	s.mu.Unlock()
	return stream.Send(&sparkpodsv1.WatchExecutorEventsResponse{Message: &sparkpodsv1.WatchExecutorEventsResponse_Event{
		Event: &sparkpodsv1.ExecutorEvent{Sequence: 1, Namespace: req.GetNamespace(), AppId: req.GetAppId()},
	}})
}

func (s *lifecycleServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watches
}

// env is a TLS server with the guard's interceptors, the CA that issued its
// certificate, and the fakes and clock behind the guard.
type env struct {
	addr      string
	ca        *servicepki.Authority
	clock     *clocktesting.FakeClock
	tokens    *fakeTokens
	access    *fakeAccess
	registry  *prometheus.Registry
	guard     *access.Guard
	scheduler *schedulerServer
	lifecycle *lifecycleServer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ca, err := servicepki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverFiles, err := ca.Issue("sparkpods-podmanager")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := serverFiles.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		ca:    ca,
		clock: clocktesting.NewFakeClock(time.Now()),
		tokens: &fakeTokens{users: map[string]authenticationv1.UserInfo{
			aliceToken: {Username: alice, UID: "uid-1", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:a"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"driver-0"}}},
		}},
		access:    &fakeAccess{},
		registry:  prometheus.NewRegistry(),
		scheduler: &schedulerServer{},
		lifecycle: &lifecycleServer{},
	}
	e.guard, err = access.New(access.Config{
		Service:        "test",
		Rules:          access.Rules,
		Trusted:        []string{allocator, "sparkpods-lifecycle"},
		Tokens:         e.tokens,
		TokenAudiences: []string{"sparkpods"},
		Access:         e.access,
		Registry:       e.registry,
		Logger:         slog.New(slog.DiscardHandler),
		Clock:          e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.ChainUnaryInterceptor(e.guard.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(e.guard.StreamInterceptor()),
	)
	sparkpodsv1.RegisterPodServiceServer(srv, podServer{})
	sparkpodsv1.RegisterSchedulerServiceServer(srv, e.scheduler)
	sparkpodsv1.RegisterLifecycleServiceServer(srv, e.lifecycle)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return e
}

// caller says how a client authenticates.
type caller struct {
	// cert, when set, is the common name of a client certificate the CA
	// issues, with groups as its organizations.
	cert   string
	groups []string
	// token, when set, is sent as a bearer token.
	token string
}

func (e *env) dial(t *testing.T, c caller) *grpc.ClientConn {
	t.Helper()
	files := transport.Files{CAFile: e.ca.CAFile()}
	if c.cert != "" {
		var err error
		if files, err = e.ca.Issue(c.cert, c.groups...); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := files.ClientCredentials("")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(&transport.BearerToken{Token: c.token}))
	}
	conn, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// denied reads sparkpods_access_denied_total for method and code.
func (e *env) denied(t *testing.T, method string, code codes.Code) float64 {
	t.Helper()
	families, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "sparkpods_access_denied_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == method && labels["grpc_code"] == code.String() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func checkStatus(t *testing.T, err error, want codes.Code, wantMsg ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want {
		t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), want)
	}
	for _, m := range wantMsg {
		if !strings.Contains(st.Message(), m) {
			t.Fatalf("message %q does not mention %q", st.Message(), m)
		}
	}
}

func createPods(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := sparkpodsv1.NewPodServiceClient(conn).CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{
		Namespace: "a", AppId: "app-1", Pods: []*sparkpodsv1.ExecutorPodRequest{{ExecutorId: 1}},
	})
	return err
}

func setTargets(namespace string) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := sparkpodsv1.NewSchedulerServiceClient(conn).SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
			Namespace: namespace, AppId: "app-1", Targets: []*sparkpodsv1.ExecutorTarget{{TotalExecutors: 3}},
		})
		return err
	}
}

func healthCheck(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestGuardUnary(t *testing.T) {
	e := newEnv(t)
	create := sparkpodsv1.PodService_CreateExecutorPods_FullMethodName
	targets := sparkpodsv1.SchedulerService_SetExecutorTargets_FullMethodName
	tests := []struct {
		name    string
		caller  caller
		method  string
		call    func(context.Context, *grpc.ClientConn) error
		want    codes.Code
		wantMsg []string
	}{
		{name: "no credentials", method: create, call: createPods, want: codes.Unauthenticated,
			wantMsg: []string{"no credentials", "client certificate", "authorization: Bearer"}},
		{name: "health is public", method: healthpb.Health_Check_FullMethodName, call: healthCheck, want: codes.OK},
		{name: "trusted service certificate on PodService", caller: caller{cert: allocator}, method: create, call: createPods, want: codes.OK},
		{name: "other certificate on PodService", caller: caller{cert: "operator", groups: []string{"ops"}}, method: create, call: createPods,
			want: codes.PermissionDenied, wantMsg: []string{`"operator"`, allocator}},
		{name: "token user on PodService", caller: caller{token: aliceToken}, method: create, call: createPods,
			want: codes.PermissionDenied, wantMsg: []string{alice, allocator}},
		{name: "token user in an allowed namespace", caller: caller{token: aliceToken}, method: targets, call: setTargets("a"), want: codes.OK},
		{name: "token user in another namespace", caller: caller{token: aliceToken}, method: targets, call: setTargets("b"),
			want: codes.PermissionDenied, wantMsg: []string{alice, `may not update sparkpods.io/applications "app-1"`, `in namespace "b"`, "no RBAC policy matched"}},
		{name: "token user naming no namespace", caller: caller{token: aliceToken}, method: targets, call: setTargets(""),
			want: codes.PermissionDenied, wantMsg: []string{"in every namespace"}},
		{name: "untrusted certificate checked by RBAC", caller: caller{cert: "operator"}, method: targets, call: setTargets("a"),
			want: codes.PermissionDenied, wantMsg: []string{`user "operator" may not update`}},
		{name: "trusted service needs no RBAC", caller: caller{cert: allocator}, method: targets, call: setTargets("b"), want: codes.OK},
		{name: "invalid token", caller: caller{token: "stolen"}, method: targets, call: setTargets("a"),
			want: codes.Unauthenticated, wantMsg: []string{"TokenReview", "token has expired"}},
		{name: "certificate wins over a token", caller: caller{cert: allocator, token: "stolen"}, method: create, call: createPods, want: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.denied(t, tt.method, tt.want)
			err := tt.call(callCtx(t), e.dial(t, tt.caller))
			checkStatus(t, err, tt.want, tt.wantMsg...)
			wantDelta := 0.0
			if tt.want == codes.Unauthenticated || tt.want == codes.PermissionDenied {
				wantDelta = 1
			}
			if got := e.denied(t, tt.method, tt.want) - before; got != wantDelta {
				t.Fatalf("sparkpods_access_denied_total{grpc_method=%q,grpc_code=%q} rose by %v, want %v", tt.method, tt.want, got, wantDelta)
			}
		})
	}
}

func TestGuardPassesIdentityAndReviewAttributes(t *testing.T) {
	e := newEnv(t)
	conn := e.dial(t, caller{token: aliceToken})
	if err := setTargets("a")(callCtx(t), conn); err != nil {
		t.Fatal(err)
	}
	id := e.scheduler.lastIdentity()
	if id.Name != alice || id.UID != "uid-1" || id.Method != "token" || len(id.Groups) != 2 {
		t.Fatalf("handler saw identity %+v", id)
	}
	if got := e.tokens.audiences; len(got) != 1 || got[0] != "sparkpods" {
		t.Fatalf("TokenReview audiences %q, want [sparkpods]", got)
	}
	_, spec := e.access.snapshot()
	ra := spec.ResourceAttributes
	if spec.User != alice || spec.UID != "uid-1" || len(spec.Groups) != 2 || len(spec.Extra["authentication.kubernetes.io/pod-name"]) != 1 {
		t.Fatalf("SubjectAccessReview subject %+v", spec)
	}
	if ra == nil || *ra != (authorizationv1.ResourceAttributes{Group: "sparkpods.io", Resource: "applications", Verb: "update", Namespace: "a", Name: "app-1"}) {
		t.Fatalf("SubjectAccessReview resource %+v", ra)
	}

	certConn := e.dial(t, caller{cert: allocator, groups: []string{"sparkpods"}})
	if err := setTargets("a")(callCtx(t), certConn); err != nil {
		t.Fatal(err)
	}
	if id := e.scheduler.lastIdentity(); id.Name != allocator || id.Method != "certificate" || len(id.Groups) != 1 || id.Groups[0] != "sparkpods" {
		t.Fatalf("handler saw identity %+v", id)
	}
}

func TestGuardCachesReviews(t *testing.T) {
	e := newEnv(t)
	conn := e.dial(t, caller{token: aliceToken})
	call := func(namespace string, want codes.Code) {
		t.Helper()
		checkStatus(t, setTargets(namespace)(callCtx(t), conn), want)
	}
	expect := func(step string, wantTokens, wantAccess int) {
		t.Helper()
		calls, _ := e.access.snapshot()
		if got := e.tokens.count(); got != wantTokens || calls != wantAccess {
			t.Fatalf("%s: %d TokenReviews and %d SubjectAccessReviews, want %d and %d", step, got, calls, wantTokens, wantAccess)
		}
	}

	call("a", codes.OK)
	expect("first call", 1, 1)
	call("a", codes.OK)
	expect("same call again", 1, 1)
	call("b", codes.PermissionDenied)
	expect("another namespace", 1, 2)
	call("b", codes.PermissionDenied)
	expect("the refusal again", 1, 2)

	// Refusals expire sooner than grants.
	e.clock.Step(11 * time.Second)
	call("b", codes.PermissionDenied)
	call("a", codes.OK)
	expect("after the refusal expired", 1, 3)

	e.clock.Step(time.Minute)
	call("a", codes.OK)
	expect("after the grant expired", 1, 4)

	e.clock.Step(2 * time.Minute)
	call("a", codes.OK)
	expect("after the token review expired", 2, 5)

	// A rejected token is cached as well, briefly.
	bad := e.dial(t, caller{token: "stolen"})
	for range 2 {
		checkStatus(t, setTargets("a")(callCtx(t), bad), codes.Unauthenticated)
	}
	expect("rejected token twice", 3, 5)
	e.clock.Step(11 * time.Second)
	checkStatus(t, setTargets("a")(callCtx(t), bad), codes.Unauthenticated)
	expect("rejected token after expiry", 4, 5)
}

func TestGuardReviewFailures(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(e *env)
		token string
	}{
		{name: "TokenReview fails", fail: func(e *env) { e.tokens.setErr(errors.New("connection refused")) }, token: aliceToken},
		{name: "SubjectAccessReview fails", fail: func(e *env) { e.access.setErr(errors.New("connection refused")) }, token: aliceToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.fail(e)
			conn := e.dial(t, caller{token: tt.token})
			err := setTargets("a")(callCtx(t), conn)
			checkStatus(t, err, codes.Unavailable, "retry")
			if strings.Contains(status.Convert(err).Message(), "connection refused") {
				t.Fatalf("message %q leaks the Kubernetes client error", status.Convert(err).Message())
			}
			// A failure is not an answer: it is not cached.
			e.tokens.setErr(nil)
			e.access.setErr(nil)
			if err := setTargets("a")(callCtx(t), conn); err != nil {
				t.Fatalf("after the API server recovered: %v", err)
			}
		})
	}
}

func TestGuardStream(t *testing.T) {
	e := newEnv(t)
	method := sparkpodsv1.LifecycleService_WatchExecutorEvents_FullMethodName
	tests := []struct {
		name      string
		caller    caller
		namespace string
		want      codes.Code
		wantMsg   []string
	}{
		{name: "no credentials", namespace: "a", want: codes.Unauthenticated, wantMsg: []string{"no credentials"}},
		{name: "token user in an allowed namespace", caller: caller{token: aliceToken}, namespace: "a", want: codes.OK},
		{name: "token user in another namespace", caller: caller{token: aliceToken}, namespace: "b",
			want: codes.PermissionDenied, wantMsg: []string{"may not watch", `in namespace "b"`}},
		{name: "trusted service", caller: caller{cert: "sparkpods-lifecycle"}, namespace: "b", want: codes.OK},
		{name: "invalid token", caller: caller{token: "stolen"}, namespace: "a", want: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			watchesBefore := e.lifecycle.count()
			deniedBefore := e.denied(t, method, tt.want)
			stream, err := sparkpodsv1.NewLifecycleServiceClient(e.dial(t, tt.caller)).WatchExecutorEvents(callCtx(t),
				&sparkpodsv1.WatchExecutorEventsRequest{Namespace: tt.namespace, AppId: "app-1"})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			checkStatus(t, err, tt.want, tt.wantMsg...)
			watches := e.lifecycle.count() - watchesBefore
			if tt.want != codes.OK {
				if watches != 0 {
					t.Fatal("the handler ran for a refused stream")
				}
				if got := e.denied(t, method, tt.want) - deniedBefore; got != 1 {
					t.Fatalf("denial counter rose by %v, want 1", got)
				}
				return
			}
			if watches != 1 || resp.GetEvent().GetNamespace() != tt.namespace {
				t.Fatalf("handler ran %d times, sent %v", watches, resp)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("end of stream: %v, want EOF", err)
			}
		})
	}
}

// fakeStream is a grpc.ServerStream whose RecvMsg yields one request as
// many times as it is asked.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	req  *sparkpodsv1.WatchExecutorEventsRequest
	sent int
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) RecvMsg(m any) error {
	m.(*sparkpodsv1.WatchExecutorEventsRequest).Namespace = s.req.Namespace
	m.(*sparkpodsv1.WatchExecutorEventsRequest).AppId = s.req.AppId
	return nil
}

func (s *fakeStream) SendMsg(any) error {
	s.sent++
	return nil
}

// TestGuardStreamRefusalSticks reads again after a refused first message,
// as a bidirectional handler looping on RecvMsg might: the refusal holds.
func TestGuardStreamRefusalSticks(t *testing.T) {
	e := newEnv(t)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+aliceToken))
	ss := &fakeStream{ctx: ctx, req: &sparkpodsv1.WatchExecutorEventsRequest{Namespace: "b", AppId: "app-1"}}
	info := &grpc.StreamServerInfo{FullMethod: sparkpodsv1.LifecycleService_WatchExecutorEvents_FullMethodName, IsServerStream: true}
	err := e.guard.StreamInterceptor()(nil, ss, info, func(_ any, stream grpc.ServerStream) error {
		for range 3 {
			var req sparkpodsv1.WatchExecutorEventsRequest
			checkStatus(t, stream.RecvMsg(&req), codes.PermissionDenied)
		}
		checkStatus(t, stream.SendMsg(&sparkpodsv1.WatchExecutorEventsResponse{}), codes.PermissionDenied)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ss.sent != 0 {
		t.Fatalf("%d messages sent on a refused stream", ss.sent)
	}
}

func TestGuardMethodWithoutRule(t *testing.T) {
	e := newEnv(t)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+aliceToken))
	ran := false
	_, err := e.guard.UnaryInterceptor()(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: "a"},
		&grpc.UnaryServerInfo{FullMethod: "/sparkpods.v1.SchedulerService/NewMethod"},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	checkStatus(t, err, codes.PermissionDenied, "no access rule")
	if ran {
		t.Fatal("the handler of a method without a rule ran")
	}
}

func TestGuardWithoutReviewers(t *testing.T) {
	g, err := access.New(access.Config{Service: "test", Rules: access.Rules, Trusted: []string{allocator}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+aliceToken))
	_, err = g.UnaryInterceptor()(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: "a"},
		&grpc.UnaryServerInfo{FullMethod: sparkpodsv1.SchedulerService_SetExecutorTargets_FullMethodName},
		func(context.Context, any) (any, error) { return nil, nil })
	checkStatus(t, err, codes.Unauthenticated, "client certificates only")
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  access.Config
	}{
		{name: "no service", cfg: access.Config{Rules: access.Rules}},
		{name: "no rules", cfg: access.Config{Service: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := access.New(tt.cfg); err == nil {
				t.Fatal("New accepted an incomplete Config")
			}
		})
	}
	reg := prometheus.NewRegistry()
	cfg := access.Config{Service: "x", Rules: access.Rules, Registry: reg}
	if _, err := access.New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := access.New(cfg); err == nil {
		t.Fatal("a second Guard registered its counter on the same registry")
	}
}
