package deploy

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
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
// in its namespace (RoleBinding subjects too), nothing but the Namespace is cluster-scoped,
// and the services are confined to the namespace they run in.
func TestSingleNamespaceShape(t *testing.T) {
	m := buildDir(t, singleNamespace)
	for _, o := range m.objects {
		obj, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		kind := o.GetObjectKind().GroupVersionKind().Kind
		switch {
		case kind == "Namespace":
			if obj.GetName() != singleNS {
				t.Errorf("Namespace %s, want %s", obj.GetName(), singleNS)
			}
		case obj.GetNamespace() != singleNS:
			t.Errorf("%s %s is in namespace %q, want %s", kind, obj.GetName(), obj.GetNamespace(), singleNS)
		}
		if rb, ok := o.(*rbacv1.RoleBinding); ok {
			for _, s := range rb.Subjects {
				if s.Namespace != singleNS {
					t.Errorf("RoleBinding %s binds %s of namespace %q, want %s", rb.Name, s.Name, s.Namespace, singleNS)
				}
			}
		}
	}
	for name := range services {
		d, ok := find[*appsv1.Deployment](m, "sparkpods-"+name)
		if !ok {
			t.Fatalf("no Deployment sparkpods-%s", name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		flag, confined := namespaceFlags[name]
		if !confined {
			continue
		}
		if !slices.Contains(c.Args, flag) {
			t.Errorf("%s args %q lack %s", name, c.Args, flag)
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil ||
			c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
			t.Errorf("%s has no POD_NAMESPACE from metadata.namespace: %+v", name, c.Env)
		}
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
// nowhere else, plus what every authenticated ServiceAccount may do anyway.
func TestRBACSingleNamespace(t *testing.T) {
	appliedSingleNamespace(t)
	questions := everyQuestion(t, singleNS, namespace, otherNamespace)
	t.Logf("%d questions per ServiceAccount", len(questions))

	baseline := allowedIn(t, singleNS, "sparkpods-nobody", questions)
	for name, grants := range needs {
		t.Run(name, func(t *testing.T) {
			allowed := allowedIn(t, singleNS, "sparkpods-"+name, questions)
			for _, q := range questions {
				want := baseline[q] || (q.namespace == singleNS && grantedAnywhere(grants, q))
				if allowed[q] != want {
					t.Errorf("%s may %s: %v, want %v", name, q, allowed[q], want)
				}
			}
		})
	}
}

// grantedAnywhere is whether grants allow q in some namespace.
func grantedAnywhere(grants []grant, q access) bool {
	for _, g := range grants {
		if g.group == q.gr.Group && g.resource == q.gr.Resource && slices.Contains(g.verbs, q.verb) {
			return true
		}
	}
	return false
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
