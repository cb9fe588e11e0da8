package controlplane

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kwokNodeAnnotation marks the nodes kwok manages (see manageNodesWithAnnotationSelector in
// kwok.yaml).
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// nodeNames returns the names of n fake nodes.
func nodeNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("kwok-node-%d", i)
	}
	return names
}

// createNodes registers the fake nodes. Their capacity is large enough that scheduling never
// fails for lack of room with thousands of Spark-sized executors; a test that wants a pending
// executor holds it with the sparkpods.io/hold-pending annotation instead. They carry no
// taint, so executor pods need no toleration.
func createNodes(ctx context.Context, client kubernetes.Interface, names []string) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("4000Gi"),
		corev1.ResourcePods:   resource.MustParse("10000"),
	}
	for _, name := range names {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
				Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

// nodesReady reports whether every named node has condition Ready=True, which kwok's
// node-initialize stage sets.
func nodesReady(ctx context.Context, client kubernetes.Interface, names []string) bool {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	ready := make(map[string]bool, len(list.Items))
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	for _, name := range names {
		if !ready[name] {
			return false
		}
	}
	return true
}
