package podspec

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// Application is what the builder needs to know of one Spark application.
type Application struct {
	// Namespace the executor pods live in. Required.
	Namespace string
	// AppID is the Spark application id, the spark-app-selector label.
	// Required.
	AppID string
	// Driver is the driver pod the executors are owned by; nil in client
	// mode, when executors get no owner reference.
	Driver *DriverPod
	// Conf is the application's Spark configuration.
	Conf sparkconf.Conf
	// Profiles are the resource profiles pods may refer to; profile 0 is
	// built from Conf when not listed.
	Profiles []*sparkpodsv1.ResourceProfile
}

// DriverPod identifies the driver pod executors are owned by.
type DriverPod struct {
	// Name of the driver pod.
	Name string
	// UID of the driver pod; the owner reference names it so that a new
	// driver pod of the same name does not adopt old executors.
	UID types.UID
	// IP of the driver pod, used when spark.kubernetes.executor.useDriverPodIP.
	IP string
}

// Spark's executor container constants.
const (
	sparkConfDir           = "/opt/spark/conf"
	sparkConfVolume        = "spark-conf-volume-exec"
	blockManagerPortName   = "blockmanager"
	driverEndpointName     = "CoarseGrainedScheduler"
	localDirVolumePrefix   = "spark-local-dir-"
	defaultLocalDirPattern = "/var/data/spark-"
)

