package podspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

func TestInvalidConfigurationNamesTheKey(t *testing.T) {
	tests := []struct {
		name  string
		conf  sparkconf.Conf
		unset []string
		key   string
	}{
		{name: "missing image", unset: []string{"spark.kubernetes.container.image"}, key: "spark.kubernetes.executor.container.image"},
		{name: "missing driver host", unset: []string{"spark.driver.host"}, key: "spark.driver.host"},
		{name: "bad memory", conf: sparkconf.Conf{"spark.executor.memory": "4 gigs"}, key: "spark.executor.memory"},
		{name: "fractional memory", conf: sparkconf.Conf{"spark.executor.memory": "1.5g"}, key: "spark.executor.memory"},
		{name: "bad overhead", conf: sparkconf.Conf{"spark.executor.memoryOverhead": "-1"}, key: "spark.executor.memoryOverhead"},
		{name: "bad factor", conf: sparkconf.Conf{"spark.executor.memoryOverheadFactor": "0"}, key: "spark.executor.memoryOverheadFactor"},
		{name: "bad request cores", conf: sparkconf.Conf{"spark.kubernetes.executor.request.cores": "lots"}, key: "spark.kubernetes.executor.request.cores"},
		{name: "bad limit cores", conf: sparkconf.Conf{"spark.kubernetes.executor.limit.cores": "-1"}, key: "spark.kubernetes.executor.limit.cores"},
		{name: "bad cores", conf: sparkconf.Conf{"spark.executor.cores": "two"}, key: "spark.executor.cores"},
		{name: "bad pull policy", conf: sparkconf.Conf{"spark.kubernetes.container.image.pullPolicy": "Sometimes"}, key: "spark.kubernetes.container.image.pullPolicy"},
		{name: "bad block manager port", conf: sparkconf.Conf{"spark.blockManager.port": "80"}, key: "spark.blockManager.port"},
		{name: "reserved label", conf: sparkconf.Conf{"spark.kubernetes.executor.label.spark-role": "x"}, key: "spark.kubernetes.executor.label.spark-role"},
		{name: "bad label value", conf: sparkconf.Conf{"spark.kubernetes.executor.label.team": "a b"}, key: "spark.kubernetes.executor.label.team"},
		{name: "bad annotation key", conf: sparkconf.Conf{"spark.kubernetes.executor.annotation.bad key": "x"}, key: "spark.kubernetes.executor.annotation.bad key"},
		{name: "bad prefix", conf: sparkconf.Conf{"spark.kubernetes.executor.podNamePrefix": "Has_Upper"}, key: "spark.kubernetes.executor.podNamePrefix"},
		{name: "template path", conf: sparkconf.Conf{"spark.kubernetes.executor.podTemplateFile": "/opt/spark/executor-template.yaml"}, key: "spark.kubernetes.executor.podTemplateFile"},
		{name: "template not yaml", conf: sparkconf.Conf{"spark.kubernetes.executor.podTemplateFile": "spec:\n  containers: 5\n"}, key: "spark.kubernetes.executor.podTemplateFile"},
		{name: "template not a pod", conf: sparkconf.Conf{"spark.kubernetes.executor.podTemplateFile": "kind: Deployment\napiVersion: apps/v1\n"}, key: "spark.kubernetes.executor.podTemplateFile"},
		{name: "off-heap without size", conf: sparkconf.Conf{"spark.memory.offHeap.enabled": "true"}, key: "spark.memory.offHeap.size"},
		{name: "resource without vendor", conf: sparkconf.Conf{"spark.executor.resource.gpu.amount": "1"}, key: "spark.executor.resource.gpu.vendor"},
		{name: "resource without amount", conf: sparkconf.Conf{"spark.executor.resource.gpu.vendor": "nvidia.com"}, key: "spark.executor.resource.gpu.amount"},
		{name: "auth without secret", conf: sparkconf.Conf{"spark.authenticate": "true"}, key: "spark.authenticate.secret"},
		{name: "volumes", conf: sparkconf.Conf{"spark.kubernetes.executor.volumes.hostPath.data.mount.path": "/data"}, key: "spark.kubernetes.executor.volumes.hostPath.data.mount.path"},
		{name: "secret key ref", conf: sparkconf.Conf{"spark.kubernetes.executor.secretKeyRef.TOKEN": "no-colon"}, key: "spark.kubernetes.executor.secretKeyRef.TOKEN"},
		{name: "image version unknown", conf: sparkconf.Conf{"spark.kubernetes.container.image": "spark:{{SPARK_VERSION}}"}, key: "spark.kubernetes.executor.container.image"},
		{name: "another application", conf: sparkconf.Conf{"spark.app.id": "spark-2"}, key: "spark.app.id"},
		{name: "another namespace", conf: sparkconf.Conf{"spark.kubernetes.namespace": "other"}, key: "spark.kubernetes.namespace"},
		{name: "check all containers", conf: sparkconf.Conf{"spark.kubernetes.executor.checkAllContainers": "maybe"}, key: "spark.kubernetes.executor.checkAllContainers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := withConf(tt.conf)
			for _, k := range tt.unset {
				delete(conf, k)
			}
			_, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: conf})
			var cerr *sparkconf.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("NewBuilder error = %v; want a *sparkconf.Error", err)
			}
			if cerr.Key != tt.key {
				t.Fatalf("error %q names %q; want %q", err, cerr.Key, tt.key)
			}
		})
	}
}

