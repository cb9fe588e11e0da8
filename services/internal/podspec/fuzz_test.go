package podspec

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// fuzzKeys are the keys FuzzNewBuilder sets; an index picks one.
var fuzzKeys = []string{
	sparkconf.ExecutorMemory.Key, sparkconf.ExecutorMemoryOverhead.Key, sparkconf.ExecutorMinMemoryOverhead.Key,
	sparkconf.ExecutorMemoryOverheadFactor.Key, sparkconf.KubernetesMemoryOverheadFactor.Key, sparkconf.ExecutorCores.Key,
	sparkconf.MemoryOffHeapEnabled.Key, sparkconf.MemoryOffHeapSize.Key, sparkconf.PySparkExecutorMemory.Key,
	sparkconf.AppResourceType.Key, sparkconf.ExecutorRequestCores.Key, sparkconf.ExecutorLimitCores.Key,
	sparkconf.ExecutorPodNamePrefix.Key, sparkconf.AppName.Key, sparkconf.SparkpodsSparkVersion.Key,
	sparkconf.ContainerImage.Key, sparkconf.ImagePullPolicy.Key, sparkconf.ImagePullSecrets.Key,
	sparkconf.DriverHost.Key, sparkconf.DriverPort.Key, sparkconf.BlockManagerPort.Key, sparkconf.ExecutorUseDriverPodIP.Key,
	sparkconf.ExecutorServiceAccountName.Key, sparkconf.ExecutorTerminationGracePeriod.Key,
	sparkconf.ExecutorLabelPrefix + "team", sparkconf.ExecutorAnnotationPrefix + "note", sparkconf.NodeSelectorPrefix + "zone",
	sparkconf.ExecutorSecretsPrefix + "creds", sparkconf.ExecutorSecretKeyRefPrefix + "TOKEN", sparkconf.ExecutorEnvPrefix + "FOO",
	sparkconf.ExecutorJavaOptions.Key, sparkconf.LocalDir.Key, sparkconf.ExecutorPodTemplateFile.Key,
	sparkconf.ExecutorPodTemplateContainerName.Key, sparkconf.SparkpodsExecutorConfigMapName.Key,
	sparkconf.ExecutorResourcePrefix + "gpu.amount", sparkconf.ExecutorResourcePrefix + "gpu.vendor",
	sparkconf.Authenticate.Key, sparkconf.DecommissionEnabled.Key, sparkconf.AppID.Key, sparkconf.Namespace.Key,
}

// fuzzKey picks a key: one of fuzzKeys, or beyond them a prefix family
// member whose name is the value's first word.
func fuzzKey(i uint8, v string) (key, value string) {
	if int(i) < len(fuzzKeys) {
		return fuzzKeys[i], v
	}
	families := []string{sparkconf.ExecutorLabelPrefix, sparkconf.ExecutorAnnotationPrefix, sparkconf.ExecutorSecretsPrefix,
		sparkconf.ExecutorEnvPrefix, sparkconf.ExecutorSecretKeyRefPrefix, sparkconf.ExecutorResourcePrefix,
		sparkconf.ExecutorNodeSelectorPrefix, sparkconf.ExecutorVolumesPrefix}
	name, value, _ := strings.Cut(v, "=")
	return families[int(i)%len(families)] + name, value
}

// FuzzNewBuilder builds the executor pods of arbitrary configurations and
// profiles. NewBuilder must never panic; it refuses with a *sparkconf.Error
// naming a key of the configuration (or a required one) or a *ProfileError;
// and what it accepts builds pods the API server would take: valid names,
// hostname, labels and volume names, and positive resources.
func FuzzNewBuilder(f *testing.F) {
	f.Add(uint8(0), "4g", uint8(1), "512m", uint8(5), "2", int64(0), int64(0), int32(0))
	f.Add(uint8(0), "9223372036854775807", uint8(1), "9223372036854775807", uint8(8), "1", int64(0), int64(0), int32(0))
	f.Add(uint8(3), "1e300", uint8(0), "8191p", uint8(9), "python", int64(0), int64(0), int32(0))
	f.Add(uint8(12), "my.app", uint8(13), "Spark Pi", uint8(14), "4.0.1", int64(2048), int64(100), int32(4))
	f.Add(uint8(27), "/etc/creds", uint8(17), "a,b.c,-bad", uint8(24), "{{APP_ID}}-{{EXECUTOR_ID}}", int64(0), int64(0), int32(0))
	f.Add(uint8(32), "spec:\n  containers:\n  - name: main\n    image: x\n", uint8(33), "main", uint8(31), "/a,/b", int64(0), int64(0), int32(0))
	f.Add(uint8(6), "true", uint8(7), "1023", uint8(21), "true", int64(-1), int64(0), int32(0))
	f.Add(uint8(200), "a.b.c=/mnt", uint8(201), "X=1", uint8(35), "0", int64(1), int64(1<<62), int32(-1))
	f.Fuzz(func(t *testing.T, i1 uint8, v1 string, i2 uint8, v2 string, i3 uint8, v3 string, memMiB, offHeapMiB int64, cores int32) {
		conf := baseConf()
		for _, p := range []struct {
			i uint8
			v string
		}{{i1, v1}, {i2, v2}, {i3, v3}} {
			k, v := fuzzKey(p.i, p.v)
			conf[k] = v
		}
		profiles := []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorMemoryMib: memMiB, OffHeapMemoryMib: offHeapMiB, ExecutorCores: cores}}
		b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: conf, Profiles: profiles})
		if err != nil {
			checkBuildError(t, conf, err)
			return
		}
		for _, d := range []*DriverPod{nil, driver} {
			wb, err := b.WithDriver(d)
			if err != nil {
				t.Fatalf("WithDriver(%v): %v", d, err)
			}
			for _, profile := range []int32{DefaultProfileID, 1} {
				pod, err := wb.Build(7, profile)
				if err != nil {
					var cerr *sparkconf.Error
					if d == nil && errors.As(err, &cerr) && cerr.Key == sparkconf.ExecutorUseDriverPodIP.Key {
						continue // executors must dial a driver pod that was not named
					}
					t.Fatalf("Build(7, %d) of an accepted configuration %v: %v", profile, conf, err)
				}
				checkPod(t, pod, conf)
			}
		}
	})
}

