package snapshotmodel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Spark's executor pod labels (Spark's Constants.scala).
const (
	LabelAppID             = "spark-app-selector"
	LabelRole              = "spark-role"
	LabelExecutorID        = "spark-exec-id"
	LabelResourceProfileID = "spark-exec-resourceprofile-id"
	LabelInactive          = "spark-exec-inactive"
	RoleExecutor           = "executor"

	// ExecutorIDPlaceholder is the spark-exec-id value of the pod template the
	// StatefulSet and Deployment allocators share; the driver patches the
	// real id in later, and until then the pod has no snapshot entry.
	ExecutorIDPlaceholder = "EXECID"

	// DefaultExecutorContainerName is Spark's executor container name when
	// spark.kubernetes.executor.podTemplateContainerName is not set.
	DefaultExecutorContainerName = "spark-kubernetes-executor"
)

// ExecutorSelector selects the pods the snapshot covers: Spark's executors
// that are not labelled inactive (Spark's polling and, from 4.1, watch
// sources use the same filter).
const ExecutorSelector = LabelRole + "=" + RoleExecutor + "," + LabelInactive + "!=true"

// Annotations the pod manager stamps on every executor pod it creates, so that
// the mapping uses each application's own Spark settings. Pods a Spark driver
// created itself lack them; Mapping's defaults apply to those.
const (
	// AnnotationExecutorContainerName is the Spark container's name
	// (spark.kubernetes.executor.podTemplateContainerName).
	AnnotationExecutorContainerName = "sparkpods.io/executor-container-name"
	// AnnotationCheckAllContainers is "true" or "false"
	// (spark.kubernetes.executor.checkAllContainers).
	AnnotationCheckAllContainers = "sparkpods.io/check-all-containers"
)

// Reasons a pod gets no snapshot entry. Executor wraps them with the pod's
// name.
var (
	// ErrNoApplication: the pod has no spark-app-selector label, so it belongs
	// to no application.
	ErrNoApplication = errors.New("no " + LabelAppID + " label")
	// ErrNoExecutorID: the pod has no spark-exec-id label, or the EXECID
	// placeholder; Spark skips such pods silently.
	ErrNoExecutorID = errors.New("no executor id yet")
	// ErrInvalidExecutorID: spark-exec-id is not a number. Spark would throw;
	// we skip the pod.
	ErrInvalidExecutorID = errors.New(LabelExecutorID + " is not a number")
)

// maxMessageBytes bounds the free-text fields kept per executor. The kubelet
// already caps a termination message at 4096 bytes; the pod status message
// has no cap of its own.
const maxMessageBytes = 4096

// Mapping turns pods into executor records. Its fields are the service-wide
// defaults for pods that do not carry the per-application annotations.
type Mapping struct {
	// CheckAllContainers is spark.kubernetes.executor.checkAllContainers
	// (true since Spark 4.0).
	CheckAllContainers bool
	// ExecutorContainerName is the Spark container's name; empty means
	// DefaultExecutorContainerName.
	ExecutorContainerName string
	// DecommissionLabel is spark.kubernetes.executor.decommissionLabel; a pod
	// carrying it is reported as decommissioning. Empty disables the check.
	DecommissionLabel string
}

// Executor builds the record of one executor pod. It returns an error
// wrapping ErrNoApplication, ErrNoExecutorID or ErrInvalidExecutorID for a
// pod that gets no entry. It reads pod and never keeps a reference into it.
func (m Mapping) Executor(pod *corev1.Pod) (AppKey, *Executor, error) {
	appID := pod.Labels[LabelAppID]
	if appID == "" {
		return AppKey{}, nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, ErrNoApplication)
	}
	id, err := ExecutorID(pod.Labels)
	if err != nil {
		return AppKey{}, nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	container, checkAll := m.settings(pod)
	state, failedContainer := podState(pod, container, checkAll)

	e := &Executor{
		ID:                id,
		ResourceVersion:   ParseResourceVersion(pod.ResourceVersion),
		CreateTime:        unixNano(&pod.CreationTimestamp),
		DeletionTime:      unixNano(pod.DeletionTimestamp),
		PodName:           strings.Clone(pod.Name),
		PodUID:            strings.Clone(string(pod.UID)),
		Phase:             intern(string(pod.Status.Phase)),
		NodeName:          intern(pod.Spec.NodeName),
		PodIP:             strings.Clone(pod.Status.PodIP),
		StatusReason:      intern(pod.Status.Reason),
		StatusMessage:     truncate(pod.Status.Message),
		Termination:       termination(pod, container, failedContainer),
		ResourceProfileID: resourceProfileID(pod.Labels),
		State:             state,
	}
	if m.DecommissionLabel != "" {
		_, e.Decommissioning = pod.Labels[m.DecommissionLabel]
	}
	if state == StateSucceeded || state == StateFailed {
		e.Containers = containerStatuses(pod.Status.ContainerStatuses)
	}
	return AppKey{Namespace: intern(pod.Namespace), AppID: intern(appID)}, e, nil
}

// settings returns the executor container name and checkAllContainers for
// pod: its annotations when present and well formed, else the defaults.
func (m Mapping) settings(pod *corev1.Pod) (container string, checkAll bool) {
	container = m.ExecutorContainerName
	if v := pod.Annotations[AnnotationExecutorContainerName]; v != "" {
		container = v
	}
	if container == "" {
		container = DefaultExecutorContainerName
	}
	checkAll = m.CheckAllContainers
	switch pod.Annotations[AnnotationCheckAllContainers] {
	case "true":
		checkAll = true
	case "false":
		checkAll = false
	}
	return container, checkAll
}

