// Package accesscheck tests the transport security and access control of
// the four sparkpods services end to end: each runs as its own process with
// mutual TLS and a certificate from a local CA, against a real
// kube-apiserver that answers their TokenReviews and SubjectAccessReviews;
// callers are ServiceAccounts with real tokens and RBAC grants, operators'
// certificates, and callers with no credentials at all.
package accesscheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sparkpods/sparkpods/clients/transport"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// stack is the four services over mutual TLS, and the CA that signed them.
type stack struct {
	t    *testing.T
	cp   *controlplane.ControlPlane
	kube kubernetes.Interface
	pki  *servicepki.Authority
	dir  string

	snapshot, podmanager, allocator, lifecycle *launch.Service
}

func startStack(t *testing.T, namespaces ...string) *stack {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	dir := filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pki, err := servicepki.Open(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, cp: cp, kube: cp.Client(), pki: pki, dir: dir}
	kube := "--kubeconfig=" + cp.KubeconfigPath()
	ns := "--namespaces=" + strings.Join(namespaces, ",")
	s.snapshot = s.start("snapshot", kube, ns)
	s.podmanager = s.start("podmanager", kube)
	s.allocator = s.start("allocator", kube, "--leader-elect=false",
		"--snapshot-addr="+s.snapshot.Addr(), "--podmanager-addr="+s.podmanager.Addr())
	s.lifecycle = s.start("lifecycle", kube, ns,
		"--snapshot-addr="+s.snapshot.Addr(), "--podmanager-addr="+s.podmanager.Addr(), "--allocator-addr="+s.allocator.Addr())
	t.Logf("service logs in %s", dir)
	return s
}

func (s *stack) start(name string, args ...string) *launch.Service {
	s.t.Helper()
	p, err := launch.Start(context.Background(), launch.Config{Name: name, LogDir: s.dir, PKI: s.pki, Args: args, ReadyTimeout: 2 * time.Minute})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(p.Stop)
	return p
}

// caller is one client identity's connections to the four services.
type caller struct {
	snapshot   sparkpodsv1.SnapshotServiceClient
	scheduler  sparkpodsv1.SchedulerServiceClient
	lifecycle  sparkpodsv1.LifecycleServiceClient
	podmanager sparkpodsv1.PodServiceClient
}

func (s *stack) caller(opts transport.ClientOptions) caller {
	s.t.Helper()
	dial, err := opts.DialOptions()
	if err != nil {
		s.t.Fatal(err)
	}
	return s.callerWith(dial...)
}

func (s *stack) callerWith(dial ...grpc.DialOption) caller {
	s.t.Helper()
	conn := func(p *launch.Service) *grpc.ClientConn {
		c, err := grpc.NewClient(p.Addr(), dial...)
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return caller{
		snapshot:   sparkpodsv1.NewSnapshotServiceClient(conn(s.snapshot)),
		scheduler:  sparkpodsv1.NewSchedulerServiceClient(conn(s.allocator)),
		lifecycle:  sparkpodsv1.NewLifecycleServiceClient(conn(s.lifecycle)),
		podmanager: sparkpodsv1.NewPodServiceClient(conn(s.podmanager)),
	}
}

// serviceAccount creates a ServiceAccount in ns, binds it in each of
// grants' namespaces to a Role with the verbs on sparkpods.io/applications,
// and writes a token for it (TokenRequest) to a file: what a scheduler
// client running in a pod has in its projected token volume.
func (s *stack) serviceAccount(ns, name string, verbs []string, grantNamespaces ...string) string {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	for _, grantNS := range grantNamespaces {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"sparkpods.io"}, Resources: []string{"applications"}, Verbs: verbs}},
		}
		if _, err := s.kube.RbacV1().Roles(grantNS).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			s.t.Fatal(err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		}
		if _, err := s.kube.RbacV1().RoleBindings(grantNS).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
	tr, err := s.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.dir, ns+"-"+name+".token")
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

// tokenCaller calls with a bearer token over TLS, without a client
// certificate.
func (s *stack) tokenCaller(tokenFile string) caller {
	return s.caller(transport.ClientOptions{Files: transport.Files{CAFile: s.pki.CAFile()}, TokenFile: tokenFile})
}