// envNamePattern reports whether s is a name Spark accepts for a
// spark.executorEnv.* variable: [-._a-zA-Z][-._a-zA-Z0-9]*.
func envNamePattern(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '-' || c == '.' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Builder builds the executor pods of one application. It is immutable after
// NewBuilder and safe for concurrent use.
type Builder struct {
	app          Application
	prefix       string
	appNameLabel string
	sparkVersion string
	sparkUser    string

	image            string
	pullPolicy       corev1.PullPolicy
	pullSecrets      []corev1.LocalObjectReference
	useDriverIP      bool
	driverHost       string
	driverPort       int
	driverURL        string
	blockManagerPort int32
	schedulerName    string
	serviceAccount   string
	terminationGrace *int64
	decommission     string
	configMapName    string
	checkAll         bool

	userLabels   map[string]string
	annotations  map[string]string
	nodeSelector map[string]string

	executorEnv   []corev1.EnvVar
	authSecret    string
	classPath     string
	javaOptions   string
	sparkJavaOpts []string
	secretEnv     []corev1.EnvVar
	secretVolumes []secretMount
	localDirs     []string
	tmpfs         bool

	template *podTemplate
	profiles map[int32]*executorResources
}

type secretMount struct{ secret, path string }

// NewBuilder validates the application's configuration and resource profiles
// and prepares everything that is the same for all its executors. Invalid
// configuration is a *sparkconf.Error naming the key, or a *ProfileError.
func NewBuilder(app Application) (*Builder, error) {
	if app.Namespace == "" || app.AppID == "" {
		return nil, errors.New("podspec: Namespace and AppID are required")
	}
	if app.Conf == nil {
		app.Conf = sparkconf.Conf{}
	}
	conf := app.Conf
	b := &Builder{app: app}
	var err error
	if err := b.readNaming(conf); err != nil {
		return nil, err
	}
	if err := b.readContainer(conf); err != nil {
		return nil, err
	}
	if err := b.readPod(conf); err != nil {
		return nil, err
	}
	if err := b.readEnvironment(conf); err != nil {
		return nil, err
	}
	if err := b.readMetadata(conf); err != nil {
		return nil, err
	}
	if len(conf.WithPrefix(sparkconf.ExecutorVolumesPrefix)) > 0 {
		return nil, &sparkconf.Error{Key: firstKey(conf, sparkconf.ExecutorVolumesPrefix),
			Reason: "executor volumes are not supported by sparkpods yet; mount them through the pod template (spark.kubernetes.executor.podTemplateFile)"}
	}
	if b.profiles, err = resolveProfiles(conf, app.Profiles); err != nil {
		return nil, err
	}
	name, _ := sparkconf.ExecutorPodTemplateContainerName.Get(conf)
	tmpl, _ := sparkconf.ExecutorPodTemplateFile.Get(conf)
	if b.template, err = parseTemplate(tmpl, name); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Builder) readNaming(conf sparkconf.Conf) error {
	// The configuration a driver forwards names its own application and
	// namespace; a mismatch means the request is about another application.
	if id, set, _ := sparkconf.AppID.Lookup(conf); set && id != b.app.AppID {
		return &sparkconf.Error{Key: sparkconf.AppID.Key, Value: id, Reason: fmt.Sprintf("names another application than %q", b.app.AppID)}
	}
	if ns, set, _ := sparkconf.Namespace.Lookup(conf); set && ns != b.app.Namespace {
		return &sparkconf.Error{Key: sparkconf.Namespace.Key, Value: ns, Reason: fmt.Sprintf("names another namespace than %q", b.app.Namespace)}
	}
	appName, _ := sparkconf.AppName.Get(conf)
	b.appNameLabel = appNameLabel(appName)
	prefix, set, _ := sparkconf.ExecutorPodNamePrefix.Lookup(conf)
	if !set {
		prefix = DerivedPodNamePrefix(appName, b.app.Namespace, b.app.AppID)
	}
	if len(prefix) > maxPodNamePrefixLength || len(validation.IsDNS1123Subdomain(prefix)) > 0 {
		return &sparkconf.Error{Key: sparkconf.ExecutorPodNamePrefix.Key, Value: prefix,
			Reason: fmt.Sprintf("must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.') of at most %d characters", maxPodNamePrefixLength)}
	}
	b.prefix = prefix
	b.sparkVersion, _ = sparkconf.SparkpodsSparkVersion.Get(conf)
	if b.sparkVersion != "" && len(validation.IsValidLabelValue(b.sparkVersion)) > 0 {
		return &sparkconf.Error{Key: sparkconf.SparkpodsSparkVersion.Key, Value: b.sparkVersion, Reason: "must be a valid label value"}
	}
	b.sparkUser, _ = sparkconf.SparkpodsSparkUser.Get(conf)
	return nil
}

func (b *Builder) readContainer(conf sparkconf.Conf) error {
	image, err := sparkconf.ExecutorContainerImage.Require(conf)
	if err != nil {
		return err
	}
	if strings.Contains(image, "{{SPARK_VERSION}}") {
		if b.sparkVersion == "" {
			return &sparkconf.Error{Key: sparkconf.ExecutorContainerImage.Key, Value: image,
				Reason: "uses {{SPARK_VERSION}}, but the Spark version is unknown; set " + sparkconf.SparkpodsSparkVersion.Key}
		}
		image = strings.ReplaceAll(image, "{{SPARK_VERSION}}", b.sparkVersion)
	}
	b.image = strings.TrimSpace(image)
	policy, err := sparkconf.ImagePullPolicy.Get(conf)
	if err != nil {
		return err
	}
	b.pullPolicy = corev1.PullPolicy(policy)
	port, err := sparkconf.BlockManagerPort.Get(conf)
	if err != nil {
		return err
	}
	b.blockManagerPort = int32(port)

	if b.useDriverIP, err = sparkconf.ExecutorUseDriverPodIP.Get(conf); err != nil {
		return err
	}
	if b.driverHost, err = sparkconf.DriverHost.Get(conf); err != nil {
		return err
	}
	b.driverHost = strings.TrimSpace(b.driverHost)
	if !b.useDriverIP && b.driverHost == "" {
		return &sparkconf.Error{Key: sparkconf.DriverHost.Key, Reason: "required: executors connect to the driver at spark.driver.host:spark.driver.port"}
	}
	if b.driverPort, err = sparkconf.DriverPort.Get(conf); err != nil {
		return err
	}
	if err := b.bindDriver(b.app.Driver); err != nil {
		return err
	}

	decom, err := sparkconf.DecommissionEnabled.Get(conf)
	if err != nil {
		return err
	}
	if decom {
		b.decommission, _ = sparkconf.DecommissionScript.Get(conf)
	}
	disableCM, err := sparkconf.ExecutorDisableConfigMap.Get(conf)
	if err != nil {
		return err
	}
	if !disableCM {
		b.configMapName, _ = sparkconf.SparkpodsExecutorConfigMapName.Get(conf)
		if b.configMapName != "" && len(validation.IsDNS1123Subdomain(b.configMapName)) > 0 {
			return &sparkconf.Error{Key: sparkconf.SparkpodsExecutorConfigMapName.Key, Value: b.configMapName, Reason: "must be a ConfigMap name (a DNS-1123 subdomain)"}
		}
	}
	if b.checkAll, err = sparkconf.ExecutorCheckAllContainers.Get(conf); err != nil {
		return err
	}
	return nil
}

// ErrDriverHasNoIP is returned by WithDriver when executors must dial the
// driver pod's IP (spark.kubernetes.executor.useDriverPodIP) and the driver
// pod has none yet: a state to wait out, not a configuration error.
var ErrDriverHasNoIP = errors.New("the driver pod has no IP address yet, and spark.kubernetes.executor.useDriverPodIP is true")

// WithDriver returns a copy of b whose pods are owned by driver (nil: no
// owner). It fails when the configuration asks executors to dial the driver
// pod's IP (spark.kubernetes.executor.useDriverPodIP) and the pod has none.
func (b *Builder) WithDriver(driver *DriverPod) (*Builder, error) {
	c := *b
	if err := c.bindDriver(driver); err != nil {
		return nil, err
	}
	return &c, nil
}

func (b *Builder) bindDriver(driver *DriverPod) error {
	b.app.Driver = driver
	host := b.driverHost
	if b.useDriverIP {
		if driver == nil || driver.IP == "" {
			// Without a driver yet, Build refuses; WithDriver supplies it.
			b.driverURL = ""
			if driver == nil {
				return nil
			}
			return ErrDriverHasNoIP
		}
		host = driver.IP
	}
	b.driverURL = fmt.Sprintf("spark://%s@%s:%d", driverEndpointName, hostForURL(host), b.driverPort)
	return nil
}

// hostForURL brackets an IPv6 address, as Spark's RpcEndpointAddress does.
func hostForURL(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

func (b *Builder) readPod(conf sparkconf.Conf) error {
	secrets, _ := sparkconf.ImagePullSecrets.Get(conf)
	for _, s := range strings.Split(secrets, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if len(validation.IsDNS1123Subdomain(s)) > 0 {
			return &sparkconf.Error{Key: sparkconf.ImagePullSecrets.Key, Value: secrets, Reason: fmt.Sprintf("%q is not a Secret name", s)}
		}
		b.pullSecrets = append(b.pullSecrets, corev1.LocalObjectReference{Name: s})
	}
	b.schedulerName, _ = sparkconf.ExecutorSchedulerName.Get(conf)
	sa, _ := sparkconf.ExecutorServiceAccountName.Get(conf)
	key := sparkconf.ExecutorServiceAccountName.Key
	if sa == "" {
		sa, _ = sparkconf.DriverServiceAccountName.Get(conf)
		key = sparkconf.DriverServiceAccountName.Key
	}
	if sa != "" && len(validation.IsDNS1123Subdomain(sa)) > 0 {
		return &sparkconf.Error{Key: key, Value: sa, Reason: "must be a ServiceAccount name (a DNS-1123 subdomain)"}
	}
	b.serviceAccount = sa
	grace, set, err := sparkconf.ExecutorTerminationGracePeriod.Lookup(conf)
	if err != nil {
		return err
	}
	if set {
		b.terminationGrace = ptr.To(int64(grace.Seconds()))
	}
	for _, sel := range []string{sparkconf.NodeSelectorPrefix, sparkconf.ExecutorNodeSelectorPrefix} {
		for k, v := range conf.WithPrefix(sel) {
			if err := validateLabel(sel+k, k, v); err != nil {
				return err
			}
			if b.nodeSelector == nil {
				b.nodeSelector = map[string]string{}
			}
			b.nodeSelector[k] = v // executor terms are applied after the shared ones
		}
	}
	for name, path := range conf.WithPrefix(sparkconf.ExecutorSecretsPrefix) {
		if len(validation.IsDNS1123Subdomain(name)) > 0 || !strings.HasPrefix(path, "/") {
			return &sparkconf.Error{Key: sparkconf.ExecutorSecretsPrefix + name, Value: path,
				Reason: "want spark.kubernetes.executor.secrets.<secret name>=<absolute mount path>"}
		}
	}
	for _, name := range sparkconf.SortedKeys(conf.WithPrefix(sparkconf.ExecutorSecretsPrefix)) {
		b.secretVolumes = append(b.secretVolumes, secretMount{secret: name, path: conf[sparkconf.ExecutorSecretsPrefix+name]})
	}
	localDir, _ := sparkconf.LocalDir.Get(conf)
	for _, d := range strings.Split(localDir, ",") {
		if d = strings.TrimSpace(d); d != "" {
			b.localDirs = append(b.localDirs, d)
		}
	}
	if b.tmpfs, err = sparkconf.LocalDirsTmpfs.Get(conf); err != nil {
		return err
	}
	return nil
}

func (b *Builder) readEnvironment(conf sparkconf.Conf) error {
	env := conf.WithPrefix(sparkconf.ExecutorEnvPrefix)
	for _, name := range sparkconf.SortedKeys(env) {
		// Spark drops names outside [-._a-zA-Z][-._a-zA-Z0-9]* with a warning.
		if envNamePattern(name) {
			b.executorEnv = append(b.executorEnv, corev1.EnvVar{Name: name, Value: env[name]})
		}
	}
	refs := conf.WithPrefix(sparkconf.ExecutorSecretKeyRefPrefix)
	for _, name := range sparkconf.SortedKeys(refs) {
		secret, key, ok := strings.Cut(refs[name], ":")
		if !ok || secret == "" || key == "" || strings.Contains(key, ":") || len(validation.IsEnvVarName(name)) > 0 {
			return &sparkconf.Error{Key: sparkconf.ExecutorSecretKeyRefPrefix + name, Value: refs[name],
				Reason: "want spark.kubernetes.executor.secretKeyRef.<ENV_NAME>=<secret name>:<key>"}
		}
		b.secretEnv = append(b.secretEnv, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key},
		}})
	}
	auth, err := sparkconf.Authenticate.Get(conf)
	if err != nil {
		return err
	}
	if file, _ := sparkconf.AuthenticateSecretExecutorFile.Get(conf); auth && file == "" {
		if b.authSecret, err = sparkconf.AuthenticateSecret.Require(conf); err != nil {
			return &sparkconf.Error{Key: sparkconf.AuthenticateSecret.Key,
				Reason: "spark.authenticate is true: sparkpods passes this secret to executors, so set it (or spark.authenticate.secret.executor.file)"}
		}
	}
	b.classPath, _ = sparkconf.ExecutorClassPath.Get(conf)
	b.javaOptions, _ = sparkconf.ExecutorJavaOptions.Get(conf)
	for _, k := range sparkconf.SortedKeys(conf) {
		if isExecutorStartupConf(k) {
			b.sparkJavaOpts = append(b.sparkJavaOpts, "-D"+k+"="+conf[k])
		}
	}
	return nil
}