func TestProfiles(t *testing.T) {
	b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: baseConf(),
		Profiles: []*sparkpodsv1.ResourceProfile{{Id: 4, ExecutorMemoryMib: 8192, MemoryOverheadMib: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(1, 9); !isProfileError(err, 9) {
		t.Fatalf("Build with an unknown profile: %v; want a *ProfileError for profile 9", err)
	}
	pod, err := b.Build(1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Containers[0].Resources.Limits.Memory().String(); got != "9192Mi" {
		t.Fatalf("memory limit %s, want 9192Mi (explicit overhead)", got)
	}
	for _, p := range []*sparkpodsv1.ResourceProfile{
		{Id: 1, ExecutorMemoryMib: -1},
		{Id: 2, CustomResources: []*sparkpodsv1.CustomResource{{Name: "gpu", Amount: 1}}},
	} {
		_, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: baseConf(), Profiles: []*sparkpodsv1.ResourceProfile{p}})
		if !isProfileError(err, p.GetId()) {
			t.Errorf("profile %v: error %v, want a *ProfileError", p, err)
		}
	}
}

func isProfileError(err error, id int32) bool {
	var perr *ProfileError
	return errors.As(err, &perr) && perr.ProfileID == id
}

func TestMemoryOverhead(t *testing.T) {
	tests := []struct {
		conf sparkconf.Conf
		want int64 // MiB
	}{
		{sparkconf.Conf{}, 1408},                              // 1024 + max(102, 384)
		{sparkconf.Conf{"spark.executor.memory": "8g"}, 9011}, // 8192 + 819
		{sparkconf.Conf{"spark.executor.memory": "8g", "spark.executor.memoryOverhead": "2g"}, 10240},
		{sparkconf.Conf{"spark.executor.memory": "8g", "spark.kubernetes.memoryOverheadFactor": "0.25"}, 10240},
		{sparkconf.Conf{"spark.executor.memory": "8g", "spark.kubernetes.memoryOverheadFactor": "0.25", "spark.executor.memoryOverheadFactor": "0.5"}, 12288},
		{sparkconf.Conf{"spark.executor.memory": "4g", "spark.kubernetes.resource.type": "python"}, 5734}, // non-JVM factor 0.4
		{sparkconf.Conf{"spark.executor.minMemoryOverhead": "1g"}, 2048},
		{sparkconf.Conf{"spark.executor.pyspark.memory": "1g"}, 1408},                                             // only Python apps count it
		{sparkconf.Conf{"spark.executor.pyspark.memory": "1g", "spark.kubernetes.resource.type": "python"}, 2457}, // 1024 + 409 + 1024
		{sparkconf.Conf{"spark.memory.offHeap.size": "1g"}, 1408},                                                 // only when enabled
		{sparkconf.Conf{"spark.memory.offHeap.size": "1g", "spark.memory.offHeap.enabled": "true"}, 2432},
	}
	for _, tt := range tests {
		b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: withConf(tt.conf)})
		if err != nil {
			t.Fatalf("%v: %v", tt.conf, err)
		}
		pod, err := b.Build(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := pod.Spec.Containers[0]
		req, limit := c.Resources.Requests.Memory().Value()>>20, c.Resources.Limits.Memory().Value()>>20
		if req != tt.want || limit != tt.want {
			t.Errorf("%v: memory request %dMi, limit %dMi; want both %dMi", tt.conf, req, limit, tt.want)
		}
	}
}

