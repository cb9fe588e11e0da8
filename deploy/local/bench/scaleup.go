package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Namespaces of scenario 1: one per leg, so that each allocator manages
// only its own applications.
const (
	nsDefaults = "bench-scaleup-defaults"
	nsSpark    = "bench-scaleup-spark"
	nsRaw      = "bench-scaleup-raw"
)

// sparkPacing is what leg (b) adds to the Spark configuration: Spark's
// batch size and an explicit batch delay, which in sparkpods selects
// Spark's pacing (rounds only every batch delay; no round on a new
// snapshot). Its pod manager runs with --create-concurrency=1, so pods are
// created one after another as Spark 4.2's allocator thread creates them.
var sparkPacing = map[string]string{
	"spark.kubernetes.allocation.batch.size":  "20",
	"spark.kubernetes.allocation.batch.delay": "1s",
}

// scaleUp runs scenario 1 for every size: legs (a), (b) and (c) one after
// another at each N, each starting from an empty namespace.
func (e *env) scaleUp(ctx context.Context) ([]scaleUpRun, error) {
	e.log.say("scenario 1: scale-up to %v executors — (a) sparkpods defaults, (b) Spark's pacing, (c) raw client-go", e.sz.ScaleUp)
	for _, ns := range []string{nsDefaults, nsSpark, nsRaw} {
		if err := e.createNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	svcs := e.services("scaleup")
	defer svcs.stop()
	snapshot, err := svcs.start(ctx, "snapshot", "snapshot")
	if err != nil {
		return nil, err
	}
	podman, err := svcs.start(ctx, "podmanager", "podmanager")
	if err != nil {
		return nil, err
	}
	serialPodman, err := svcs.start(ctx, "podmanager-serial", "podmanager", "--create-concurrency=1")
	if err != nil {
		return nil, err
	}
	allocator := func(label, ns, podmanagerAddr string) (sparkpodsv1.SchedulerServiceClient, error) {
		a, err := svcs.start(ctx, label, "allocator", "--snapshot-addr="+snapshot.Addr(), "--podmanager-addr="+podmanagerAddr,
			"--leader-elect=false", "--namespace="+ns)
		if err != nil {
			return nil, err
		}
		conn, err := svcs.dial(a)
		if err != nil {
			return nil, err
		}
		return sparkpodsv1.NewSchedulerServiceClient(conn), nil
	}
	defaults, err := allocator("allocator-defaults", nsDefaults, podman.Addr())
	if err != nil {
		return nil, err
	}
	spark, err := allocator("allocator-spark", nsSpark, serialPodman.Addr())
	if err != nil {
		return nil, err
	}

	var runs []scaleUpRun
	for _, n := range e.sz.ScaleUp {
		run := scaleUpRun{N: n}
		legA, template := e.allocatorLeg(ctx, defaults, nsDefaults, legDefaults, n, nil)
		run.Legs = append(run.Legs, legA)
		run.Legs = append(run.Legs, first(e.allocatorLeg(ctx, spark, nsSpark, legSpark, n, sparkPacing)))
		run.Legs = append(run.Legs, e.rawLeg(ctx, n, template))
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
		runs = append(runs, run)
	}
	return runs, nil
}

func first[A, B any](a A, _ B) A { return a }

// allocatorLeg registers an application with the allocator, sets its
// target to n and measures until n executor pods are Running, then
// unregisters it and waits for its pods to go. It also returns one of the
// pods the allocator created, the template for the raw leg.
func (e *env) allocatorLeg(ctx context.Context, sched sparkpodsv1.SchedulerServiceClient, ns, name string, n int, extra map[string]string) (scaleUpLeg, *corev1.Pod) {
	leg := scaleUpLeg{Name: name}
	appID := fmt.Sprintf("%s-%d", strings.TrimPrefix(ns, "bench-scaleup-"), n)
	fail := func(err error) (scaleUpLeg, *corev1.Pod) {
		leg.Err = err.Error()
		e.log.say("  %s, N=%d: %v", name, n, err)
		return leg, nil
	}
	if _, err := e.kube.CoreV1().Pods(ns).Create(ctx, driverPod(appID), metav1.CreateOptions{}); err != nil {
		return fail(err)
	}
	defer func() {
		_ = e.kube.CoreV1().Pods(ns).Delete(context.Background(), appID+"-driver", metav1.DeleteOptions{})
	}()
	conf := sparkConf(ns, appID)
	maps.Copy(conf, extra)
	if _, err := sched.RegisterApplication(ctx, &sparkpodsv1.RegisterApplicationRequest{
		Namespace: ns, AppId: appID, DriverPodName: appID + "-driver", SparkConf: conf,
	}); err != nil {
		return fail(fmt.Errorf("RegisterApplication: %w", err))
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	tl, err := followPods(watchCtx, e.kube, ns)
	if err != nil {
		return fail(err)
	}
	began := time.Now()
	if _, err := sched.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{Namespace: ns, AppId: appID,
		Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: 0, TotalExecutors: int32(n)}}}); err != nil {
		return fail(fmt.Errorf("SetExecutorTargets: %w", err))
	}
	err = e.waitRunning(ctx, tl, name, n, began)
	leg.measure(tl, began, n)
	if err != nil {
		return fail(err)
	}
	var template *corev1.Pod
	if list, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: executorSel, Limit: 1}); err == nil && len(list.Items) > 0 {
		template = &list.Items[0]
	}
	if _, err := sched.UnregisterApplication(ctx, &sparkpodsv1.UnregisterApplicationRequest{Namespace: ns, AppId: appID}); err != nil {
		return fail(fmt.Errorf("UnregisterApplication: %w", err))
	}
	if err := e.waitNoPods(ctx, ns, executorSel, 5*time.Minute); err != nil {
		return fail(err)
	}
	return leg, template
}

