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
// resource requests, its TLS Secret and HTTP probes on its metrics port, and the flags that
// name other services point at Services and ports that exist.
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
			checkTLS(t, name, d)
			checkProbes(t, c)
			if !slices.Contains(c.Args, "--listen=:"+strconv.Itoa(int(port))) {
				t.Errorf("args %q do not listen on :%d", c.Args, port)
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

// tlsDir is where each service's TLS Secret is mounted, and tlsFlags the file each --tls-*
// flag names in it: the keys of the Secret a cert-manager Certificate writes.
const tlsDir = "/etc/sparkpods/tls"

var tlsFlags = map[string]string{"--tls-cert-file": "tls.crt", "--tls-key-file": "tls.key", "--tls-ca-file": "ca.crt"}

// checkTLS checks that the Deployment of the service name speaks TLS: it passes the three
// --tls-* flags with the files of its Secret sparkpods-<name>-tls, mounted whole and read-only
// at tlsDir (a subPath or a list of items would not see an updated Secret, or a key), readable
// by the service's group and by no one else, and it never passes --insecure.
func checkTLS(t *testing.T, name string, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	for _, arg := range c.Args {
		if arg == "--insecure" || strings.HasPrefix(arg, "--insecure=") {
			t.Errorf("args pass %s: the services must speak TLS", arg)
		}
	}
	for flag, key := range tlsFlags {
		if want := flag + "=" + tlsDir + "/" + key; !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == tlsDir })
	if i < 0 {
		t.Errorf("nothing is mounted at %s: %+v", tlsDir, c.VolumeMounts)
		return
	}
	mount := c.VolumeMounts[i]
	if !mount.ReadOnly || mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("mount at %s is not read-only, or mounts a subPath: %+v", tlsDir, mount)
	}
	j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
	if j < 0 || spec.Volumes[j].Secret == nil {
		t.Errorf("the volume %s mounted at %s is not a Secret", mount.Name, tlsDir)
		return
	}
	secret := spec.Volumes[j].Secret
	if want := "sparkpods-" + name + "-tls"; secret.SecretName != want {
		t.Errorf("TLS Secret %q, want %q", secret.SecretName, want)
	}
	if len(secret.Items) != 0 || (secret.Optional != nil && *secret.Optional) {
		t.Errorf("TLS Secret volume picks items or is optional: %+v", secret)
	}
	switch mode := secret.DefaultMode; {
	case mode == nil || *mode&0o007 != 0:
		t.Errorf("TLS Secret files (the private key) are readable by everyone: defaultMode %v", ptr.Deref(mode, 0o644))
	case *mode&0o040 == 0 || spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil:
		t.Errorf("TLS Secret files are not readable by the service: defaultMode %#o needs group read and the pod an fsGroup", *mode)
	}
}

// checkProbes checks that the container's probes are plain HTTP on its metrics port, the port
// --metrics-listen listens on (kubelet's gRPC probes cannot speak TLS): /readyz for readiness,
// and /healthz, which does not turn with the gRPC health, for liveness.
func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" })
	if i < 0 {
		t.Errorf("no metrics port")
		return
	}
	metrics := c.Ports[i].ContainerPort
	if want := "--metrics-listen=:" + strconv.Itoa(int(metrics)); !slices.Contains(c.Args, want) {
		t.Errorf("args %q lack %s: the metrics port is not where the probes are served", c.Args, want)
	}
	for _, p := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
		if p.probe == nil {
			t.Errorf("no %s probe", p.kind)
			continue
		}
		switch get := p.probe.HTTPGet; {
		case get == nil:
			t.Errorf("%s probe is not an httpGet probe: %+v", p.kind, p.probe.ProbeHandler)
		case get.Path != p.path:
			t.Errorf("%s probe gets %q, want %q", p.kind, get.Path, p.path)
		case get.Port != intstr.FromString("metrics") && get.Port != intstr.FromInt32(metrics):
			t.Errorf("%s probe is on port %s, want metrics (%d)", p.kind, get.Port.String(), metrics)
		case get.Scheme != "" && get.Scheme != corev1.URISchemeHTTP:
			t.Errorf("%s probe scheme %s, want HTTP", p.kind, get.Scheme)
		}
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