// certCaller calls with a client certificate for identity in groups.
func (s *stack) certCaller(identity string, groups ...string) caller {
	s.t.Helper()
	opts, err := s.pki.ClientOptions(identity, groups...)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.caller(opts)
}

func driverPod(t *testing.T, kube kubernetes.Interface, ns, appID string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: appID + "-driver", Labels: map[string]string{"spark-app-selector": appID, "spark-role": "driver"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}}},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func register(ns, appID string) *sparkpodsv1.RegisterApplicationRequest {
	return &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver",
		SparkConf: map[string]string{
			"spark.app.id":                            appID,
			"spark.app.name":                          appID,
			"spark.kubernetes.namespace":              ns,
			"spark.kubernetes.container.image":        "spark:4.2.0",
			"spark.kubernetes.executor.podNamePrefix": appID,
			"spark.kubernetes.driver.pod.name":        appID + "-driver",
			"spark.driver.host":                       appID + "-driver-svc." + ns + ".svc",
			"spark.executor.instances":                "0",
		},
	}
}

// wantRefused checks that err has code and that its message says each of
// the fragments.
func wantRefused(t *testing.T, what string, err error, code codes.Code, fragments ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want %s", what, err, code)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(status.Convert(err).Message(), f) {
			t.Errorf("%s: message %q does not say %q", what, status.Convert(err).Message(), f)
		}
	}
}

// firstMessage opens a server stream and returns the error of its first
// Recv: a refused stream fails there.
func firstMessage[T any](open func(context.Context) (grpc.ServerStreamingClient[T], error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// executorPods counts the application's executor pods.
func executorPods(t *testing.T, kube kubernetes.Interface, ns, appID string) int {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "spark-role=executor,spark-app-selector=" + appID})
	if err != nil {
		t.Fatal(err)
	}
	return len(pods.Items)
}

// executorEnv is the value of the environment variable name in the first
// executor pod of the application.
func executorEnv(t *testing.T, kube kubernetes.Interface, ns, appID, name string) string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "spark-role=executor,spark-app-selector=" + appID})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("executor pods of %s: %v (%d)", appID, err, len(pods.Items))
	}
	for _, c := range pods.Items[0].Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deniedCount reads sparkpods_access_denied_total for method and code from
// a service's /metrics.
func deniedCount(t *testing.T, p *launch.Service, method string, code codes.Code) string {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf(`sparkpods_access_denied_total{grpc_code=%q,grpc_method=%q} `, code.String(), method)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "0"
}

