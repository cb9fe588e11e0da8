package podspec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the pods built now")

const (
	testNS  = "analytics"
	testApp = "spark-0a1b2c3d4e5f"
)

// baseConf is the least configuration a real driver forwards.
func baseConf() sparkconf.Conf {
	return sparkconf.Conf{
		"spark.app.name":                   "Spark Pi",
		"spark.app.id":                     "spark-0a1b2c3d4e5f",
		"spark.kubernetes.container.image": "apache/spark:4.0.1",
		"spark.driver.host":                "spark-pi-driver-svc.analytics.svc",
		"spark.driver.port":                "7078",
		"spark.kubernetes.namespace":       "analytics",
	}
}

func withConf(extra map[string]string) sparkconf.Conf {
	c := baseConf()
	for k, v := range extra {
		c[k] = v
	}
	return c
}

var driver = &DriverPod{Name: "spark-pi-driver", UID: "0d7a5b1e-3c1f-4c1e-9f1a-6a2f6c1d9e01", IP: "10.0.0.7"}

const templateYAML = `apiVersion: v1
kind: Pod
metadata:
  labels:
    team: data
    spark-role: not-for-you
  annotations:
    prometheus.io/scrape: "true"
spec:
  serviceAccountName: spark-template-sa
  tolerations:
  - key: dedicated
    operator: Equal
    value: spark
    effect: NoSchedule
  securityContext:
    runAsUser: 185
  initContainers:
  - name: fetch
    image: busybox
    command: ["sh", "-c", "true"]
  containers:
  - name: log-shipper
    image: fluent-bit:3
  - name: spark-main
    image: ignored-by-spark
    args: ["--verbose"]
    env:
    - name: FROM_TEMPLATE
      value: "yes"
    ports:
    - name: jmx
      containerPort: 9090
    resources:
      requests:
        ephemeral-storage: 10Gi
        memory: 1Gi
      limits:
        cpu: "8"
    volumeMounts:
    - name: spark-local-dir-fast
      mountPath: /mnt/fast
  volumes:
  - name: spark-local-dir-fast
    hostPath:
      path: /mnt/nvme
`

func TestGolden(t *testing.T) {
	type pod struct {
		id      int64
		profile int32
	}
	tests := []struct {
		name     string
		conf     sparkconf.Conf
		profiles []*sparkpodsv1.ResourceProfile
		driver   *DriverPod
		pods     []pod
	}{
		{
			name:   "defaults",
			conf:   baseConf(),
			driver: driver,
			pods:   []pod{{id: 1}},
		},
		{
			name: "custom-memory",
			conf: withConf(map[string]string{
				"spark.executor.cores":                    "4",
				"spark.executor.memory":                   "6g",
				"spark.executor.memoryOverheadFactor":     "0.2",
				"spark.memory.offHeap.enabled":            "true",
				"spark.memory.offHeap.size":               "512m",
				"spark.kubernetes.resource.type":          "python",
				"spark.executor.pyspark.memory":           "1g",
				"spark.kubernetes.executor.request.cores": "3500m",
				"spark.kubernetes.executor.limit.cores":   "4",
			}),
			driver: driver,
			pods:   []pod{{id: 7}},
		},
		{
			name: "labels-annotations",
			conf: withConf(map[string]string{
				"spark.kubernetes.executor.podNamePrefix":                   "nightly-etl",
				"spark.kubernetes.executor.label.team":                      "data",
				"spark.kubernetes.executor.label.executor":                  "exec-{{EXECUTOR_ID}}",
				"spark.kubernetes.executor.annotation.owner":                "{{APP_ID}}/{{EXECUTOR_ID}}",
				"spark.kubernetes.executor.annotation.example.com/cost":     "low",
				"spark.kubernetes.node.selector.kubernetes.io/arch":         "amd64",
				"spark.kubernetes.executor.node.selector.pool":              "spark",
				"spark.kubernetes.container.image.pullPolicy":               "Always",
				"spark.kubernetes.container.image.pullSecrets":              "regcred, mirror-cred",
				"spark.kubernetes.authenticate.executor.serviceAccountName": "spark-exec",
				"spark.kubernetes.executor.scheduler.name":                  "volcano",
				"spark.kubernetes.executor.checkAllContainers":              "false",
				"spark.executorEnv.SPARK_EXECUTOR_DIRS":                     "/data/SPARK_APPLICATION_ID/SPARK_EXECUTOR_ID",
				"spark.executorEnv.TZ":                                      "UTC",
				"spark.executorEnv.1INVALID":                                "dropped as in Spark",
				"spark.executor.extraJavaOptions":                           `-XX:+UseG1GC -Dlog.dir="/logs/{{APP_ID}} {{EXECUTOR_ID}}"`,
				"spark.executor.extraClassPath":                             "/opt/extra/*",
				"spark.network.timeout":                                     "300s",
				"spark.authenticate":                                        "true",
				"spark.authenticate.secret":                                 "s3cr3t",
				"spark.kubernetes.executor.secrets.spark-keytab":            "/etc/keytab",
				"spark.kubernetes.executor.secretKeyRef.DB_PASSWORD":        "db-credentials:password",
				"spark.local.dir":                                           "/tmp/a,/tmp/b",
				"spark.kubernetes.local.dirs.tmpfs":                         "true",
				"spark.decommission.enabled":                                "true",
				"spark.kubernetes.executor.terminationGracePeriodSeconds":   "90",
				"sparkpods.sparkVersion":                                    "4.0.1",
				"sparkpods.sparkUser":                                       "spark",
				"sparkpods.executorConfigMapName":                           "spark-exec-6a1b2c3d4e5f6a7b-conf-map",
			}),
			driver: driver,
			pods:   []pod{{id: 12}},
		},
		{
			name: "pod-template",
			conf: withConf(map[string]string{
				"spark.kubernetes.executor.podTemplateFile":          templateYAML,
				"spark.kubernetes.executor.podTemplateContainerName": "spark-main",
				"spark.executor.memory":                              "2g",
			}),
			driver: driver,
			pods:   []pod{{id: 3}},
		},
		{
			name: "two-profiles",
			conf: withConf(map[string]string{
				"spark.kubernetes.executor.podTemplateFile":          templateYAML,
				"spark.kubernetes.executor.podTemplateContainerName": "spark-main",
				"spark.kubernetes.executor.request.cores":            "500m",
				"spark.executor.resource.fpga.amount":                "1",
				"spark.executor.resource.fpga.vendor":                "xilinx.com",
			}),
			profiles: []*sparkpodsv1.ResourceProfile{{
				Id: 2, ExecutorCores: 8, ExecutorMemoryMib: 16384,
				CustomResources: []*sparkpodsv1.CustomResource{{Name: "gpu", Amount: 2, Vendor: "nvidia.com"}},
			}},
			pods: []pod{{id: 1, profile: 0}, {id: 2, profile: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBuilder(Application{Namespace: testNS, AppID: testApp, Driver: tt.driver, Conf: tt.conf, Profiles: tt.profiles})
			if err != nil {
				t.Fatalf("NewBuilder: %v", err)
			}
			var got bytes.Buffer
			for i, p := range tt.pods {
				pod, err := b.Build(p.id, p.profile)
				if err != nil {
					t.Fatalf("Build(%d, %d): %v", p.id, p.profile, err)
				}
				out, err := yaml.Marshal(pod)
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 {
					got.WriteString("---\n")
				}
				got.Write(out)
			}
			path := filepath.Join("testdata", tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./services/internal/podspec -run TestGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("pod differs from %s (-want +got; rerun with -update if the change is intended):\n%s", path, diff)
			}
		})
	}
}