// isExecutorStartupConf is Spark's SparkConf.isExecutorStartupConf: the
// settings an executor needs before it can reach the driver.
func isExecutorStartupConf(k string) bool {
	return (strings.HasPrefix(k, "spark.auth") && k != sparkconf.AuthenticateSecret.Key) ||
		strings.HasPrefix(k, "spark.rpc") ||
		strings.HasPrefix(k, "spark.network") ||
		(strings.HasPrefix(k, "spark.ssl") && !strings.Contains(k, "Password")) ||
		(strings.HasPrefix(k, "spark.") && strings.HasSuffix(k, ".port")) ||
		strings.HasPrefix(k, "spark.port.")
}

func (b *Builder) readMetadata(conf sparkconf.Conf) error {
	b.userLabels = conf.WithPrefix(sparkconf.ExecutorLabelPrefix)
	for k, v := range b.userLabels {
		for _, r := range reservedLabels {
			if k == r {
				return &sparkconf.Error{Key: sparkconf.ExecutorLabelPrefix + k, Value: v,
					Reason: fmt.Sprintf("Custom executor labels cannot contain %s as it is reserved for Spark.", k)}
			}
		}
		if err := validateLabel(sparkconf.ExecutorLabelPrefix+k, k, substituteIDs(v, b.app.AppID, "1")); err != nil {
			return err
		}
	}
	b.annotations = conf.WithPrefix(sparkconf.ExecutorAnnotationPrefix)
	for k := range b.annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return &sparkconf.Error{Key: sparkconf.ExecutorAnnotationPrefix + k, Reason: "invalid annotation key: " + strings.Join(errs, "; ")}
		}
	}
	return nil
}

