package sparkconf

import (
	"errors"
	"time"
)

// Application identity and the driver.
var (
	// AppName is spark.app.name. Spark requires it; "spark" is what Spark's
	// submission client falls back to.
	AppName = String("spark.app.name", "spark")
	// AppID is spark.app.id, the value of the spark-app-selector label.
	AppID = String("spark.app.id", "")
	// Namespace is spark.kubernetes.namespace.
	Namespace = String("spark.kubernetes.namespace", "default")
	// DriverPodName is spark.kubernetes.driver.pod.name.
	DriverPodName = String("spark.kubernetes.driver.pod.name", "")
	// DriverHost is spark.driver.host, the host executors dial the driver on.
	DriverHost = String("spark.driver.host", "")
	// DriverPort is spark.driver.port; 7078 is Spark's default on Kubernetes.
	DriverPort = Int("spark.driver.port", 7078).WithCheck(validPort)
	// BlockManagerPort is spark.blockManager.port; 7079 on Kubernetes, 0 for
	// none.
	BlockManagerPort = Int("spark.blockManager.port", 7079).WithCheck(func(p int) error {
		if p != 0 && (p < 1024 || p > 65535) {
			return errors.New("port number must be 0 or in [1024, 65535]")
		}
		return nil
	})
	// AppResourceType is spark.kubernetes.resource.type: java, python or r.
	AppResourceType = String("spark.kubernetes.resource.type", "").WithCheck(OneOf("java", "python", "r"))
)

// Executor image and pod naming.
var (
	// ContainerImage is spark.kubernetes.container.image.
	ContainerImage = String("spark.kubernetes.container.image", "")
	// ExecutorContainerImage is spark.kubernetes.executor.container.image,
	// falling back to spark.kubernetes.container.image. Required.
	ExecutorContainerImage = String("spark.kubernetes.executor.container.image", "").WithFallback(ContainerImage.Key)
	// ImagePullPolicy is spark.kubernetes.container.image.pullPolicy.
	ImagePullPolicy = String("spark.kubernetes.container.image.pullPolicy", "IfNotPresent").
			WithCheck(OneOf("Always", "Never", "IfNotPresent"))
	// ImagePullSecrets is spark.kubernetes.container.image.pullSecrets,
	// comma-separated secret names.
	ImagePullSecrets = String("spark.kubernetes.container.image.pullSecrets", "")
	// ExecutorPodNamePrefix is spark.kubernetes.executor.podNamePrefix.
	ExecutorPodNamePrefix = String("spark.kubernetes.executor.podNamePrefix", "")
	// ExecutorPodTemplateFile is spark.kubernetes.executor.podTemplateFile.
	// Spark reads a file at this path; sparkpods, which cannot read the
	// driver's files, takes the template's YAML itself as the value.
	ExecutorPodTemplateFile = String("spark.kubernetes.executor.podTemplateFile", "")
	// ExecutorPodTemplateContainerName is
	// spark.kubernetes.executor.podTemplateContainerName.
	ExecutorPodTemplateContainerName = String("spark.kubernetes.executor.podTemplateContainerName", "")
	// ExecutorSchedulerName is spark.kubernetes.executor.scheduler.name,
	// falling back to spark.kubernetes.scheduler.name.
	ExecutorSchedulerName = String("spark.kubernetes.executor.scheduler.name", "").WithFallback("spark.kubernetes.scheduler.name")
	// ExecutorServiceAccountName is
	// spark.kubernetes.authenticate.executor.serviceAccountName.
	ExecutorServiceAccountName = String("spark.kubernetes.authenticate.executor.serviceAccountName", "")
	// DriverServiceAccountName is
	// spark.kubernetes.authenticate.driver.serviceAccountName; executors fall
	// back to it.
	DriverServiceAccountName = String("spark.kubernetes.authenticate.driver.serviceAccountName", "")
	// ExecutorDisableConfigMap is spark.kubernetes.executor.disableConfigMap.
	ExecutorDisableConfigMap = Bool("spark.kubernetes.executor.disableConfigMap", false)
	// ExecutorTerminationGracePeriod is
	// spark.kubernetes.executor.terminationGracePeriodSeconds (Spark 4.1).
	ExecutorTerminationGracePeriod = Duration("spark.kubernetes.executor.terminationGracePeriodSeconds", time.Second, 30*time.Second).
					WithCheck(NonNegative[time.Duration])
	// ExecutorUseDriverPodIP is spark.kubernetes.executor.useDriverPodIP
	// (Spark 4.1): executors dial the driver pod's IP instead of
	// spark.driver.host.
	ExecutorUseDriverPodIP = Bool("spark.kubernetes.executor.useDriverPodIP", false)
	// ExecutorCheckAllContainers is
	// spark.kubernetes.executor.checkAllContainers; true from Spark 4.0.
	ExecutorCheckAllContainers = Bool("spark.kubernetes.executor.checkAllContainers", true)
	// PodsAllocator is spark.kubernetes.allocation.pods.allocator.
	PodsAllocator = String("spark.kubernetes.allocation.pods.allocator", "direct")
)