func TestDerivedPodNamePrefix(t *testing.T) {
	a := DerivedPodNamePrefix("Spark Pi", "ns", "spark-1")
	if a != DerivedPodNamePrefix("Spark Pi", "ns", "spark-1") {
		t.Fatal("the derived prefix is not deterministic")
	}
	if a == DerivedPodNamePrefix("Spark Pi", "ns", "spark-2") || a == DerivedPodNamePrefix("Spark Pi", "other", "spark-1") {
		t.Fatal("different applications share a prefix")
	}
	for _, name := range []string{"Spark Pi", "1st_job!!", "__weird__", "", strings.Repeat("long name ", 40), "ÜberJob"} {
		p := DerivedPodNamePrefix(name, "ns", "spark-1")
		if errs := validation.IsDNS1123Subdomain(PodName(p, 2147483647)); len(errs) > 0 || len(p) > maxPodNamePrefixLength {
			t.Errorf("prefix %q for %q is not usable: %v", p, name, errs)
		}
		if errs := validation.IsDNS1123Label(hostname(PodName(p, 12))); len(errs) > 0 {
			t.Errorf("hostname for %q is invalid: %v", name, errs)
		}
		if v := appNameLabel(name); len(validation.IsValidLabelValue(v)) > 0 {
			t.Errorf("spark-app-name %q for %q is invalid", v, name)
		}
	}
	if p := DerivedPodNamePrefix("1st job", "ns", "a"); !strings.HasPrefix(p, "x1st-job-") {
		t.Errorf("prefix %q: want a leading digit prefixed with x", p)
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 70) + "-exec-1"
	if got := hostname(long); len(got) != 63 || !strings.HasSuffix(got, "-exec-1") {
		t.Errorf("hostname(%q) = %q; want the last 63 characters", long, got)
	}
	// Spark would write "my_app-exec-1", which the API server refuses.
	if got := hostname("my.app-exec-1"); got != "my-app-exec-1" || len(validation.IsDNS1123Label(got)) > 0 {
		t.Errorf("hostname = %q; want dots replaced by a dash, a valid DNS-1123 label", got)
	}
	name := strings.Repeat("b", 60) + ".-x-exec-1"
	if got := hostname(name); strings.HasPrefix(got, "-") || strings.HasPrefix(got, ".") {
		t.Errorf("hostname(%q) = %q keeps leading non-word characters", name, got)
	}
}

func TestSplitCommandString(t *testing.T) {
	tests := map[string][]string{
		`a "b c" d`:            {"a", "b c", "d"},
		`-Da='x y' -Db="q\"r"`: {"-Da=x y", `-Db=q"r`},
		"  spaced\tout\n ":     {"spaced", "out"},
		`back\slash`:           {`back\slash`},
		`""`:                   {""},
		`'unterminated`:        {"unterminated"},
		``:                     nil,
	}
	for in, want := range tests {
		if got := splitCommandString(in); !cmp.Equal(got, want) {
			t.Errorf("splitCommandString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTemplateContainerSelection(t *testing.T) {
	tmpl := "spec:\n  containers:\n  - name: a\n  - name: b\n"
	for _, tt := range []struct{ name, want string }{{"b", "b"}, {"", "a"}, {"missing", "a"}} {
		b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: withConf(sparkconf.Conf{
			"spark.kubernetes.executor.podTemplateFile": tmpl, "spark.kubernetes.executor.podTemplateContainerName": tt.name,
		})})
		if err != nil {
			t.Fatal(err)
		}
		pod, err := b.Build(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := pod.Spec.Containers[len(pod.Spec.Containers)-1]
		if last.Name != tt.want || pod.Annotations[ContainerNameAnnotation] != tt.want || len(pod.Spec.Containers) != 2 {
			t.Errorf("container name %q: Spark's container is %q (annotation %q); want %q last of 2",
				tt.name, last.Name, pod.Annotations[ContainerNameAnnotation], tt.want)
		}
	}
}

func TestBuildIsDeterministicAndIndependent(t *testing.T) {
	b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: withConf(sparkconf.Conf{"spark.kubernetes.executor.podTemplateFile": templateYAML})})
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := b.Build(5, 0)
	p2, _ := b.Build(5, 0)
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Fatalf("two builds of executor 5 differ:\n%s", diff)
	}
	p1.Spec.Containers[0].Env = nil
	p1.Labels["x"] = "y"
	p3, _ := b.Build(5, 0)
	if diff := cmp.Diff(p2, p3); diff != "" {
		t.Fatalf("changing a built pod changed the builder:\n%s", diff)
	}
}

func TestUseDriverPodIP(t *testing.T) {
	conf := withConf(sparkconf.Conf{"spark.kubernetes.executor.useDriverPodIP": "true"})
	b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	var cerr *sparkconf.Error
	if _, err := b.Build(1, 0); !errors.As(err, &cerr) || cerr.Key != "spark.kubernetes.executor.useDriverPodIP" {
		t.Fatalf("Build without a driver: %v; want an error naming useDriverPodIP", err)
	}
	if _, err := b.WithDriver(&DriverPod{Name: "d", UID: "u"}); !errors.Is(err, ErrDriverHasNoIP) {
		t.Fatalf("WithDriver(no IP): %v; want ErrDriverHasNoIP", err)
	}
	bd, err := b.WithDriver(&DriverPod{Name: "d", UID: "u", IP: "fd00::7"})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := bd.Build(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Containers[0].Env[0].Value; got != "spark://CoarseGrainedScheduler@[fd00::7]:7078" {
		t.Fatalf("SPARK_DRIVER_URL = %q", got)
	}
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != "u" {
		t.Fatalf("owner references %v", pod.OwnerReferences)
	}
}