// rawLeg creates n pods like template with a plain client-go program:
// createWorkers parallel creates, no client-side rate limit, no services.
func (e *env) rawLeg(ctx context.Context, n int, template *corev1.Pod) scaleUpLeg {
	leg := scaleUpLeg{Name: legRaw}
	if template == nil {
		leg.Err = "no pod from leg (a) to copy"
		return leg
	}
	appID := fmt.Sprintf("raw-%d", n)
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = rawCopy(template, appID, int64(i+1))
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	tl, err := followPods(watchCtx, e.kube, nsRaw)
	if err != nil {
		leg.Err = err.Error()
		return leg
	}
	began := time.Now()
	created := make(chan error, 1)
	go func() { created <- createPods(ctx, e.kube, nsRaw, pods, nil) }()
	err = e.waitRunning(ctx, tl, legRaw, n, began)
	if cerr := <-created; cerr != nil {
		err = cerr
	}
	leg.measure(tl, began, n)
	if err != nil {
		leg.Err = err.Error()
	}
	if err := e.deletePods(ctx, nsRaw, executorSel, 5*time.Minute); err != nil && leg.Err == "" {
		leg.Err = err.Error()
	}
	return leg
}

// rawCopy is template as a new pod of appID with executor id id: the same
// labels, annotations and spec, without what the API server and the
// scheduler filled in.
func rawCopy(template *corev1.Pod, appID string, id int64) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name:        fmt.Sprintf("%s-exec-%d", appID, id),
		Labels:      maps.Clone(template.Labels),
		Annotations: maps.Clone(template.Annotations),
	}}
	p.Labels[labelAppID] = appID
	p.Labels[labelExecID] = strconv.FormatInt(id, 10)
	template.Spec.DeepCopyInto(&p.Spec)
	p.Spec.NodeName = ""
	// The service-account volume is added again by admission.
	p.Spec.Volumes = slices.DeleteFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return strings.HasPrefix(v.Name, "kube-api-access-") })
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(m.Name, "kube-api-access-") })
	}
	return p
}

// waitRunning waits until n pods of the timeline are Running, printing
// progress.
func (e *env) waitRunning(ctx context.Context, tl *podTimeline, name string, n int, began time.Time) error {
	stop := every(ctx, 5*time.Second, func() {
		e.log.say("  %s, N=%d: %d created, %d running after %s", name, n, tl.nCreat.Load(), tl.nRun.Load(), secs(time.Since(began)))
	})
	defer stop()
	// Spark's pacing needs n/20 rounds of a second; give everything at
	// least twice that.
	timeout := 3*time.Minute + time.Duration(n/10)*time.Second
	return poll(ctx, 20*time.Millisecond, timeout, fmt.Sprintf("%s: %d executors running", name, n), func(context.Context) (bool, error) {
		return tl.nRun.Load() >= int64(n), nil
	})
}

// measure fills the leg's durations from the timeline.
func (leg *scaleUpLeg) measure(tl *podTimeline, began time.Time, n int) {
	created, running := tl.times()
	offsets := func(ts []time.Time) []time.Duration {
		d := make([]time.Duration, len(ts))
		for i, t := range ts {
			d[i] = t.Sub(began)
		}
		slices.Sort(d)
		return d
	}
	c, r := offsets(created), offsets(running)
	if len(c) >= n {
		leg.Exist = c[n-1]
	}
	if len(r) >= n {
		leg.Running = r[n-1]
	}
	leg.RunningAt = r
}

// sparkConf is a Spark configuration for an application in ns that starts
// with no executors.
func sparkConf(ns, appID string) map[string]string {
	return map[string]string{
		"spark.app.id":                            appID,
		"spark.app.name":                          appID,
		"spark.kubernetes.namespace":              ns,
		"spark.kubernetes.container.image":        "spark:4.2.0",
		"spark.kubernetes.executor.podNamePrefix": appID,
		"spark.kubernetes.driver.pod.name":        appID + "-driver",
		"spark.driver.host":                       appID + "-driver-svc." + ns + ".svc",
		"spark.executor.instances":                "0",
	}
}