func checkBuildError(t *testing.T, conf sparkconf.Conf, err error) {
	t.Helper()
	var (
		cerr *sparkconf.Error
		perr *ProfileError
	)
	switch {
	case errors.As(err, &cerr):
		_, set := conf[cerr.Key]
		required := cerr.Key == sparkconf.ExecutorContainerImage.Key || cerr.Key == sparkconf.DriverHost.Key ||
			cerr.Key == sparkconf.AuthenticateSecret.Key || cerr.Key == sparkconf.MemoryOffHeapSize.Key ||
			strings.HasPrefix(cerr.Key, sparkconf.ExecutorResourcePrefix)
		if !set && !required {
			t.Fatalf("error %q names key %q, which is not set", err, cerr.Key)
		}
		if !strings.Contains(err.Error(), cerr.Key) || cerr.Reason == "" {
			t.Fatalf("unhelpful error %q", err)
		}
	case errors.As(err, &perr):
		if perr.Reason == "" {
			t.Fatalf("unhelpful error %q", err)
		}
	default:
		t.Fatalf("error %v (%T) is neither a *sparkconf.Error nor a *ProfileError", err, err)
	}
}

// checkPod holds a built pod to the API server's validation of what the
// builder derives from the configuration.
func checkPod(t *testing.T, pod *corev1.Pod, conf sparkconf.Conf) {
	t.Helper()
	fail := func(what string, errs []string) {
		if len(errs) > 0 {
			t.Fatalf("pod of %v: %s: %s", conf, what, strings.Join(errs, "; "))
		}
	}
	fail("name "+pod.Name, validation.IsDNS1123Subdomain(pod.Name))
	fail("hostname "+pod.Spec.Hostname, validation.IsDNS1123Label(pod.Spec.Hostname))
	for k, v := range pod.Labels {
		fail("label key "+k, validation.IsQualifiedName(k))
		fail("label value "+v, validation.IsValidLabelValue(v))
	}
	for k := range pod.Annotations {
		fail("annotation key "+k, validation.IsQualifiedName(strings.ToLower(k)))
	}
	for k, v := range pod.Spec.NodeSelector {
		fail("node selector key "+k, validation.IsQualifiedName(k))
		fail("node selector value "+v, validation.IsValidLabelValue(v))
	}
	for _, v := range pod.Spec.Volumes {
		fail("volume name "+v.Name, validation.IsDNS1123Label(v.Name))
	}
	for _, s := range pod.Spec.ImagePullSecrets {
		fail("pull secret "+s.Name, validation.IsDNS1123Subdomain(s.Name))
	}
	c := pod.Spec.Containers[len(pod.Spec.Containers)-1]
	for _, e := range c.Env {
		fail("environment variable "+e.Name, validation.IsEnvVarName(e.Name))
	}
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(m.MountPath, "/") && m.Name != sparkConfVolume && !strings.HasPrefix(m.Name, localDirVolumePrefix) {
			t.Fatalf("pod of %v: mount path %q is not absolute", conf, m.MountPath)
		}
	}
	mem, cpu := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Requests[corev1.ResourceCPU]
	if mem.Sign() <= 0 || cpu.Sign() <= 0 {
		t.Fatalf("pod of %v requests memory %s and cpu %s", conf, mem.String(), cpu.String())
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g < 0 {
		t.Fatalf("pod of %v: termination grace period %v", conf, g)
	}
	for _, p := range c.Ports {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			t.Fatalf("pod of %v: port %d", conf, p.ContainerPort)
		}
	}
}
