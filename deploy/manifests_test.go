package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }

// namespace is where the base deploys the services.
const namespace = "sparkpods"

// services are the four services: their Deployment, Service, ServiceAccount and ClusterRole
// are all named sparkpods-<name>, and their gRPC ports are the binaries' defaults.
var services = map[string]int32{"snapshot": 8081, "podmanager": 50054, "allocator": 50052, "lifecycle": 50053}

// manifests is the built base, decoded.
type manifests struct {
	yaml    []byte
	objects []runtime.Object
}

// kubectl returns the path of bin/kubectl, which `make cluster-bins` builds.
func kubectl(t *testing.T) string {
	t.Helper()
	dir, err := controlplane.DefaultBinDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("no kubectl in %s (make cluster-bins)", dir)
		}
		t.Fatalf("%v (make cluster-bins)", err)
	}
	return path
}

// build runs kubectl kustomize on base/ and decodes the result.
func build(t *testing.T) manifests { t.Helper(); return buildDir(t, "base") }

// buildDir runs kubectl kustomize on dir (base/ or an overlay) and decodes the result.
func buildDir(t *testing.T, dir string) manifests {
	t.Helper()
	out, err := exec.Command(kubectl(t), "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
	}
	m := manifests{yaml: out}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode the built manifests: %v", err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		if err != nil {
			t.Fatalf("decode object: %v\n%s", err, raw.Raw)
		}
		m.objects = append(m.objects, obj)
	}
	return m
}

func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(exit.Stderr)
	}
	return ""
}

// find returns the object of type T named name.
func find[T runtime.Object](m manifests, name string) (T, bool) {
	for _, o := range m.objects {
		if v, ok := o.(T); ok {
			if accessorName(o) == name {
				return v, true
			}
		}
	}
	var zero T
	return zero, false
}

func accessorName(o runtime.Object) string {
	type named interface{ GetName() string }
	if n, ok := o.(named); ok {
		return n.GetName()
	}
	return ""
}

var (
	applyOnce sync.Once
	applyErr  error
)

// applied applies the base to the package's control plane once, for real and server-side
// (namespaced objects cannot be dry-run before their namespace exists), and returns it.
func applied(t *testing.T) manifests {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	m := build(t)
	applyOnce.Do(func() {
		applyErr = kubectlApply(t, cp, m.yaml)
	})
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	return m
}

func kubectlApply(t *testing.T, cp *controlplane.ControlPlane, yaml []byte, extra ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--kubeconfig", cp.KubeconfigPath(), "apply", "--server-side",
		"--field-manager=sparkpods-deploy-test", "-f", "-"}, extra...)
	cmd := exec.CommandContext(ctx, kubectl(t), args...)
	cmd.Stdin = bytes.NewReader(yaml)
	out, err := cmd.CombinedOutput()
	t.Logf("kubectl %s:\n%s", strings.Join(args[2:], " "), out)
	if err != nil {
		return errors.New("kubectl apply: " + err.Error() + "\n" + string(out))
	}
	return nil
}

// TestApply applies the base server-side, so the real API server validates every object
// (schemas, RBAC references, probes, security contexts), and then dry-runs it again on the
// server, which must accept it unchanged.
func TestApply(t *testing.T) {
	m := applied(t)
	cp := controlplanetest.ControlPlane(t)
	if err := kubectlApply(t, cp, m.yaml, "--dry-run=server"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name := range services {
		if _, err := cp.Client().AppsV1().Deployments(namespace).Get(ctx, "sparkpods-"+name, metav1.GetOptions{}); err != nil {
			t.Errorf("deployment sparkpods-%s after apply: %v", name, err)
		}
	}
}

// TestPodSecurityRestricted creates (dry-run) a pod from each Deployment's template in the
// namespace, whose label makes the API server's PodSecurity admission enforce the restricted
// level: the pods the Deployments will create must pass it.
func TestPodSecurityRestricted(t *testing.T) {
	m := applied(t)
	cp := controlplanetest.ControlPlane(t)
	ns, err := cp.Client().CoreV1().Namespaces().Get(context.Background(), namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Fatalf("namespace %s enforces Pod Security %q, want restricted", namespace, got)
	}
	for name := range services {
		d, _ := find[*appsv1.Deployment](m, "sparkpods-"+name)
		pod := &corev1.Pod{ObjectMeta: *d.Spec.Template.ObjectMeta.DeepCopy(), Spec: *d.Spec.Template.Spec.DeepCopy()}
		pod.GenerateName = d.Name + "-"
		_, err := cp.Client().CoreV1().Pods(namespace).Create(context.Background(), pod,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Errorf("a %s pod is refused: %v", name, err)
		}
	}
	// And the check has teeth: a pod that may escalate privileges is refused.
	d, _ := find[*appsv1.Deployment](m, "sparkpods-snapshot")
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "privileged-"}, Spec: *d.Spec.Template.Spec.DeepCopy()}
	bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	if _, err := cp.Client().CoreV1().Pods(namespace).Create(context.Background(), bad,
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Errorf("a pod allowing privilege escalation was admitted: Pod Security is not enforced")
	}
}