// TestSchedulerClientActsOnlyInItsNamespace: a scheduler client running as
// a ServiceAccount, its token checked with TokenReview, may register and
// drive an application in the namespace its Role grants, and the services
// (over mutual TLS, as trusted callers of each other) create its executors;
// the same token reaching for another namespace's application is refused
// by every service, with PermissionDenied naming the namespace, and the
// refusals are counted.
func TestSchedulerClientActsOnlyInItsNamespace(t *testing.T) {
	mine, theirs := controlplanetest.Namespace(t), controlplanetest.Namespace(t)
	s := startStack(t, mine, theirs)
	ctx := context.Background()
	token := s.serviceAccount(mine, "spark-scheduler", []string{"get", "list", "watch", "create", "update", "delete"}, mine)
	client := s.tokenCaller(token)
	user := fmt.Sprintf(`user "system:serviceaccount:%s:spark-scheduler"`, mine)

	// The happy path: register (with Spark's RPC authentication on), scale
	// to 3, the executors exist.
	driverPod(t, s.kube, mine, "spark-mine")
	reg := register(mine, "spark-mine")
	reg.SparkConf["spark.authenticate"] = "true"
	reg.SparkConf["spark.authenticate.secret"] = "s3cr3t-of-spark-mine"
	if _, err := client.scheduler.RegisterApplication(ctx, reg); err != nil {
		t.Fatalf("RegisterApplication in the granted namespace: %v", err)
	}
	if _, err := client.scheduler.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
		Namespace: mine, AppId: "spark-mine", Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 0, TotalExecutors: 3}},
	}); err != nil {
		t.Fatalf("SetExecutorTargets in the granted namespace: %v", err)
	}
	eventually(t, time.Minute, "3 executor pods created through the pod manager", func() bool { return executorPods(t, s.kube, mine, "spark-mine") == 3 })
	eventually(t, time.Minute, "the snapshot to show 3 executors", func() bool {
		resp, err := client.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: mine, AppId: "spark-mine"})
		return err == nil && len(resp.GetSnapshot().GetExecutors()) == 3
	})
	if _, err := client.lifecycle.ListExecutorEvents(ctx, &sparkpodsv1.ListExecutorEventsRequest{Namespace: mine, AppId: "spark-mine"}); err != nil {
		t.Errorf("ListExecutorEvents in the granted namespace: %v", err)
	}
	// The executors got the secret (the allocator hands the pod manager the
	// whole configuration); callers are shown it redacted, as Spark's UI
	// shows it.
	got, err := client.scheduler.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: mine, AppId: "spark-mine"})
	if err != nil {
		t.Fatalf("GetApplication in the granted namespace: %v", err)
	}
	if v := got.GetApplication().GetSparkConf()["spark.authenticate.secret"]; v != "*********(redacted)" {
		t.Errorf("GetApplication shows spark.authenticate.secret as %q, want it redacted", v)
	}
	if v := got.GetApplication().GetSparkConf()["spark.app.id"]; v != "spark-mine" {
		t.Errorf("GetApplication shows spark.app.id as %q", v)
	}
	if env := executorEnv(t, s.kube, mine, "spark-mine", "_SPARK_AUTH_SECRET"); env != "s3cr3t-of-spark-mine" {
		t.Errorf("executor pod has _SPARK_AUTH_SECRET %q, want the registered secret", env)
	}

	// Another namespace's application: refused everywhere, nothing written.
	driverPod(t, s.kube, theirs, "spark-theirs")
	_, err = client.scheduler.RegisterApplication(ctx, register(theirs, "spark-theirs"))
	wantRefused(t, "RegisterApplication in another namespace", err, codes.PermissionDenied,
		user, `may not create sparkpods.io/applications "spark-theirs" in namespace "`+theirs+`"`)
	_, err = client.scheduler.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: theirs, AppId: "spark-theirs"})
	wantRefused(t, "GetApplication in another namespace", err, codes.PermissionDenied, user, `namespace "`+theirs+`"`)
	_, err = client.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: theirs, AppId: "spark-theirs"})
	wantRefused(t, "GetSnapshot in another namespace", err, codes.PermissionDenied, user, `may not get`, `namespace "`+theirs+`"`)
	err = firstMessage(func(ctx context.Context) (grpc.ServerStreamingClient[sparkpodsv1.WatchSnapshotsResponse], error) {
		return client.snapshot.WatchSnapshots(ctx, &sparkpodsv1.WatchSnapshotsRequest{Namespace: theirs})
	})
	wantRefused(t, "WatchSnapshots of another namespace", err, codes.PermissionDenied, user, `may not watch`, `namespace "`+theirs+`"`)
	err = firstMessage(func(ctx context.Context) (grpc.ServerStreamingClient[sparkpodsv1.WatchExecutorEventsResponse], error) {
		return client.lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: theirs, AppId: "spark-theirs"})
	})
	wantRefused(t, "WatchExecutorEvents in another namespace", err, codes.PermissionDenied, user, `namespace "`+theirs+`"`)
	// Every namespace at once is another namespace too.
	_, err = client.snapshot.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{})
	wantRefused(t, "ListApplications of every namespace", err, codes.PermissionDenied, user, "every namespace")
	if n := executorPods(t, s.kube, theirs, "spark-theirs"); n != 0 {
		t.Errorf("%d executor pods in the other namespace", n)
	}
	if got := deniedCount(t, s.allocator, sparkpodsv1.SchedulerService_RegisterApplication_FullMethodName, codes.PermissionDenied); got != "1" {
		t.Errorf("allocator counted %s RegisterApplication refusals, want 1", got)
	}
	if got := deniedCount(t, s.snapshot, sparkpodsv1.SnapshotService_WatchSnapshots_FullMethodName, codes.PermissionDenied); got != "1" {
		t.Errorf("snapshot counted %s WatchSnapshots refusals, want 1", got)
	}
}