func validateLabel(confKey, k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return &sparkconf.Error{Key: confKey, Value: v, Reason: "invalid label key: " + strings.Join(errs, "; ")}
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return &sparkconf.Error{Key: confKey, Value: v, Reason: "invalid label value: " + strings.Join(errs, "; ")}
	}
	return nil
}

func firstKey(conf sparkconf.Conf, prefix string) string {
	keys := sparkconf.SortedKeys(conf.WithPrefix(prefix))
	return prefix + keys[0]
}

// PodNamePrefix is the prefix of the application's executor pod names.
func (b *Builder) PodNamePrefix() string { return b.prefix }

// PodName is the name of the executor's pod.
func (b *Builder) PodName(executorID int64) string { return PodName(b.prefix, executorID) }

// ContainerName is the name of the Spark executor container in the pods.
func (b *Builder) ContainerName() string {
	if b.template.container.Name != "" {
		return b.template.container.Name
	}
	return DefaultContainerName
}

// HasProfile reports whether pods may refer to the resource profile.
func (b *Builder) HasProfile(id int32) bool {
	_, ok := b.profiles[id]
	return ok
}

// Build returns the pod of one executor, ready to create in the
// application's namespace. It starts from the pod template (or an empty pod)
// and applies Spark's executor feature steps in Spark's order: the basic
// step, service account, secrets, secret environment variables and local
// directories; Spark's container is appended after the template's other
// containers, as Spark's allocator does.
func (b *Builder) Build(executorID int64, profileID int32) (*corev1.Pod, error) {
	if executorID <= 0 {
		return nil, fmt.Errorf("podspec: executor id %d: must be positive", executorID)
	}
	if b.driverURL == "" {
		return nil, &sparkconf.Error{Key: sparkconf.ExecutorUseDriverPodIP.Key, Value: "true", Reason: "executors must dial the driver pod's IP, but no driver pod was named"}
	}
	res, ok := b.profiles[profileID]
	if !ok {
		return nil, &ProfileError{ProfileID: profileID, Reason: "unknown resource profile: list it in resource_profiles"}
	}
	execID := strconv.FormatInt(executorID, 10)
	pod := b.template.pod.DeepCopy()
	c := b.template.container.DeepCopy()
	name := b.PodName(executorID)

	// Labels: the template's, then the user's, then Spark's own.
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	for k, v := range b.userLabels {
		v = substituteIDs(v, b.app.AppID, execID)
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, &sparkconf.Error{Key: sparkconf.ExecutorLabelPrefix + k, Value: v, Reason: "invalid label value: " + strings.Join(errs, "; ")}
		}
		labels[k] = v
	}
	labels[LabelExecutorID] = execID
	labels[LabelAppID] = b.app.AppID
	labels[LabelRole] = RoleExecutor
	labels[LabelResourceProfileID] = strconv.FormatInt(int64(profileID), 10)
	if b.appNameLabel != "" {
		labels[LabelAppName] = b.appNameLabel
	}
	if b.sparkVersion != "" {
		labels[LabelSparkVersion] = b.sparkVersion
	}
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	for k, v := range b.annotations {
		annotations[k] = substituteIDs(v, b.app.AppID, execID)
	}

	// The basic step: the container.
	if c.Name == "" {
		c.Name = DefaultContainerName
	}
	annotations[ContainerNameAnnotation] = c.Name
	annotations[CheckAllContainersAnnotation] = strconv.FormatBool(b.checkAll)
	c.Image = b.image
	c.ImagePullPolicy = b.pullPolicy
	res.apply(c)
	c.Env = append(c.Env, b.env(execID, res)...)
	c.Ports = nil
	if b.blockManagerPort != 0 {
		c.Ports = []corev1.ContainerPort{{Name: blockManagerPortName, ContainerPort: b.blockManagerPort}}
	}
	c.Args = append(c.Args, "executor")
	if b.configMapName != "" {
		// Spark drops this mount for non-default profiles (the container it
		// keeps for them predates the mount), although the pod still gets
		// the volume; sparkpods mounts it for every profile.
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: sparkConfVolume, MountPath: sparkConfDir})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: sparkConfVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: b.configMapName}},
		}})
	}
	if b.decommission != "" {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{b.decommission}}}}
	}

	// The basic step: the pod.
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	pod.Name = name
	pod.GenerateName = ""
	pod.Namespace = b.app.Namespace
	pod.Labels = labels
	pod.Annotations = annotations
	if d := b.app.Driver; d != nil {
		pod.OwnerReferences = append(pod.OwnerReferences, metav1.OwnerReference{
			APIVersion: "v1", Kind: "Pod", Name: d.Name, UID: d.UID, Controller: ptr.To(true),
		})
	}
	pod.Spec.Hostname = hostname(name)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	for k, v := range b.nodeSelector {
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		pod.Spec.NodeSelector[k] = v
	}
	pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, b.pullSecrets...)
	if b.schedulerName != "" {
		pod.Spec.SchedulerName = b.schedulerName
	}
	switch {
	case b.terminationGrace != nil:
		pod.Spec.TerminationGracePeriodSeconds = ptr.To(*b.terminationGrace)
	case pod.Spec.TerminationGracePeriodSeconds == nil:
		pod.Spec.TerminationGracePeriodSeconds = ptr.To(int64(30))
	}

	// The service account step: the template's account wins, then the
	// executor's, then the driver's; both fields name it, as in Spark.
	switch {
	case pod.Spec.ServiceAccountName != "":
		pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
	case pod.Spec.DeprecatedServiceAccount != "":
		pod.Spec.ServiceAccountName = pod.Spec.DeprecatedServiceAccount
	case b.serviceAccount != "":
		pod.Spec.ServiceAccountName = b.serviceAccount
		pod.Spec.DeprecatedServiceAccount = b.serviceAccount
	}

	// The secrets steps.
	for _, s := range b.secretVolumes {
		vol := s.secret + "-volume"
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s.secret}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: s.path})
	}
	c.Env = append(c.Env, b.secretEnv...)

	// The local directories step.
	b.applyLocalDirs(pod, c, execID)

	pod.Spec.Containers = append(pod.Spec.Containers, *c)
	return pod, nil
}