// TestShape checks what the API server does not: each service runs under its own
// ServiceAccount, non-root with a read-only root filesystem and no privilege escalation, with
// resource requests, a gRPC health probe and metrics port, and the flags that name other
// services point at Services and ports that exist.
func TestShape(t *testing.T) {
	m := build(t)
	for name, port := range services {
		t.Run(name, func(t *testing.T) {
			full := "sparkpods-" + name
			d, ok := find[*appsv1.Deployment](m, full)
			if !ok {
				t.Fatalf("no Deployment %s", full)
			}
			spec := d.Spec.Template.Spec
			if spec.ServiceAccountName != full {
				t.Errorf("serviceAccountName %q, want %q", spec.ServiceAccountName, full)
			}
			if _, ok := find[*corev1.ServiceAccount](m, full); !ok {
				t.Errorf("no ServiceAccount %s", full)
			}
			if _, ok := find[*rbacv1.ClusterRoleBinding](m, full); !ok {
				t.Errorf("no ClusterRoleBinding %s", full)
			}
			if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("pod securityContext.runAsNonRoot is not true")
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			wantImage := "ko://github.com/sparkpods/sparkpods/services/" + name + "/cmd/" + full
			if c.Image != wantImage {
				t.Errorf("image %q, want %q", c.Image, wantImage)
			}
			if _, err := os.Stat(filepath.Join("..", strings.TrimPrefix(wantImage, "ko://github.com/sparkpods/sparkpods/"))); err != nil {
				t.Errorf("image names a package that does not exist: %v", err)
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("no container securityContext")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("allowPrivilegeEscalation is not false")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("readOnlyRootFilesystem is not true")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
				t.Errorf("capabilities do not drop ALL")
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("no cpu and memory requests: %v", c.Resources.Requests)
			}
			if p := c.ReadinessProbe; p == nil || p.GRPC == nil || p.GRPC.Port != port {
				t.Errorf("readiness probe is not a gRPC health probe on port %d: %+v", port, p)
			}
			if c.LivenessProbe == nil {
				t.Errorf("no liveness probe")
			}
			if !slices.Contains(c.Args, "--listen=:"+strconv.Itoa(int(port))) {
				t.Errorf("args %q do not listen on :%d", c.Args, port)
			}
			var hasMetrics bool
			for _, p := range c.Ports {
				hasMetrics = hasMetrics || p.Name == "metrics"
			}
			if !hasMetrics {
				t.Errorf("no metrics port")
			}
			svc, ok := find[*corev1.Service](m, full)
			if !ok {
				t.Fatalf("no Service %s", full)
			}
			if svc.Spec.Selector["app.kubernetes.io/name"] != d.Spec.Template.Labels["app.kubernetes.io/name"] {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
			}
			if !hasPort(svc, port, "grpc") {
				t.Errorf("Service has no grpc port %d", port)
			}
			// Every --<service>-addr flag names a Service in the base and its gRPC port.
			for _, arg := range c.Args {
				flag, addr, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
				if !ok || !strings.HasSuffix(flag, "-addr") {
					continue
				}
				target := strings.TrimSuffix(flag, "-addr")
				host, p, _ := strings.Cut(addr, ":")
				if host != "sparkpods-"+target || p != strconv.Itoa(int(services[target])) {
					t.Errorf("--%s=%s, want sparkpods-%s:%d", flag, addr, target, services[target])
				}
				if _, ok := find[*corev1.Service](m, host); !ok {
					t.Errorf("--%s names Service %s, which the base does not have", flag, host)
				}
			}
		})
	}
	if pdb, ok := find[*policyv1.PodDisruptionBudget](m, "sparkpods-allocator"); !ok {
		t.Errorf("no PodDisruptionBudget for the allocator")
	} else if d, _ := find[*appsv1.Deployment](m, "sparkpods-allocator"); pdb.Spec.MinAvailable == nil ||
		pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("allocator PDB minAvailable %v would block every drain of %d replicas", pdb.Spec.MinAvailable, *d.Spec.Replicas)
	}
}

func hasPort(svc *corev1.Service, port int32, target string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Port == port && p.TargetPort == intstr.FromString(target) {
			return true
		}
	}
	return false
}