// TestReadOnlyInspection: a Role with only get, list and watch lets a
// caller inspect snapshots and events, and nothing more.
func TestReadOnlyInspection(t *testing.T) {
	ns := controlplanetest.Namespace(t)
	s := startStack(t, ns)
	ctx := context.Background()
	viewer := s.tokenCaller(s.serviceAccount(ns, "spark-viewer", []string{"get", "list", "watch"}, ns))
	if _, err := viewer.snapshot.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{Namespace: ns}); err != nil {
		t.Errorf("ListApplications with list granted: %v", err)
	}
	if _, err := viewer.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: "spark-seen"}); err != nil {
		t.Errorf("GetSnapshot with get granted: %v", err)
	}
	driverPod(t, s.kube, ns, "spark-seen")
	_, err := viewer.scheduler.RegisterApplication(ctx, register(ns, "spark-seen"))
	wantRefused(t, "RegisterApplication with read-only access", err, codes.PermissionDenied, `may not create sparkpods.io/applications "spark-seen"`)
	_, err = viewer.lifecycle.AcknowledgeExecutorEvents(ctx, &sparkpodsv1.AcknowledgeExecutorEventsRequest{Namespace: ns, AppId: "spark-seen", Sequence: 1})
	wantRefused(t, "AcknowledgeExecutorEvents with read-only access", err, codes.PermissionDenied, "may not update")
}

// TestUnauthenticatedCallersAreRefused: no credentials, a token the API
// server does not know, a certificate from another CA, or plaintext:
// refused by every service before any handler runs; health stays public.
func TestUnauthenticatedCallersAreRefused(t *testing.T) {
	ns := controlplanetest.Namespace(t)
	s := startStack(t, ns)
	ctx := context.Background()

	bogus := filepath.Join(s.dir, "bogus.token")
	if err := os.WriteFile(bogus, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger, err := servicepki.Open(filepath.Join(s.dir, "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, err := stranger.Issue(launch.Identity("allocator"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		caller caller
		says   string
	}{
		{"no credentials", s.caller(transport.ClientOptions{Files: transport.Files{CAFile: s.pki.CAFile()}}), "no credentials: present a client certificate"},
		{"an unknown token", s.tokenCaller(bogus), "rejected by the Kubernetes API server's TokenReview"},
	} {
		calls := map[string]error{}
		_, calls["GetSnapshot"] = c.caller.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: "spark-x"})
		_, calls["RegisterApplication"] = c.caller.scheduler.RegisterApplication(ctx, register(ns, "spark-x"))
		_, calls["ListExecutorEvents"] = c.caller.lifecycle.ListExecutorEvents(ctx, &sparkpodsv1.ListExecutorEventsRequest{Namespace: ns, AppId: "spark-x"})
		_, calls["CreateExecutorPods"] = c.caller.podmanager.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{Namespace: ns, AppId: "spark-x", RequestId: "r"})
		calls["WatchExecutorEvents"] = firstMessage(func(ctx context.Context) (grpc.ServerStreamingClient[sparkpodsv1.WatchExecutorEventsResponse], error) {
			return c.caller.lifecycle.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{Namespace: ns, AppId: "spark-x"})
		})
		for method, err := range calls {
			wantRefused(t, c.name+": "+method, err, codes.Unauthenticated, c.says)
		}
	}
	if got := deniedCount(t, s.podmanager, sparkpodsv1.PodService_CreateExecutorPods_FullMethodName, codes.Unauthenticated); got != "2" {
		t.Errorf("podmanager counted %s unauthenticated CreateExecutorPods, want 2", got)
	}

	// A certificate another CA signed, even with a service's name, and
	// plaintext, do not get through the TLS handshake.
	otherCA := s.caller(transport.ClientOptions{Files: transport.Files{CAFile: s.pki.CAFile(), CertFile: strangerCert.CertFile, KeyFile: strangerCert.KeyFile}})
	_, err = otherCA.podmanager.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{Namespace: ns, AppId: "spark-x", RequestId: "r"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a certificate from another CA: got %v, want the handshake to fail (Unavailable)", err)
	}
	plain := s.callerWith(grpc.WithTransportCredentials(insecure.NewCredentials()))
	_, err = plain.snapshot.GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: "spark-x"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext: got %v, want Unavailable", err)
	}
	if executorPods(t, s.kube, ns, "spark-x") != 0 {
		t.Error("executor pods were created by refused calls")
	}
}