// Executor resources.
var (
	// ExecutorCores is spark.executor.cores.
	ExecutorCores = Int("spark.executor.cores", 1).WithCheck(Positive[int])
	// ExecutorRequestCores is spark.kubernetes.executor.request.cores, a
	// Kubernetes CPU quantity (default profile only).
	ExecutorRequestCores = String("spark.kubernetes.executor.request.cores", "")
	// ExecutorLimitCores is spark.kubernetes.executor.limit.cores, a
	// Kubernetes CPU quantity (default profile only).
	ExecutorLimitCores = String("spark.kubernetes.executor.limit.cores", "")
	// ExecutorMemory is spark.executor.memory, in MiB.
	ExecutorMemory = Bytes("spark.executor.memory", MiB, 1024).WithCheck(Positive[int64])
	// ExecutorMemoryOverhead is spark.executor.memoryOverhead, in MiB.
	ExecutorMemoryOverhead = Bytes("spark.executor.memoryOverhead", MiB, 0).WithCheck(NonNegative[int64])
	// ExecutorMinMemoryOverhead is spark.executor.minMemoryOverhead, in MiB
	// (Spark 4.0; a constant 384 before).
	ExecutorMinMemoryOverhead = Bytes("spark.executor.minMemoryOverhead", MiB, 384).WithCheck(NonNegative[int64])
	// ExecutorMemoryOverheadFactor is spark.executor.memoryOverheadFactor;
	// when unset, KubernetesMemoryOverheadFactor applies.
	ExecutorMemoryOverheadFactor = Float("spark.executor.memoryOverheadFactor", 0.1).WithCheck(Positive[float64])
	// KubernetesMemoryOverheadFactor is spark.kubernetes.memoryOverheadFactor.
	KubernetesMemoryOverheadFactor = Float("spark.kubernetes.memoryOverheadFactor", 0.1).WithCheck(Positive[float64])
	// MemoryOffHeapEnabled is spark.memory.offHeap.enabled.
	MemoryOffHeapEnabled = Bool("spark.memory.offHeap.enabled", false)
	// MemoryOffHeapSize is spark.memory.offHeap.size, in bytes (a bare number
	// is bytes, as in Spark).
	MemoryOffHeapSize = Bytes("spark.memory.offHeap.size", Byte, 0).WithCheck(NonNegative[int64])
	// PySparkExecutorMemory is spark.executor.pyspark.memory, in MiB.
	PySparkExecutorMemory = Bytes("spark.executor.pyspark.memory", MiB, 0).WithCheck(NonNegative[int64])
)

