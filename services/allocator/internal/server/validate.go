package server

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/allocator/internal/application"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

// Request limits.
const (
	// maxExecutorIDs bounds the executor ids of one request.
	maxExecutorIDs = 10_000
	// maxSparkConfEntries bounds a registration's Spark configuration.
	maxSparkConfEntries = 10_000
	// maxResourceProfiles bounds a registration's resource profiles.
	maxResourceProfiles = 1_000
	// maxGracePeriod bounds a decommission's grace period.
	maxGracePeriod = time.Hour
	// keyNamespace is Spark's namespace key, which must agree with the
	// request's namespace when set.
	keyNamespace = "spark.kubernetes.namespace"
)

func invalid(field, format string, args ...any) error {
	return &application.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// validateApp checks the namespace and application id every request names:
// both must be DNS-1123 labels, the application id because it is the value
// of the spark-app-selector label and part of pod names.
func validateApp(namespace, appID string) (application.Key, error) {
	if namespace == "" {
		return application.Key{}, invalid("namespace", "required: the Kubernetes namespace of the application's pods")
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return application.Key{}, invalid("namespace", "%q is not a namespace name: %s", namespace, strings.Join(errs, "; "))
	}
	if appID == "" {
		return application.Key{}, invalid("app_id", "required: the Spark application id (spark.app.id, the spark-app-selector label)")
	}
	if errs := validation.IsDNS1123Label(appID); len(errs) > 0 {
		return application.Key{}, invalid("app_id", "%q must be a DNS-1123 label, as a spark-app-selector label value and pod name part: %s",
			appID, strings.Join(errs, "; "))
	}
	return application.Key{Namespace: namespace, AppID: appID}, nil
}

// validateRegister checks a registration, the Spark configuration included.
func validateRegister(req *sparkpodsv1.RegisterApplicationRequest) (application.Registration, error) {
	k, err := validateApp(req.GetNamespace(), req.GetAppId())
	if err != nil {
		return application.Registration{}, err
	}
	if name := req.GetDriverPodName(); name != "" {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return application.Registration{}, invalid("driver_pod_name", "%q is not a pod name: %s", name, strings.Join(errs, "; "))
		}
	}
	conf := req.GetSparkConf()
	if len(conf) > maxSparkConfEntries {
		return application.Registration{}, invalid("spark_conf", "%d entries; at most %d", len(conf), maxSparkConfEntries)
	}
	for key := range conf {
		if strings.TrimSpace(key) == "" {
			return application.Registration{}, invalid("spark_conf", "an empty key")
		}
	}
	if ns, ok := conf[keyNamespace]; ok && ns != k.Namespace {
		return application.Registration{}, invalid(keyNamespace, "%q differs from the request's namespace %q", ns, k.Namespace)
	}
	if _, err := application.ParseSettings(conf); err != nil {
		return application.Registration{}, err
	}
	if err := validateProfiles(req.GetResourceProfiles()); err != nil {
		return application.Registration{}, err
	}
	// Refuse now what would make every pod creation fail later: the pod
	// manager builds the pods from the same configuration.
	if _, err := podspec.NewBuilder(podspec.Application{
		Namespace: k.Namespace, AppID: k.AppID, Conf: conf, Profiles: req.GetResourceProfiles(),
	}); err != nil {
		return application.Registration{}, err
	}
	return application.Registration{
		Namespace:        k.Namespace,
		AppID:            k.AppID,
		DriverPodName:    req.GetDriverPodName(),
		SparkConf:        conf,
		ResourceProfiles: req.GetResourceProfiles(),
	}, nil
}