// env is the basic step's environment, in Spark's order.
func (b *Builder) env(execID string, res *executorResources) []corev1.EnvVar {
	var env []corev1.EnvVar
	if b.sparkUser != "" {
		env = append(env, corev1.EnvVar{Name: "SPARK_USER", Value: b.sparkUser})
	}
	env = append(env,
		corev1.EnvVar{Name: "SPARK_DRIVER_URL", Value: b.driverURL},
		corev1.EnvVar{Name: "SPARK_EXECUTOR_CORES", Value: strconv.FormatInt(res.cores, 10)},
		corev1.EnvVar{Name: "SPARK_EXECUTOR_MEMORY", Value: strconv.FormatInt(res.memoryMiB, 10) + "m"},
		corev1.EnvVar{Name: "SPARK_APPLICATION_ID", Value: b.app.AppID},
		corev1.EnvVar{Name: "SPARK_CONF_DIR", Value: sparkConfDir},
		corev1.EnvVar{Name: "SPARK_EXECUTOR_ID", Value: execID},
		corev1.EnvVar{Name: "SPARK_RESOURCE_PROFILE_ID", Value: strconv.FormatInt(int64(res.profileID), 10)},
	)
	for _, e := range b.executorEnv {
		if e.Name == "SPARK_EXECUTOR_DIRS" {
			e.Value = strings.ReplaceAll(strings.ReplaceAll(e.Value, "SPARK_APPLICATION_ID", b.app.AppID), "SPARK_EXECUTOR_ID", execID)
		}
		env = append(env, e)
	}
	if b.authSecret != "" {
		env = append(env, corev1.EnvVar{Name: "_SPARK_AUTH_SECRET", Value: b.authSecret})
	}
	if b.classPath != "" {
		env = append(env, corev1.EnvVar{Name: "SPARK_CLASSPATH", Value: b.classPath})
	}
	var opts []string
	if b.javaOptions != "" {
		opts = splitCommandString(substituteIDs(b.javaOptions, b.app.AppID, execID))
	}
	opts = append(opts, b.sparkJavaOpts...)
	for i, o := range opts {
		env = append(env, corev1.EnvVar{Name: "SPARK_JAVA_OPT_" + strconv.Itoa(i), Value: o})
	}
	env = append(env,
		corev1.EnvVar{Name: "SPARK_EXECUTOR_POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIP"}}},
		corev1.EnvVar{Name: "SPARK_EXECUTOR_POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
	)
	return env
}

