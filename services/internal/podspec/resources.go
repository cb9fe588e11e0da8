package podspec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// DefaultProfileID is Spark's default resource profile.
const DefaultProfileID = 0

// nonJVMMemoryOverheadFactor is the overhead factor Spark's driver propagates
// for Python and R applications when the user set none.
const nonJVMMemoryOverheadFactor = 0.4

// maxMemoryMiB bounds each part of an executor's memory request: 1 PiB,
// far beyond any node, and small enough that their sum in bytes fits the
// int64 of a Kubernetes quantity.
const maxMemoryMiB = 1 << 30

// ProfileError is an invalid resource profile in a request.
type ProfileError struct {
	// ProfileID is the resource profile.
	ProfileID int32
	// Field names what is wrong, for example "executor_memory_mib".
	Field string
	// Reason says why.
	Reason string
}

func (e *ProfileError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("resource profile %d: %s", e.ProfileID, e.Reason)
	}
	return fmt.Sprintf("resource profile %d: %s: %s", e.ProfileID, e.Field, e.Reason)
}

// executorResources is what one resource profile gives each executor, as
// Spark's ResourceProfile.getResourcesForClusterManager computes it.
type executorResources struct {
	profileID   int32
	cores       int64
	memoryMiB   int64
	overheadMiB int64
	totalMiB    int64
	cpuRequest  resource.Quantity
	cpuLimit    *resource.Quantity
	custom      corev1.ResourceList
}

// memorySettings are the application-wide memory settings every profile
// starts from.
type memorySettings struct {
	cores          int64
	memoryMiB      int64
	overheadMiB    int64 // 0: computed
	minOverheadMiB int64
	factor         float64
	offHeapMiB     int64
	pysparkMiB     int64
	isPython       bool
	requestCores   *resource.Quantity
	limitCores     *resource.Quantity
	custom         []*sparkpodsv1.CustomResource
}

func readMemorySettings(conf sparkconf.Conf) (memorySettings, error) {
	var (
		s   memorySettings
		err error
	)
	cores, err := sparkconf.ExecutorCores.Get(conf)
	if err != nil {
		return s, err
	}
	s.cores = int64(cores)
	if s.memoryMiB, err = sparkconf.ExecutorMemory.Get(conf); err != nil {
		return s, err
	}
	if s.overheadMiB, err = sparkconf.ExecutorMemoryOverhead.Get(conf); err != nil {
		return s, err
	}
	if s.minOverheadMiB, err = sparkconf.ExecutorMinMemoryOverhead.Get(conf); err != nil {
		return s, err
	}
	resourceType, err := sparkconf.AppResourceType.Get(conf)
	if err != nil {
		return s, err
	}
	s.isPython = resourceType == "python"
	// Spark reads spark.executor.memoryOverheadFactor only when it is set,
	// and otherwise spark.kubernetes.memoryOverheadFactor, which the driver
	// sets to 0.4 for Python and R applications unless the user set it.
	factor, set, err := sparkconf.ExecutorMemoryOverheadFactor.Lookup(conf)
	if err != nil {
		return s, err
	}
	if !set {
		if factor, set, err = sparkconf.KubernetesMemoryOverheadFactor.Lookup(conf); err != nil {
			return s, err
		}
		if !set && (resourceType == "python" || resourceType == "r") {
			factor = nonJVMMemoryOverheadFactor
		}
	}
	s.factor = factor
	offHeapOn, err := sparkconf.MemoryOffHeapEnabled.Get(conf)
	if err != nil {
		return s, err
	}
	if offHeapOn {
		size, err := sparkconf.MemoryOffHeapSize.Get(conf)
		if err != nil {
			return s, err
		}
		if size <= 0 {
			return s, &sparkconf.Error{Key: sparkconf.MemoryOffHeapSize.Key, Value: conf[sparkconf.MemoryOffHeapSize.Key],
				Reason: "must be greater than 0 when spark.memory.offHeap.enabled is true"}
		}
		s.offHeapMiB = size / int64(sparkconf.MiB)
	}
	if s.pysparkMiB, err = sparkconf.PySparkExecutorMemory.Get(conf); err != nil {
		return s, err
	}
	if s.requestCores, err = quantityEntry(conf, sparkconf.ExecutorRequestCores); err != nil {
		return s, err
	}
	if s.limitCores, err = quantityEntry(conf, sparkconf.ExecutorLimitCores); err != nil {
		return s, err
	}
	s.custom, err = customResourcesFromConf(conf)
	return s, err
}

