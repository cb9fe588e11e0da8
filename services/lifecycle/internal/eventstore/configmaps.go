package eventstore

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ConfigMaps is the part of the Kubernetes API the store uses.
type ConfigMaps interface {
	// List returns the ConfigMaps matching selector in namespace ("" for all).
	List(ctx context.Context, namespace, selector string) ([]corev1.ConfigMap, error)
	// Create creates cm; an existing name is an AlreadyExists error.
	Create(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error)
	// Update replaces cm if its resourceVersion is current, and is a
	// Conflict error otherwise.
	Update(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error)
	// Delete deletes the ConfigMap if its resourceVersion is still
	// resourceVersion; a missing ConfigMap is a NotFound error.
	Delete(ctx context.Context, namespace, name, resourceVersion string) error
}

// KubeConfigMaps returns ConfigMaps backed by a Kubernetes client.
func KubeConfigMaps(client kubernetes.Interface) ConfigMaps { return kubeConfigMaps{client} }

type kubeConfigMaps struct{ client kubernetes.Interface }

const fieldManager = "sparkpods-lifecycle"

func (k kubeConfigMaps) List(ctx context.Context, namespace, selector string) ([]corev1.ConfigMap, error) {
	var out []corev1.ConfigMap
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 500}
	for {
		list, err := k.client.CoreV1().ConfigMaps(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

func (k kubeConfigMaps) Create(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	return k.client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
}

func (k kubeConfigMaps) Update(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	return k.client.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
}

func (k kubeConfigMaps) Delete(ctx context.Context, namespace, name, resourceVersion string) error {
	return k.client.CoreV1().ConfigMaps(namespace).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{ResourceVersion: &resourceVersion},
	})
}