// applyLocalDirs is Spark's LocalDirsFeatureStep: unless the template already
// mounts spark-local-dir-* volumes, every directory of spark.local.dir (or
// one default directory) gets an emptyDir volume, and SPARK_LOCAL_DIRS lists
// them. Spark's default directory has a random UUID; here the UUID is
// derived from the application and executor ids.
func (b *Builder) applyLocalDirs(pod *corev1.Pod, c *corev1.Container, execID string) {
	var dirs []string
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(m.Name, localDirVolumePrefix) {
			dirs = append(dirs, m.MountPath)
		}
	}
	if len(dirs) == 0 {
		dirs = b.localDirs
		if len(dirs) == 0 {
			dirs = []string{defaultLocalDirPattern + nameUUID(b.app.Namespace+"/"+b.app.AppID+"/"+execID)}
		}
		medium := corev1.StorageMediumDefault
		if b.tmpfs {
			medium = corev1.StorageMediumMemory
		}
		for i, d := range dirs {
			vol := localDirVolumePrefix + strconv.Itoa(i+1)
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: d})
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "SPARK_LOCAL_DIRS", Value: strings.Join(dirs, ",")})
}

// nameUUID is a name-based UUID of s (version 8: derived from a SHA-256).
func nameUUID(s string) string {
	sum := sha256.Sum256([]byte(s))
	sum[6] = (sum[6] & 0x0f) | 0x80
	sum[8] = (sum[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}
