package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
	"github.com/sparkpods/sparkpods/deploy/local/launch"
	"github.com/sparkpods/sparkpods/deploy/local/servicepki"
)

// faultInjectorName is the identity the clients' tests call PodService with, to make kwok
// fail an executor: PodService accepts only the identities the pod manager trusts, so the
// tests run it trusting this one besides the allocator and the lifecycle service.
const faultInjectorName = "sparkpods-test-fault-injector"

// deployed is the four services running as their ServiceAccounts, with mutual TLS.
type deployed struct {
	cp *controlplane.ControlPlane
	// ns is the namespace of the ServiceAccounts.
	ns                                         string
	snapshot, podmanager, allocator, lifecycle *launch.Service
	logDir                                     string
	// pki is the CA of the services' certificates and of the clients'.
	pki *servicepki.Authority
}

// startAsServiceAccounts applies the base and runs each service binary with a kubeconfig
// holding a token of its own ServiceAccount (TokenRequest), wired as the Deployments wire
// them. The services therefore have exactly the permissions the base grants them.
func startAsServiceAccounts(t *testing.T) *deployed {
	t.Helper()
	applied(t)
	// As in the Deployments: snapshot watches all namespaces; the allocator's Lease is in its
	// own namespace (POD_NAMESPACE, from the downward API there).
	return startServices(t, namespace, nil)
}