func quantityEntry(conf sparkconf.Conf, e sparkconf.Entry[string]) (*resource.Quantity, error) {
	raw, ok, err := e.Lookup(conf)
	if err != nil || !ok {
		return nil, err
	}
	q, err := resource.ParseQuantity(strings.TrimSpace(raw))
	if err != nil || q.Sign() <= 0 {
		return nil, &sparkconf.Error{Key: e.Key, Value: raw, Reason: "want a positive Kubernetes CPU quantity, for example 500m or 2"}
	}
	return &q, nil
}

// customResourcesFromConf reads the default profile's custom resources,
// spark.executor.resource.<name>.amount, .vendor and .discoveryScript.
func customResourcesFromConf(conf sparkconf.Conf) ([]*sparkpodsv1.CustomResource, error) {
	byName := map[string]*sparkpodsv1.CustomResource{}
	for key := range conf.WithPrefix(sparkconf.ExecutorResourcePrefix) {
		name, _, ok := strings.Cut(key, ".")
		if !ok || name == "" {
			return nil, &sparkconf.Error{Key: sparkconf.ExecutorResourcePrefix + key, Reason: "want spark.executor.resource.<name>.amount, .vendor or .discoveryScript"}
		}
		byName[name] = &sparkpodsv1.CustomResource{Name: name}
	}
	var out []*sparkpodsv1.CustomResource
	for _, name := range sparkconf.SortedKeys(byName) {
		r := byName[name]
		prefix := sparkconf.ExecutorResourcePrefix + name + "."
		amountKey := prefix + "amount"
		raw, ok := conf[amountKey]
		if !ok {
			return nil, &sparkconf.Error{Key: amountKey, Reason: "required for custom resource " + name}
		}
		amount, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || amount <= 0 {
			return nil, &sparkconf.Error{Key: amountKey, Value: raw, Reason: "want a positive whole number"}
		}
		r.Amount = amount
		r.Vendor = conf[prefix+"vendor"]
		if r.Vendor == "" {
			return nil, &sparkconf.Error{Key: prefix + "vendor",
				Reason: fmt.Sprintf("Resource: %s was requested, but vendor was not specified; want a Kubernetes vendor domain such as nvidia.com", name)}
		}
		r.DiscoveryScript = conf[prefix+"discoveryScript"]
		out = append(out, r)
	}
	return out, nil
}

// resolveProfiles computes the executor resources of the default profile and
// of every listed profile.
func resolveProfiles(conf sparkconf.Conf, profiles []*sparkpodsv1.ResourceProfile) (map[int32]*executorResources, error) {
	settings, err := readMemorySettings(conf)
	if err != nil {
		return nil, err
	}
	out := map[int32]*executorResources{}
	for _, p := range profiles {
		if p == nil {
			continue
		}
		if p.GetId() < 0 {
			return nil, &ProfileError{ProfileID: p.GetId(), Field: "id", Reason: "must not be negative"}
		}
		if _, dup := out[p.GetId()]; dup {
			return nil, &ProfileError{ProfileID: p.GetId(), Reason: "listed twice"}
		}
		r, err := settings.resources(p)
		if err != nil {
			return nil, err
		}
		out[p.GetId()] = r
	}
	if _, ok := out[DefaultProfileID]; !ok {
		r, err := settings.resources(&sparkpodsv1.ResourceProfile{Id: DefaultProfileID})
		if err != nil {
			return nil, err
		}
		out[DefaultProfileID] = r
	}
	return out, nil
}

