package podspec

import (
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Spark's executor pod labels.
const (
	// LabelAppID is spark-app-selector, the application id.
	LabelAppID = "spark-app-selector"
	// LabelRole is spark-role: "executor" or "driver".
	LabelRole = "spark-role"
	// LabelExecutorID is spark-exec-id, the executor id.
	LabelExecutorID = "spark-exec-id"
	// LabelResourceProfileID is spark-exec-resourceprofile-id.
	LabelResourceProfileID = "spark-exec-resourceprofile-id"
	// LabelAppName is spark-app-name, spark.app.name made a valid label value.
	LabelAppName = "spark-app-name"
	// LabelSparkVersion is spark-version.
	LabelSparkVersion = "spark-version"
	// LabelInactive is spark-exec-inactive, set on finished pods Spark keeps.
	LabelInactive = "spark-exec-inactive"

	// RoleExecutor is the spark-role of executor pods.
	RoleExecutor = "executor"
)

// sparkpods' own annotations on every executor pod it builds.
const (
	// ContainerNameAnnotation names the Spark executor container of the pod:
	// spark-kubernetes-executor, or the template container Spark picked.
	ContainerNameAnnotation = "sparkpods.io/executor-container-name"
	// CheckAllContainersAnnotation carries the application's
	// spark.kubernetes.executor.checkAllContainers, "true" or "false".
	CheckAllContainersAnnotation = "sparkpods.io/check-all-containers"
)

// DefaultContainerName is the name Spark gives the executor container when
// the pod template does not name it.
const DefaultContainerName = "spark-kubernetes-executor"

// IdentityLabels are the labels that say which executor of which application
// a pod is. Spark refuses them as custom labels, and nothing may change them
// on a live pod.
var IdentityLabels = []string{LabelAppID, LabelRole, LabelExecutorID, LabelResourceProfileID}

// reservedLabels are the labels Spark sets itself and refuses as custom
// executor labels (Spark 4.x's preset labels).
var reservedLabels = []string{LabelSparkVersion, LabelExecutorID, LabelAppID, LabelAppName, LabelRole, LabelResourceProfileID}

// ExecutorSelector selects the executor pods of an application, and of the
// given executors only when ids are given.
func ExecutorSelector(appID string, ids ...int64) (labels.Selector, error) {
	sel, err := AppSelector(appID, ids...)
	if err != nil {
		return nil, err
	}
	role, err := labels.NewRequirement(LabelRole, selection.Equals, []string{RoleExecutor})
	if err != nil {
		return nil, fmt.Errorf("label selector: %w", err)
	}
	return sel.Add(*role), nil
}

// AppSelector selects every pod labelled with the application id (executors,
// and also a driver or anything else carrying the label), and only the given
// executor ids when ids are given.
func AppSelector(appID string, ids ...int64) (labels.Selector, error) {
	app, err := labels.NewRequirement(LabelAppID, selection.Equals, []string{appID})
	if err != nil {
		return nil, fmt.Errorf("label selector: %w", err)
	}
	sel := labels.NewSelector().Add(*app)
	if len(ids) > 0 {
		values := make([]string, len(ids))
		for i, id := range ids {
			values[i] = strconv.FormatInt(id, 10)
		}
		in, err := labels.NewRequirement(LabelExecutorID, selection.In, values)
		if err != nil {
			return nil, fmt.Errorf("label selector: %w", err)
		}
		sel = sel.Add(*in)
	}
	return sel, nil
}
