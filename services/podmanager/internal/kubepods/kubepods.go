// Package kubepods is the podmanager's only door to the Kubernetes API: pod
// create, get, list, delete and patch, each timed for the API latency
// metric. It adds no retries and no rate limiting; the caller's fair queue
// owns the write budget.
package kubepods

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// FieldManager names podmanager's writes in managedFields and audit logs.
const FieldManager = "sparkpods-podmanager"

// Config configures a Client.
type Config struct {
	// Kube is the clientset. Required.
	Kube kubernetes.Interface
	// Registerer receives the API latency histogram; nil skips it.
	Registerer prometheus.Registerer
}

// Client makes the podmanager's pod calls.
type Client struct {
	kube    kubernetes.Interface
	latency *prometheus.HistogramVec
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Kube == nil {
		return nil, errors.New("kubepods: Kube is required")
	}
	c := &Client{
		kube: cfg.Kube,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sparkpods",
			Subsystem: "podmanager",
			Name:      "kube_request_duration_seconds",
			Help:      "Latency of the podmanager's Kubernetes API calls, by verb and result (the API status reason, or ok).",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"verb", "result"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.latency); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) observe(verb string, began time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		result = "Canceled"
	default:
		result = string(apierrors.ReasonForError(err))
		if result == "" {
			result = "Error"
		}
	}
	c.latency.WithLabelValues(verb, result).Observe(time.Since(began).Seconds())
}

// Create creates pod in namespace.
func (c *Client) Create(ctx context.Context, namespace string, pod *corev1.Pod) (*corev1.Pod, error) {
	began := time.Now()
	out, err := c.kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
	c.observe("create", began, err)
	return out, err
}

// Get reads one pod.
func (c *Client) Get(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	began := time.Now()
	out, err := c.kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	c.observe("get", began, err)
	return out, err
}

// List reads the pods matching selector, consistently (from etcd, not the
// watch cache), so that a pod created a moment ago is found.
func (c *Client) List(ctx context.Context, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
	began := time.Now()
	out, err := c.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	c.observe("list", began, err)
	if err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Delete deletes the pod with the given name only if it still has uid, so a
// pod re-created under the same name is never deleted by mistake. A nil
// grace period uses the pod's own.
func (c *Client) Delete(ctx context.Context, namespace, name string, uid types.UID, gracePeriodSeconds *int64) error {
	began := time.Now()
	err := c.kube.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions:      &metav1.Preconditions{UID: &uid},
		GracePeriodSeconds: gracePeriodSeconds,
	})
	c.observe("delete", began, err)
	return err
}

// Patch applies a patch of the given type to one pod.
func (c *Client) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte) (*corev1.Pod, error) {
	began := time.Now()
	out, err := c.kube.CoreV1().Pods(namespace).Patch(ctx, name, pt, data, metav1.PatchOptions{FieldManager: FieldManager})
	c.observe("patch", began, err)
	return out, err
}