// resources applies one profile over the application's settings. A zero
// field of the profile means "as configured", as in Spark's default profile.
func (s memorySettings) resources(p *sparkpodsv1.ResourceProfile) (*executorResources, error) {
	id := p.GetId()
	for field, v := range map[string]int64{
		"executor_cores": int64(p.GetExecutorCores()), "executor_memory_mib": p.GetExecutorMemoryMib(),
		"memory_overhead_mib": p.GetMemoryOverheadMib(), "off_heap_memory_mib": p.GetOffHeapMemoryMib(),
		"pyspark_memory_mib": p.GetPysparkMemoryMib(),
	} {
		if v < 0 {
			return nil, &ProfileError{ProfileID: id, Field: field, Reason: "must not be negative"}
		}
	}
	r := &executorResources{profileID: id, cores: s.cores, memoryMiB: s.memoryMiB}
	if p.GetExecutorCores() > 0 {
		r.cores = int64(p.GetExecutorCores())
	}
	if p.GetExecutorMemoryMib() > 0 {
		r.memoryMiB = p.GetExecutorMemoryMib()
	}
	switch {
	case p.GetMemoryOverheadMib() > 0:
		r.overheadMiB = p.GetMemoryOverheadMib()
	case s.overheadMiB > 0:
		r.overheadMiB = s.overheadMiB
	default:
		// Spark truncates factor × memory to an int before taking the max.
		r.overheadMiB = max(int64(s.factor*float64(r.memoryMiB)), s.minOverheadMiB)
	}
	offHeap := s.offHeapMiB
	if p.GetOffHeapMemoryMib() > 0 {
		offHeap = p.GetOffHeapMemoryMib()
	}
	var pyspark int64
	if s.isPython {
		pyspark = s.pysparkMiB
		if p.GetPysparkMemoryMib() > 0 {
			pyspark = p.GetPysparkMemoryMib()
		}
	}
	// Each term is at most maxMemoryMiB, so the sum cannot overflow.
	for _, v := range []int64{r.memoryMiB, r.overheadMiB, offHeap, pyspark} {
		if v > maxMemoryMiB {
			return nil, &ProfileError{ProfileID: id, Field: "memory",
				Reason: fmt.Sprintf("executor memory, overhead, off-heap and PySpark memory must each be at most %d MiB (1 PiB)", maxMemoryMiB)}
		}
	}
	r.totalMiB = r.memoryMiB + r.overheadMiB + offHeap + pyspark

	// Spark applies the Kubernetes-specific core request and limit to the
	// default profile only: custom profiles have no way to override them.
	r.cpuRequest = *resource.NewQuantity(r.cores, resource.DecimalSI)
	custom := p.GetCustomResources()
	if id == DefaultProfileID {
		if s.requestCores != nil {
			r.cpuRequest = s.requestCores.DeepCopy()
		}
		r.cpuLimit = s.limitCores
		if len(custom) == 0 {
			custom = s.custom
		}
	}
	r.custom = corev1.ResourceList{}
	for _, c := range custom {
		if c.GetVendor() == "" {
			return nil, &ProfileError{ProfileID: id, Field: "custom_resources." + c.GetName() + ".vendor",
				Reason: fmt.Sprintf("Resource: %s was requested, but vendor was not specified (spark.executor.resource.%s.vendor)", c.GetName(), c.GetName())}
		}
		if c.GetAmount() <= 0 {
			return nil, &ProfileError{ProfileID: id, Field: "custom_resources." + c.GetName() + ".amount", Reason: "must be greater than 0"}
		}
		name := corev1.ResourceName(c.GetVendor() + "/" + c.GetName())
		r.custom[name] = *resource.NewQuantity(c.GetAmount(), resource.DecimalSI)
	}
	return r, nil
}

// apply sets the container's resources the way BasicExecutorFeatureStep
// does. For the default profile the template's other resource keys stay; for
// other profiles the template's resources are dropped first.
func (r *executorResources) apply(c *corev1.Container) {
	if r.profileID != DefaultProfileID {
		c.Resources = corev1.ResourceRequirements{}
	}
	if c.Resources.Requests == nil {
		c.Resources.Requests = corev1.ResourceList{}
	}
	if c.Resources.Limits == nil {
		c.Resources.Limits = corev1.ResourceList{}
	}
	mem := resource.MustParse(strconv.FormatInt(r.totalMiB, 10) + "Mi")
	c.Resources.Requests[corev1.ResourceMemory] = mem
	c.Resources.Limits[corev1.ResourceMemory] = mem.DeepCopy()
	c.Resources.Requests[corev1.ResourceCPU] = r.cpuRequest.DeepCopy()
	names := make([]string, 0, len(r.custom))
	for n := range r.custom {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		c.Resources.Limits[corev1.ResourceName(n)] = r.custom[corev1.ResourceName(n)].DeepCopy()
	}
	if r.cpuLimit != nil {
		c.Resources.Limits[corev1.ResourceCPU] = r.cpuLimit.DeepCopy()
	}
}
