package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Spark's labels, as podmanager writes them and the snapshot service reads
// them.
const (
	labelAppID   = "spark-app-selector"
	labelRole    = "spark-role"
	labelExecID  = "spark-exec-id"
	labelProfile = "spark-exec-resourceprofile-id"
	executorSel  = labelRole + "=executor"

	// unscheduled names a scheduler that does not exist: pods that name it
	// stay Pending and unbound, so the API server's and kwok's time goes to
	// the measured writes and not to binding and running the population.
	unscheduled = "sparkpods-bench-no-scheduler"

	// createWorkers is how many creates the benchmark's own writers run at
	// once: podmanager's default --create-concurrency, so that the raw
	// client-go leg of scale-up is the same width as the service.
	createWorkers = 32
)

// executorPod is an executor pod of appID as Spark labels it, left
// unscheduled.
func executorPod(appID string, id int64) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-exec-%d", appID, id),
			Labels: map[string]string{labelAppID: appID, labelRole: "executor",
				labelExecID: strconv.FormatInt(id, 10), labelProfile: "0"},
		},
		Spec: corev1.PodSpec{
			SchedulerName: unscheduled,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "spark-kubernetes-executor", Image: "spark:4.2.0", Args: []string{"executor"},
			}},
		},
	}
}

// driverPod is a driver pod of appID; executors are owned by it.
func driverPod(appID string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   appID + "-driver",
			Labels: map[string]string{labelAppID: appID, labelRole: "driver"},
		},
		Spec: corev1.PodSpec{
			SchedulerName: unscheduled,
			Containers:    []corev1.Container{{Name: "spark-kubernetes-driver", Image: "spark:4.2.0"}},
		},
	}
}

// createPods creates pods with createWorkers parallel writers, calling
// created after each success. It stops at the first error.
func createPods(ctx context.Context, kube kubernetes.Interface, ns string, pods []*corev1.Pod, created func()) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(createWorkers)
	for _, p := range pods {
		g.Go(func() error {
			if _, err := kube.CoreV1().Pods(ns).Create(gctx, p, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod %s/%s: %w", ns, p.Name, err)
			}
			if created != nil {
				created()
			}
			return nil
		})
	}
	return g.Wait()
}

// deletePods deletes every pod in ns matching selector and waits until
// none is left.
func (e *env) deletePods(ctx context.Context, ns, selector string, timeout time.Duration) error {
	zero := int64(0)
	if err := e.kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: selector}); err != nil {
		return fmt.Errorf("delete pods in %s: %w", ns, err)
	}
	return e.waitNoPods(ctx, ns, selector, timeout)
}

// waitNoPods waits until no pod in ns matches selector.
func (e *env) waitNoPods(ctx context.Context, ns, selector string, timeout time.Duration) error {
	return poll(ctx, 500*time.Millisecond, timeout, "pods in "+ns+" gone", func(ctx context.Context) (bool, error) {
		list, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector, Limit: 1})
		if err != nil {
			return false, err
		}
		return len(list.Items) == 0, nil
	})
}

// write is one measured API write: when it was sent and when it returned.
type write struct{ sent, returned time.Time }

// paced runs do(i) for i in [0, n) at rate per second, each in its own
// goroutine so that a slow write does not delay the next, and returns when
// all have returned.
func paced(ctx context.Context, n, rate int, do func(ctx context.Context, i int)) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range n {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		wg.Go(func() { do(ctx, i) })
	}
	wg.Wait()
}

// patchMessage sets the pod's status.message: a status change that touches
// nothing else, which the snapshot service forwards as an upsert.
func patchMessage(ctx context.Context, kube kubernetes.Interface, ns, name, message string) (write, error) {
	patch := fmt.Sprintf(`{"status":{"message":%q}}`, message)
	w := write{sent: time.Now()}
	_, err := kube.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	w.returned = time.Now()
	return w, err
}

// failPod writes the status a kubelet writes when the executor container
// exits with code 1: phase Failed and a terminated container.
func failPod(ctx context.Context, kube kubernetes.Interface, ns, name string) (write, error) {
	now := metav1.Now()
	status := corev1.PodStatus{
		Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "spark-kubernetes-executor", Image: "spark:4.2.0", ImageID: "spark:4.2.0",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", StartedAt: now, FinishedAt: now,
			}},
		}},
	}
	// A full status update would need the current object; a patch of the
	// status alone is one round trip, like the kubelet's.
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return write{}, err
	}
	w := write{sent: time.Now()}
	_, err = kube.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	w.returned = time.Now()
	return w, err
}

// podTimeline follows the pods of one namespace with a watch and records,
// per pod, when it was first seen and when it was first seen Running: the
// observations behind "time until N exist" and "until N are Running".
type podTimeline struct {
	mu      sync.Mutex
	created map[string]time.Time
	running map[string]time.Time
	nCreat  atomic.Int64
	nRun    atomic.Int64
}

// followPods starts an informer on the executor pods of ns and records into
// a new timeline until ctx ends. An informer, not a bare watch: under load
// the API server may close a watch whose consumer falls behind, and the
// informer's reflector resumes it from the last resource version, so no pod
// goes unseen. It returns once the initial list is in.
func followPods(ctx context.Context, kube kubernetes.Interface, ns string) (*podTimeline, error) {
	tl := &podTimeline{created: map[string]time.Time{}, running: map[string]time.Time{}}
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = executorSel }))
	inf := factory.Core().V1().Pods().Informer()
	seen := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			tl.observe(pod, time.Now())
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}); err != nil {
		return nil, fmt.Errorf("follow pods in %s: %w", ns, err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("follow pods in %s: %w", ns, ctx.Err())
	}
	return tl, nil
}

func (tl *podTimeline) observe(pod *corev1.Pod, at time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, seen := tl.created[pod.Name]; !seen {
		tl.created[pod.Name] = at
		tl.nCreat.Add(1)
	}
	if _, seen := tl.running[pod.Name]; !seen && pod.Status.Phase == corev1.PodRunning {
		tl.running[pod.Name] = at
		tl.nRun.Add(1)
	}
}

// times returns the creation and running observations, in no order.
func (tl *podTimeline) times() (created, running []time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, t := range tl.created {
		created = append(created, t)
	}
	for _, t := range tl.running {
		running = append(running, t)
	}
	return created, running
}
