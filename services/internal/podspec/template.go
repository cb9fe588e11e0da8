package podspec

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
)

// maxTemplateBytes bounds the pod template a configuration may carry.
const maxTemplateBytes = 1 << 20

// podTemplate is a parsed executor pod template: the pod without Spark's
// container, and Spark's container.
type podTemplate struct {
	pod       *corev1.Pod
	container *corev1.Container
}

// parseTemplate reads the executor pod template from its YAML (or JSON) and
// picks Spark's container the way Spark's KubernetesUtils.selectSparkContainer
// does: the one container named containerName if there is exactly one, else
// the first container; the rest stay in the pod as sidecars. An empty
// template value means no template.
func parseTemplate(content, containerName string) (*podTemplate, error) {
	if strings.TrimSpace(content) == "" {
		return &podTemplate{pod: &corev1.Pod{}, container: &corev1.Container{}}, nil
	}
	key := sparkconf.ExecutorPodTemplateFile.Key
	if len(content) > maxTemplateBytes {
		return nil, &sparkconf.Error{Key: key, Reason: fmt.Sprintf("pod template is %d bytes; the limit is %d", len(content), maxTemplateBytes)}
	}
	if !strings.ContainsAny(strings.TrimSpace(content), "\n:{") {
		return nil, &sparkconf.Error{Key: key, Value: content,
			Reason: "looks like a file path; sparkpods cannot read the driver's files, so pass the template's YAML itself as the value"}
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(content), &pod); err != nil {
		return nil, &sparkconf.Error{Key: key, Reason: "not a valid pod template: " + yamlReason(err)}
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return nil, &sparkconf.Error{Key: key, Reason: fmt.Sprintf("the template is a %s; want a Pod", pod.Kind)}
	}
	if pod.APIVersion != "" && pod.APIVersion != "v1" {
		return nil, &sparkconf.Error{Key: key, Reason: fmt.Sprintf("apiVersion %q; want v1", pod.APIVersion)}
	}
	// Fields the API server owns cannot go into a create.
	pod.ResourceVersion, pod.UID, pod.Generation = "", "", 0
	pod.CreationTimestamp, pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = metav1.Time{}, nil, nil
	pod.ManagedFields = nil
	pod.Status = corev1.PodStatus{}

	t := &podTemplate{pod: &pod}
	containers := pod.Spec.Containers
	idx := -1
	if containerName != "" {
		for i := range containers {
			if containers[i].Name == containerName {
				if idx >= 0 { // Spark takes a named container only when it is unique.
					idx = -1
					break
				}
				idx = i
			}
		}
	}
	if idx < 0 && len(containers) > 0 {
		idx = 0
	}
	if idx < 0 {
		t.container = &corev1.Container{}
		return t, nil
	}
	c := containers[idx]
	t.container = &c
	rest := make([]corev1.Container, 0, len(containers)-1)
	rest = append(rest, containers[:idx]...)
	rest = append(rest, containers[idx+1:]...)
	if len(rest) == 0 {
		rest = nil
	}
	pod.Spec.Containers = rest
	return t, nil
}

// yamlReason shortens a YAML decoding error to the part a user can act on.
func yamlReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error unmarshaling JSON: "); i >= 0 {
		msg = msg[i+len("error unmarshaling JSON: "):]
	}
	return strings.TrimPrefix(msg, "while decoding JSON: ")
}