// Executor process settings.
var (
	// ExecutorJavaOptions is spark.executor.extraJavaOptions.
	ExecutorJavaOptions = String("spark.executor.extraJavaOptions", "")
	// ExecutorClassPath is spark.executor.extraClassPath.
	ExecutorClassPath = String("spark.executor.extraClassPath", "")
	// LocalDir is spark.local.dir, comma-separated scratch directories.
	LocalDir = String("spark.local.dir", "")
	// LocalDirsTmpfs is spark.kubernetes.local.dirs.tmpfs.
	LocalDirsTmpfs = Bool("spark.kubernetes.local.dirs.tmpfs", false)
	// Authenticate is spark.authenticate.
	Authenticate = Bool("spark.authenticate", false)
	// AuthenticateSecret is spark.authenticate.secret.
	AuthenticateSecret = String("spark.authenticate.secret", "")
	// AuthenticateSecretExecutorFile is
	// spark.authenticate.secret.executor.file.
	AuthenticateSecretExecutorFile = String("spark.authenticate.secret.executor.file", "")
	// DecommissionEnabled is spark.decommission.enabled.
	DecommissionEnabled = Bool("spark.decommission.enabled", false)
	// DecommissionScript is spark.kubernetes.decommission.script.
	DecommissionScript = String("spark.kubernetes.decommission.script", "/opt/decom.sh")
)

// Executor lifecycle settings several services read. The allocator's own
// keys are declared with its allocation algorithm.
var (
	// ExecutorDeleteOnTermination is
	// spark.kubernetes.executor.deleteOnTermination.
	ExecutorDeleteOnTermination = Bool("spark.kubernetes.executor.deleteOnTermination", true)
	// ExecutorDecommissionLabel is spark.kubernetes.executor.decommissionLabel.
	ExecutorDecommissionLabel = String("spark.kubernetes.executor.decommissionLabel", "")
	// ExecutorDecommissionLabelValue is
	// spark.kubernetes.executor.decommissionLabelValue.
	ExecutorDecommissionLabelValue = String("spark.kubernetes.executor.decommissionLabelValue", "")
)

// Prefix families.
const (
	// ExecutorLabelPrefix introduces executor pod labels.
	ExecutorLabelPrefix = "spark.kubernetes.executor.label."
	// ExecutorAnnotationPrefix introduces executor pod annotations.
	ExecutorAnnotationPrefix = "spark.kubernetes.executor.annotation."
	// NodeSelectorPrefix introduces node selector terms for every pod.
	NodeSelectorPrefix = "spark.kubernetes.node.selector."
	// ExecutorNodeSelectorPrefix introduces executor-only node selector terms.
	ExecutorNodeSelectorPrefix = "spark.kubernetes.executor.node.selector."
	// ExecutorEnvPrefix introduces executor environment variables.
	ExecutorEnvPrefix = "spark.executorEnv."
	// ExecutorSecretsPrefix maps secret names to mount paths.
	ExecutorSecretsPrefix = "spark.kubernetes.executor.secrets."
	// ExecutorSecretKeyRefPrefix maps environment variables to secret:key.
	ExecutorSecretKeyRefPrefix = "spark.kubernetes.executor.secretKeyRef."
	// ExecutorVolumesPrefix introduces executor volumes.
	ExecutorVolumesPrefix = "spark.kubernetes.executor.volumes."
	// ExecutorResourcePrefix introduces custom executor resources
	// (spark.executor.resource.<name>.amount, .vendor, .discoveryScript).
	ExecutorResourcePrefix = "spark.executor.resource."
)

// Keys of sparkpods' own, for facts a Spark driver knows but does not keep in
// its configuration. A driver-side integration adds them when it registers
// the application; all are optional.
var (
	// SparkpodsSparkVersion is the application's Spark version: it becomes
	// the spark-version label and replaces {{SPARK_VERSION}} in the image.
	SparkpodsSparkVersion = String("sparkpods.sparkVersion", "")
	// SparkpodsSparkUser is the driver's user name, Spark's SPARK_USER for
	// executors.
	SparkpodsSparkUser = String("sparkpods.sparkUser", "")
	// SparkpodsExecutorConfigMapName names the executor ConfigMap the driver
	// created (Spark's KubernetesClientUtils.configMapNameExecutor). Spark
	// names it randomly, so executors mount it only when it is given here.
	SparkpodsExecutorConfigMapName = String("sparkpods.executorConfigMapName", "")
)

func validPort(p int) error {
	if p < 0 || p > 65535 {
		return errors.New("port number must be in [0, 65535]")
	}
	return nil
}
