package deploy

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// The overlays, and the namespace the single-namespace overlay deploys (and confines) the
// services to.
const (
	clusterWide     = "overlays/cluster-wide"
	singleNamespace = "overlays/single-namespace"
	singleNS        = "spark"
)

// namespaceFlags are the flags that confine each service to its own namespace in the
// single-namespace overlay; Kubernetes expands $(POD_NAMESPACE) from the downward API.
var namespaceFlags = map[string]string{
	"snapshot":  "--namespaces=$(POD_NAMESPACE)",
	"allocator": "--namespace=$(POD_NAMESPACE)",
	"lifecycle": "--namespaces=$(POD_NAMESPACE)",
}

// TestClusterWideIsTheBase checks that the cluster-wide overlay deploys exactly the base,
// which TestApply, TestShape and TestRBAC check.
func TestClusterWideIsTheBase(t *testing.T) {
	if base, cw := build(t), buildDir(t, clusterWide); !bytes.Equal(base.yaml, cw.yaml) {
		t.Fatalf("the cluster-wide overlay differs from the base:\n%s", cw.yaml)
	}
}

// TestSingleNamespaceShape checks what the single-namespace overlay changes: every object is
// in its namespace (RoleBinding subjects too) but for what must be cluster-scoped (the
// Namespace, the user roles, and bindings to system:auth-delegator, named for the namespace and
// binding only its ServiceAccounts), and the services are confined to the namespace they run
// in, still speaking TLS and probed over HTTP.
func TestSingleNamespaceShape(t *testing.T) {
	m, base := buildDir(t, singleNamespace), build(t)
	delegated := map[string]bool{}
	for _, o := range m.objects {
		obj, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		kind := o.GetObjectKind().GroupVersionKind().Kind
		switch o := o.(type) {
		case *corev1.Namespace:
			if o.Name != singleNS {
				t.Errorf("Namespace %s, want %s", o.Name, singleNS)
			}
		case *rbacv1.ClusterRole:
			_, user := userRoles[o.Name]
			inBase, ok := find[*rbacv1.ClusterRole](base, o.Name)
			if !user || !ok || !equality.Semantic.DeepEqual(o.Rules, inBase.Rules) {
				t.Errorf("ClusterRole %s: only the base's user roles may stay cluster-wide, unchanged: %+v", o.Name, o.Rules)
			}
		case *rbacv1.ClusterRoleBinding:
			if o.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"}) {
				t.Errorf("ClusterRoleBinding %s binds %+v: only system:auth-delegator may be bound cluster-wide", o.Name, o.RoleRef)
			}
			if !strings.HasSuffix(o.Name, "-"+singleNS) {
				t.Errorf("ClusterRoleBinding %s does not end with -%s: another installation would overwrite it", o.Name, singleNS)
			}
			for _, s := range o.Subjects {
				if s.Kind != rbacv1.ServiceAccountKind || s.Namespace != singleNS {
					t.Errorf("ClusterRoleBinding %s binds %s %s of namespace %q, want a ServiceAccount of %s", o.Name, s.Kind, s.Name, s.Namespace, singleNS)
				}
				delegated[s.Name] = true
			}
		default:
			if obj.GetNamespace() != singleNS {
				t.Errorf("%s %s is in namespace %q, want %s", kind, obj.GetName(), obj.GetNamespace(), singleNS)
			}
		}
		if rb, ok := o.(*rbacv1.RoleBinding); ok {
			for _, s := range rb.Subjects {
				if s.Namespace != singleNS {
					t.Errorf("RoleBinding %s binds %s of namespace %q, want %s", rb.Name, s.Name, s.Namespace, singleNS)
				}
			}
		}
	}
	for role := range userRoles {
		if _, ok := find[*rbacv1.ClusterRole](m, role); !ok {
			t.Errorf("no ClusterRole %s", role)
		}
	}
	for name := range services {
		t.Run(name, func(t *testing.T) {
			d, ok := find[*appsv1.Deployment](m, "sparkpods-"+name)
			if !ok {
				t.Fatalf("no Deployment sparkpods-%s", name)
			}
			if !delegated["sparkpods-"+name] {
				t.Errorf("sparkpods-%s is not bound to system:auth-delegator: it cannot check its callers", name)
			}
			checkTLS(t, name, d)
			c := d.Spec.Template.Spec.Containers[0]
			checkProbes(t, c)
			flag, confined := namespaceFlags[name]
			if !confined {
				return
			}
			if !slices.Contains(c.Args, flag) {
				t.Errorf("args %q lack %s", c.Args, flag)
			}
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" })
			if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil ||
				c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("no POD_NAMESPACE from metadata.namespace: %+v", c.Env)
			}
		})
	}
}