// TestOnlyTheAllocatorAndLifecycleWritePods: PodService refuses every
// identity but the allocator's and the lifecycle service's, however much
// RBAC it has: a scheduler client's token, an operator's certificate whose
// group may do anything on applications, and the snapshot service's own
// certificate.
func TestOnlyTheAllocatorAndLifecycleWritePods(t *testing.T) {
	ns := controlplanetest.Namespace(t)
	s := startStack(t, ns)
	ctx := context.Background()
	if err := launch.GrantOperators(ctx, s.kube); err != nil {
		t.Fatal(err)
	}
	driverPod(t, s.kube, ns, "spark-pods")
	scheduler := s.serviceAccount(ns, "spark-scheduler", []string{"get", "list", "watch", "create", "update", "delete"}, ns)
	for _, c := range []struct {
		name, user string
		caller     caller
	}{
		{"a scheduler client's token", "system:serviceaccount:" + ns + ":spark-scheduler", s.tokenCaller(scheduler)},
		{"an operator's certificate", "access-operator", s.certCaller("access-operator", launch.OperatorGroup)},
		{"the snapshot service's certificate", launch.Identity("snapshot"), s.certCaller(launch.Identity("snapshot"))},
	} {
		calls := map[string]error{}
		_, calls["CreateExecutorPods"] = c.caller.podmanager.CreateExecutorPods(ctx, &sparkpodsv1.CreateExecutorPodsRequest{
			Namespace: ns, AppId: "spark-pods", DriverPodName: "spark-pods-driver", RequestId: "r-" + c.user,
			SparkConf: register(ns, "spark-pods").SparkConf, Pods: []*sparkpodsv1.ExecutorPodRequest{{ExecutorId: 1}},
		})
		_, calls["DeleteExecutorPods"] = c.caller.podmanager.DeleteExecutorPods(ctx, &sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: "spark-pods", ExecutorIds: []int64{1}})
		_, calls["LabelExecutorPods"] = c.caller.podmanager.LabelExecutorPods(ctx, &sparkpodsv1.LabelExecutorPodsRequest{Namespace: ns, AppId: "spark-pods", ExecutorIds: []int64{1}, Labels: map[string]string{"x": "y"}})
		for method, err := range calls {
			wantRefused(t, c.name+": "+method, err, codes.PermissionDenied,
				fmt.Sprintf("user %q is refused", c.user), "accepts only the sparkpods services sparkpods-allocator, sparkpods-lifecycle")
		}
	}
	if n := executorPods(t, s.kube, ns, "spark-pods"); n != 0 {
		t.Errorf("%d executor pods created by refused callers", n)
	}
	if got := deniedCount(t, s.podmanager, sparkpodsv1.PodService_CreateExecutorPods_FullMethodName, codes.PermissionDenied); got != "3" {
		t.Errorf("podmanager counted %s refused CreateExecutorPods, want 3", got)
	}

	// The operator's group may drive applications through the allocator,
	// which writes the pods as a trusted caller.
	operator := s.certCaller("access-operator", launch.OperatorGroup)
	if _, err := operator.scheduler.RegisterApplication(ctx, register(ns, "spark-pods")); err != nil {
		t.Fatalf("RegisterApplication as an operator: %v", err)
	}
	if _, err := operator.scheduler.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
		Namespace: ns, AppId: "spark-pods", Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 0, TotalExecutors: 2}},
	}); err != nil {
		t.Fatalf("SetExecutorTargets as an operator: %v", err)
	}
	eventually(t, time.Minute, "2 executor pods", func() bool { return executorPods(t, s.kube, ns, "spark-pods") == 2 })
}