// ExecutorID reads Spark's executor id from pod labels, as Spark's
// ExecutorPodsSnapshot does: a missing label or the EXECID placeholder gives
// ErrNoExecutorID, a non-numeric value ErrInvalidExecutorID.
func ExecutorID(labels map[string]string) (int64, error) {
	v, ok := labels[LabelExecutorID]
	if !ok || v == ExecutorIDPlaceholder {
		return 0, ErrNoExecutorID
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrInvalidExecutorID, v)
	}
	return id, nil
}

// podState is Spark's toState. When a container other than the executor's
// makes a running pod failed (checkAllContainers), it also returns that
// container's status so the record can say how it ended.
func podState(pod *corev1.Pod, container string, checkAll bool) (State, *corev1.ContainerStatus) {
	// Go has no null status: an empty phase stands for Spark's null status
	// or null phase.
	phase := strings.ToLower(string(pod.Status.Phase))
	if pod.DeletionTimestamp != nil && phase != "terminating" && phase != "running" {
		// Covers the empty phase too, Spark's "status == null" case.
		return StateDeleted, nil
	}
	switch phase {
	case "pending":
		return StatePending, nil
	case "running":
		if checkAll && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			for i := range pod.Status.ContainerStatuses {
				cs := &pod.Status.ContainerStatuses[i]
				if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
					return StateFailed, cs
				}
			}
		}
		if cs := containerStatus(pod, container); cs != nil && cs.State.Terminated != nil {
			if cs.State.Terminated.ExitCode == 0 {
				return StateSucceeded, nil
			}
			return StateFailed, nil
		}
		return StateRunning, nil
	case "failed":
		return StateFailed, nil
	case "succeeded":
		return StateSucceeded, nil
	case "terminating":
		return StateTerminating, nil
	default:
		// "unknown", any phase Kubernetes may add later, and a pod without a
		// status (Spark would throw; SPARK.md §1.2 step 3).
		return StateUnknown, nil
	}
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// termination describes how the executor container ended; when it has not
// but another container failed the pod (checkAllContainers), that one.
func termination(pod *corev1.Pod, container string, failed *corev1.ContainerStatus) *Termination {
	cs := containerStatus(pod, container)
	if cs == nil || cs.State.Terminated == nil {
		cs = failed
	}
	if cs == nil || cs.State.Terminated == nil {
		return nil
	}
	t := cs.State.Terminated
	return &Termination{
		ContainerName: intern(cs.Name),
		ExitCode:      t.ExitCode,
		Reason:        intern(t.Reason),
		Message:       truncate(t.Message),
		FinishTime:    unixNano(&t.FinishedAt),
	}
}

func resourceProfileID(labels map[string]string) int32 {
	v, err := strconv.ParseInt(labels[LabelResourceProfileID], 10, 32)
	if err != nil {
		return 0
	}
	return int32(v)
}

// ParseResourceVersion reads a resourceVersion as the integer the API server
// guarantees it to be (KEP-5504; Spark parses it as an unsigned 64-bit number
// too). It returns 0 for anything else, which the Store treats as "cannot
// order".
func ParseResourceVersion(rv string) uint64 {
	v, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func unixNano(t *metav1.Time) int64 {
	if t == nil || t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// intern returns the one shared copy of s, for values many executors repeat:
// namespaces, application ids, phases, node names, reasons.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

func truncate(s string) string {
	if len(s) <= maxMessageBytes {
		return strings.Clone(s)
	}
	// Cut on a rune boundary.
	cut := maxMessageBytes
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…" // the concatenation copies
}

// Trim returns a copy of pod with only the fields Executor reads, so that a
// cache holding pods before they are mapped (the reflector's initial list)
// stays small. Executor gives the same record for pod and Trim(pod).
func (m Mapping) Trim(pod *corev1.Pod) *corev1.Pod {
	keepLabels := []string{LabelAppID, LabelRole, LabelExecutorID, LabelResourceProfileID, LabelInactive, m.DecommissionLabel}
	t := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         pod.Namespace,
			Name:              pod.Name,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
			Labels:            pick(pod.Labels, keepLabels...),
			Annotations:       pick(pod.Annotations, AnnotationExecutorContainerName, AnnotationCheckAllContainers),
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName, RestartPolicy: pod.Spec.RestartPolicy},
		Status: corev1.PodStatus{
			Phase:   pod.Status.Phase,
			Reason:  pod.Status.Reason,
			Message: pod.Status.Message,
			PodIP:   pod.Status.PodIP,
		},
	}
	if n := len(pod.Status.ContainerStatuses); n > 0 {
		t.Status.ContainerStatuses = make([]corev1.ContainerStatus, n)
		for i, cs := range pod.Status.ContainerStatuses {
			t.Status.ContainerStatuses[i] = corev1.ContainerStatus{Name: cs.Name, Image: cs.Image, State: cs.State}
		}
	}
	return t
}

// containerStatuses reduces a pod's container statuses to what Spark
// prints about them when an executor ends.
func containerStatuses(in []corev1.ContainerStatus) []ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]ContainerStatus, len(in))
	for i, cs := range in {
		c := ContainerStatus{Name: intern(cs.Name), Image: intern(cs.Image)}
		switch st := cs.State; {
		case st.Running != nil:
			c.State = ContainerStateRunning
			c.StartTime = unixNano(&st.Running.StartedAt)
		case st.Terminated != nil:
			c.State = ContainerStateTerminated
			c.StartTime = unixNano(&st.Terminated.StartedAt)
			c.FinishTime = unixNano(&st.Terminated.FinishedAt)
			c.ExitCode = st.Terminated.ExitCode
			c.Reason = intern(st.Terminated.Reason)
		case st.Waiting != nil:
			c.State = ContainerStateWaiting
			c.Reason = intern(st.Waiting.Reason)
		}
		out[i] = c
	}
	return out
}

func pick(m map[string]string, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok && k != "" {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}