// startServices runs each service binary with a token of its ServiceAccount in ns and a
// certificate from a local CA for mutual TLS, adding flags[name] to the service's arguments,
// and gives the allocator POD_NAMESPACE=ns. The pod manager also trusts faultInjectorName,
// and the operators' group (launch.OperatorGroup) may do everything on applications.
func startServices(t *testing.T, ns string, flags map[string][]string) *deployed {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	d := &deployed{cp: cp, ns: ns, logDir: filepath.Join(cp.Dir(), "services", strings.ReplaceAll(t.Name(), "/", "_"))}
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("service logs in %s", d.logDir)
	pki, err := servicepki.Open(filepath.Join(d.logDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	d.pki = pki
	if err := launch.GrantOperators(context.Background(), cp.Client()); err != nil {
		t.Fatal(err)
	}
	start := func(name string, env []string, args ...string) *launch.Service {
		t.Helper()
		args = append(append([]string{"--kubeconfig=" + d.kubeconfigFor(t, name)}, args...), flags[name]...)
		s, err := launch.Start(context.Background(), launch.Config{
			Name: name, LogDir: d.logDir, Args: args, Env: env, ReadyTimeout: 2 * time.Minute, PKI: pki,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	d.snapshot = start("snapshot", nil, "--api-polling-interval=2s")
	d.podmanager = start("podmanager", nil,
		"--trusted-callers="+strings.Join([]string{launch.Identity("allocator"), launch.Identity("lifecycle"), faultInjectorName}, ","))
	d.allocator = start("allocator", []string{"POD_NAMESPACE=" + ns},
		"--snapshot-addr="+d.snapshot.Addr(), "--podmanager-addr="+d.podmanager.Addr())
	d.lifecycle = start("lifecycle", nil,
		"--snapshot-addr="+d.snapshot.Addr(), "--podmanager-addr="+d.podmanager.Addr(),
		"--allocator-addr="+d.allocator.Addr())
	return d
}

// kubeconfigFor writes a kubeconfig that authenticates as the service's ServiceAccount.
func (d *deployed) kubeconfigFor(t *testing.T, name string) string {
	t.Helper()
	tok, err := d.cp.Client().CoreV1().ServiceAccounts(d.ns).CreateToken(context.Background(),
		"sparkpods-"+name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for sparkpods-%s: %v", name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: d.cp.Server(), CertificateAuthorityData: d.cp.RESTConfig().CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(d.logDir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// createDriver creates a driver pod for appID in ns, as spark-submit would.
func (d *deployed) createDriver(t *testing.T, ns, appID string) string {
	t.Helper()
	pod, err := d.cp.Client().CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   appID + "-driver",
			Labels: map[string]string{"spark-app-selector": appID, "spark-role": "driver"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create driver pod: %v", err)
	}
	return pod.Name
}

// clientEnv is what the client tests in other languages read: the services' addresses, one
// application to manage, the CA bundle, an operator's client certificate (in
// launch.OperatorGroup), a certificate the pod manager trusts (faultInjectorName), and the
// token of a ServiceAccount allowed everything on applications in ns, and nowhere else.
func (d *deployed) clientEnv(t *testing.T, ns, appID string) []string {
	t.Helper()
	operator, err := d.pki.Issue(appID+"-operator", launch.OperatorGroup)
	if err != nil {
		t.Fatal(err)
	}
	faultInjector, err := d.pki.Issue(faultInjectorName)
	if err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(),
		"SPARKPODS_ALLOCATOR="+d.allocator.Addr(),
		"SPARKPODS_LIFECYCLE="+d.lifecycle.Addr(),
		"SPARKPODS_PODMANAGER="+d.podmanager.Addr(),
		"SPARKPODS_NAMESPACE="+ns,
		"SPARKPODS_APP_ID="+appID,
		"SPARKPODS_DRIVER_POD="+d.createDriver(t, ns, appID),
		"SPARKPODS_TLS_CA_FILE="+d.pki.CAFile(),
		"SPARKPODS_TLS_CERT_FILE="+operator.CertFile,
		"SPARKPODS_TLS_KEY_FILE="+operator.KeyFile,
		"SPARKPODS_PODMANAGER_TLS_CERT_FILE="+faultInjector.CertFile,
		"SPARKPODS_PODMANAGER_TLS_KEY_FILE="+faultInjector.KeyFile,
		"SPARKPODS_TOKEN_FILE="+d.driverToken(t, ns, appID),
	)
}

// driverToken creates a ServiceAccount for appID's driver in ns, with a Role and RoleBinding
// allowing everything on sparkpods.io applications in ns, and writes a token of it to a
// file, whose path it returns: how a Spark driver pod authenticates to the services.
func (d *deployed) driverToken(t *testing.T, ns, appID string) string {
	t.Helper()
	ctx, kube, name := context.Background(), d.cp.Client(), appID+"-driver"
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
	if _, err := kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"sparkpods.io"}, Resources: []string{"applications"},
			Verbs: []string{"get", "list", "watch", "create", "update", "delete"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Role %s/%s: %v", ns, name, err)
	}
	if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding %s/%s: %v", ns, name, err)
	}
	tok, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	path := filepath.Join(d.logDir, name+".token")
	if err := os.WriteFile(path, []byte(tok.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// forbidden matches an authorization failure in a service's log.
var forbidden = regexp.MustCompile(`(?i)forbidden|cannot (get|list|watch|create|update|patch|delete) resource`)

// checkLogs fails the test if any service was refused something by the API server: the
// clients' tests passing is not enough, a service may have retried around a refusal.
func (d *deployed) checkLogs(t *testing.T) {
	t.Helper()
	for _, s := range []*launch.Service{d.snapshot, d.podmanager, d.allocator, d.lifecycle} {
		b, err := os.ReadFile(s.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, line := range strings.Split(string(b), "\n") {
			if forbidden.MatchString(line) {
				if refused++; refused <= 3 {
					t.Errorf("%s was refused by the API server: %s", filepath.Base(s.LogPath()), line)
				}
			}
		}
		if refused > 3 {
			t.Errorf("%s: %d refusals in all", filepath.Base(s.LogPath()), refused)
		}
	}
}

// run runs a client test command and logs its output.
func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	began := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s (%v):\n%s", strings.Join(cmd.Args, " "), time.Since(began).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Args[0], err)
	}
}

// TestClientsAgainstServiceAccounts runs the services with exactly the base's RBAC and, against
// them over mutual TLS, each client's own tests: register an application, scale it, see an
// executor fail with its exit code through the event stream (and resume it), unregister; and
// be refused without a client identity, and authenticate with a ServiceAccount token. The
// services exercise every permission they have on the way (TokenReview and
// SubjectAccessReview included).
func TestClientsAgainstServiceAccounts(t *testing.T) {
	d := startAsServiceAccounts(t)
	ns := controlplanetest.Namespace(t)

	t.Run("python", func(t *testing.T) {
		if out, err := exec.Command("../clients/python/generate.sh").CombinedOutput(); err != nil {
			t.Fatalf("clients/python/generate.sh: %v\n%s(`make apt-deps` installs protoc, the plugin and python3-grpcio)", err, out)
		}
		cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
		cmd.Dir = "../clients/python"
		cmd.Env = d.clientEnv(t, ns, "spark-python")
		run(t, cmd)
	})

	t.Run("java", func(t *testing.T) {
		if _, err := os.Stat("../clients/java/pom.xml"); err != nil {
			t.Skip("no Java client")
		}
		if _, err := exec.LookPath("mvn"); err != nil {
			t.Fatalf("%v (`make apt-deps` installs Maven, grpc-java and protobuf-java)", err)
		}
		cmd := exec.Command("mvn", "-o", "-B", "-ntp", "-Dstyle.color=never", "-Dmaven.repo.local=/usr/share/maven-repo",
			"-DforkCount=0", "test")
		cmd.Dir = "../clients/java"
		cmd.Env = append(d.clientEnv(t, ns, "spark-java"), "MAVEN_OPTS=-Djava.library.path="+tcnativeDir(t))
		run(t, cmd)
	})

	d.checkLogs(t)
	if t.Failed() {
		fmt.Printf("service logs in %s\n", d.logDir)
	}
}

// debianTcnative is Debian's build of netty-tcnative's JNI library (package
// libnetty-tcnative-jni, installed by `make apt-deps`).
const debianTcnative = "/usr/lib/x86_64-linux-gnu/jni/libnetty-tcnative.so"

// tcnativeDir returns a folder holding netty-tcnative's JNI library under
// the name Netty loads, libnetty_tcnative.so: OpenSSL is how grpc-java
// negotiates ALPN (which gRPC over TLS requires) with Debian's Netty, whose
// JDK provider has no ALPN. The library reads its own file name at load
// time, so it is copied, not linked.
func tcnativeDir(t *testing.T) string {
	t.Helper()
	lib, err := os.ReadFile(debianTcnative)
	if err != nil {
		t.Fatalf("%v (`make apt-deps` installs libnetty-tcnative-jni)", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libnetty_tcnative.so"), lib, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