var (
	singleOnce sync.Once
	singleErr  error
)

// appliedSingleNamespace applies the single-namespace overlay, for real and server-side, once.
// It shares the control plane with the base, in another namespace: its ServiceAccounts are
// other users, whom none of the base's bindings name.
func appliedSingleNamespace(t *testing.T) manifests {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	m := buildDir(t, singleNamespace)
	singleOnce.Do(func() { singleErr = kubectlApply(t, cp, m.yaml) })
	if singleErr != nil {
		t.Fatal(singleErr)
	}
	return m
}

// TestApplyOverlays applies both overlays server-side, so the real API server validates them,
// and then dry-runs each again on the server, which must accept it unchanged.
func TestApplyOverlays(t *testing.T) {
	cp := controlplanetest.ControlPlane(t)
	cw := applied(t) // the base, which is the cluster-wide overlay
	if err := kubectlApply(t, cp, buildDir(t, clusterWide).yaml); err != nil {
		t.Fatal(err)
	}
	sn := appliedSingleNamespace(t)
	for _, m := range []manifests{cw, sn} {
		if err := kubectlApply(t, cp, m.yaml, "--dry-run=server"); err != nil {
			t.Fatal(err)
		}
	}
	for name := range services {
		if _, err := cp.Client().AppsV1().Deployments(singleNS).Get(context.Background(), "sparkpods-"+name, metav1.GetOptions{}); err != nil {
			t.Errorf("deployment %s/sparkpods-%s after apply: %v", singleNS, name, err)
		}
	}
}

// TestRBACSingleNamespace asks the API server, as TestRBAC does, whether each ServiceAccount of
// the single-namespace overlay may do each verb on every resource the server has, in its
// namespace, in the base's namespace, in another and across all namespaces. The answer must
// be yes exactly for what the service needs (the needs table) in its own namespace, and
// nowhere else, plus its cluster-scoped needs (TokenReviews and SubjectAccessReviews) and what
// every authenticated ServiceAccount may do anyway.
func TestRBACSingleNamespace(t *testing.T) {
	appliedSingleNamespace(t)
	questions := everyQuestion(t, singleNS, namespace, otherNamespace)
	t.Logf("%d questions per ServiceAccount", len(questions))

	baseline := allowedIn(t, singleNS, "sparkpods-nobody", questions)
	for name, grants := range needs {
		t.Run(name, func(t *testing.T) {
			allowed := allowedIn(t, singleNS, "sparkpods-"+name, questions)
			for _, q := range questions {
				want := baseline[q] || grantedConfined(grants, q)
				if allowed[q] != want {
					t.Errorf("%s may %s: %v, want %v", name, q, allowed[q], want)
				}
			}
		})
	}
}

// grantedConfined is whether grants allow q with the single-namespace overlay's RBAC:
// cluster-scoped grants as in the base, every other only in the overlay's namespace.
func grantedConfined(grants []grant, q access) bool {
	return slices.ContainsFunc(grants, func(g grant) bool {
		return g.allows(q) && (g.scope == cluster || q.namespace == singleNS)
	})
}

// TestClientsInASingleNamespace runs the services with exactly the single-namespace overlay's
// RBAC and flags and, against them, the Python client's tests on an application in that
// namespace: register, scale, an executor failure event, unregister. No service may be
// refused anything on the way, which proves the namespace flags keep every call inside.
func TestClientsInASingleNamespace(t *testing.T) {
	appliedSingleNamespace(t)
	d := startServices(t, singleNS, map[string][]string{
		"snapshot":  {"--namespaces=" + singleNS},
		"allocator": {"--namespace=" + singleNS},
		"lifecycle": {"--namespaces=" + singleNS},
	})
	if out, err := exec.Command("../clients/python/generate.sh").CombinedOutput(); err != nil {
		t.Fatalf("clients/python/generate.sh: %v\n%s(`make apt-deps` installs protoc, the plugin and python3-grpcio)", err, out)
	}
	cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Dir = "../clients/python"
	cmd.Env = d.clientEnv(t, singleNS, "spark-single-namespace")
	run(t, cmd)
	d.checkLogs(t)
	if t.Failed() {
		t.Logf("service logs in %s", d.logDir)
	}
}