func validateProfiles(profiles []*sparkpodsv1.ResourceProfile) error {
	if len(profiles) > maxResourceProfiles {
		return invalid("resource_profiles", "%d profiles; at most %d", len(profiles), maxResourceProfiles)
	}
	seen := map[int32]bool{}
	for i, p := range profiles {
		field := fmt.Sprintf("resource_profiles[%d]", i)
		switch {
		case p.GetId() < 0:
			return invalid(field+".id", "%d: profile ids are not negative", p.GetId())
		case seen[p.GetId()]:
			return invalid(field+".id", "profile %d is listed twice", p.GetId())
		case p.GetExecutorCores() < 0:
			return invalid(field+".executor_cores", "%d is negative", p.GetExecutorCores())
		case p.GetExecutorMemoryMib() < 0 || p.GetMemoryOverheadMib() < 0 || p.GetOffHeapMemoryMib() < 0 || p.GetPysparkMemoryMib() < 0:
			return invalid(field, "memory sizes must not be negative")
		}
		seen[p.GetId()] = true
		for j, r := range p.GetCustomResources() {
			rf := fmt.Sprintf("%s.custom_resources[%d]", field, j)
			switch {
			case r.GetName() == "":
				return invalid(rf+".name", "required")
			case r.GetAmount() <= 0:
				return invalid(rf+".amount", "%d: must be positive", r.GetAmount())
			case r.GetVendor() == "":
				return invalid(rf+".vendor", "required, as in Spark: the pod requests <vendor>/<name>")
			}
		}
	}
	return nil
}

// validateTargets checks targets and returns them as a map.
func validateTargets(targets []*sparkpodsv1.ExecutorTarget) (map[int32]int32, error) {
	if len(targets) > maxResourceProfiles {
		return nil, invalid("targets", "%d targets; at most %d", len(targets), maxResourceProfiles)
	}
	out := make(map[int32]int32, len(targets))
	for i, t := range targets {
		field := fmt.Sprintf("targets[%d]", i)
		if _, dup := out[t.GetResourceProfileId()]; dup {
			return nil, invalid(field+".resource_profile_id", "profile %d is listed twice", t.GetResourceProfileId())
		}
		if n := t.GetTotalExecutors(); n < 0 || n > application.MaxTarget {
			return nil, invalid(field+".total_executors", "%d: must be between 0 and %d", n, application.MaxTarget)
		}
		out[t.GetResourceProfileId()] = t.GetTotalExecutors()
	}
	return out, nil
}

// validateExecutorIDs checks executor ids: positive, and not too many.
// Duplicates are harmless and allowed.
func validateExecutorIDs(field string, ids []int64) error {
	if len(ids) > maxExecutorIDs {
		return invalid(field, "%d executor ids; at most %d per request", len(ids), maxExecutorIDs)
	}
	for _, id := range ids {
		if id <= 0 {
			return invalid(field, "executor id %d: executor ids are positive", id)
		}
	}
	return nil
}

// validateRegistered checks a report of registered executors.
func validateRegistered(execs []*sparkpodsv1.RegisteredExecutor) error {
	if len(execs) > maxExecutorIDs {
		return invalid("executors", "%d executors; at most %d per report", len(execs), maxExecutorIDs)
	}
	for i, e := range execs {
		if e.GetExecutorId() <= 0 {
			return invalid(fmt.Sprintf("executors[%d].executor_id", i), "%d: executor ids are positive", e.GetExecutorId())
		}
		if t := e.GetRegisterTime(); t != nil && t.CheckValid() != nil {
			return invalid(fmt.Sprintf("executors[%d].register_time", i), "not a valid timestamp")
		}
	}
	return nil
}

// validateGrace checks a decommission grace period; unset is ok (nil, 0).
func validateGrace(req *sparkpodsv1.DecommissionExecutorsRequest) (time.Duration, bool, error) {
	d := req.GetGracePeriod()
	if d == nil {
		return 0, false, nil
	}
	if d.CheckValid() != nil {
		return 0, false, invalid("grace_period", "not a valid duration")
	}
	g := d.AsDuration()
	if g < 0 || g > maxGracePeriod {
		return 0, false, invalid("grace_period", "%v: must be between 0 and %v", g, maxGracePeriod)
	}
	return g, true, nil
}
