package faults

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// podLedger remembers every executor pod of a namespace it ever saw, deleted ones included,
// through an informer, which lists again by itself after a watch expires or the API server
// restarts (a pod deleted meanwhile then comes as a tombstone, still recorded).
type podLedger struct {
	informer cache.SharedIndexInformer

	mu   sync.Mutex
	uids map[string]map[int64]map[string]bool // app → executor id → pod UIDs
	gone map[string]map[int64]bool            // app → executor ids whose pod was deleted
}

// startPodLedger follows the executor pods of ns until the test ends.
func startPodLedger(t *testing.T, kube kubernetes.Interface, ns string) *podLedger {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "spark-role=executor" }))
	l := &podLedger{
		informer: factory.Core().V1().Pods().Informer(),
		uids:     map[string]map[int64]map[string]bool{},
		gone:     map[string]map[int64]bool{},
	}
	if _, err := l.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.record(obj, false) },
		UpdateFunc: func(_, obj any) { l.record(obj, false) },
		DeleteFunc: func(obj any) { l.record(obj, true) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), l.informer.HasSynced) {
		t.Fatal("the pod ledger's informer did not sync")
	}
	return l
}

func (l *podLedger) record(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	app := p.Labels["spark-app-selector"]
	id, err := strconv.ParseInt(p.Labels["spark-exec-id"], 10, 64)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.uids[app] == nil {
		l.uids[app] = map[int64]map[string]bool{}
		l.gone[app] = map[int64]bool{}
	}
	if l.uids[app][id] == nil {
		l.uids[app][id] = map[string]bool{}
	}
	l.uids[app][id][string(p.UID)] = true
	if deleted {
		l.gone[app][id] = true
	}
}

// created is how many executor ids of app have had a pod.
func (l *podLedger) created(app string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.uids[app])
}

// ended returns the executor ids of app whose pod was deleted.
func (l *podLedger) ended(app string) map[int64]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int64]bool, len(l.gone[app]))
	for id := range l.gone[app] {
		out[id] = true
	}
	return out
}

// reused returns the executor ids of app given to more than one pod.
func (l *podLedger) reused(app string) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []int64
	for id, uids := range l.uids[app] {
		if len(uids) > 1 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// current returns app's executor pods as the informer holds them now.
func (l *podLedger) current(app string) []*corev1.Pod {
	var pods []*corev1.Pod
	for _, obj := range l.informer.GetStore().List() {
		if p, ok := obj.(*corev1.Pod); ok && p.Labels["spark-app-selector"] == app {
			pods = append(pods, p)
		}
	}
	return pods
}

// eventLedger keeps every executor event of one application, by sequence: the client's
// de-duplication is by sequence, so an event delivered again under its own sequence counts
// once, and one reported under two sequences counts twice.
type eventLedger struct {
	mu       sync.Mutex
	bySeq    map[int64]*sparkpodsv1.ExecutorEvent
	received int // events yielded by the client, repeats included
	last     int64
	resumed  int // iterations that ended and were started again
}

func newEventLedger() *eventLedger {
	return &eventLedger{bySeq: map[int64]*sparkpodsv1.ExecutorEvent{}}
}

func (e *eventLedger) add(ev *sparkpodsv1.ExecutorEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.received++
	e.bySeq[ev.GetSequence()] = ev
	e.last = max(e.last, ev.GetSequence())
}

func (e *eventLedger) resumeAfter() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resumed++
	return e.last
}

// verdict compares the events with the executors that ended.
type verdict struct {
	events     int     // distinct sequences received
	repeats    int     // events the client yielded again under a sequence it had yielded
	lost       []int64 // executors that ended without an event
	duplicated []int64 // executors reported under two or more sequences
	wrong      []string
	others     int // ended executors the test did not make exit (deleted by a service, say)
	resumed    int // times the suite started the client's iteration again after it gave up
}

// failed says whether anything in v breaks the exactly-once rule.
func (v verdict) failed() bool {
	return len(v.lost) > 0 || len(v.duplicated) > 0 || len(v.wrong) > 0 || v.repeats > 0
}

// judge checks that every executor in ended has exactly one removal event, with the exit
// code in exits (id → code) for those the test made exit, and that no executor is reported
// twice. An injected exit counts as ended even before its pod is deleted.
func (e *eventLedger) judge(exits map[int64]int32, ended map[int64]bool) verdict {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := verdict{events: len(e.bySeq), repeats: e.received - len(e.bySeq), resumed: e.resumed}
	perExecutor := map[int64][]*sparkpodsv1.ExecutorEvent{}
	for _, ev := range e.bySeq {
		switch ev.GetType() {
		case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED:
			perExecutor[ev.GetExecutorId()] = append(perExecutor[ev.GetExecutorId()], ev)
		case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING:
			// Spark repeats a missing-pod report on every full snapshot until the scheduler
			// unregisters the executor; the suite registers none, so none should come.
			v.wrong = append(v.wrong, fmt.Sprintf("unexpected missing-pod report for executor %d (sequence %d)", ev.GetExecutorId(), ev.GetSequence()))
		default:
			v.wrong = append(v.wrong, fmt.Sprintf("unexpected %v event (sequence %d)", ev.GetType(), ev.GetSequence()))
		}
	}
	for id, evs := range perExecutor {
		if len(evs) > 1 {
			v.duplicated = append(v.duplicated, id)
		}
		code, caused := exits[id]
		if !caused {
			if !ended[id] {
				v.wrong = append(v.wrong, fmt.Sprintf("executor %d reported removed (sequence %d) but its pod was never deleted", id, evs[0].GetSequence()))
			}
			v.others++
			continue
		}
		ev := evs[0]
		if ev.GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED || ev.GetExit().GetExitCode() != code {
			v.wrong = append(v.wrong, fmt.Sprintf("executor %d exited with %d but was reported %v with exit code %d",
				id, code, ev.GetState(), ev.GetExit().GetExitCode()))
		}
	}
	for id := range endedOrExited(exits, ended) {
		if len(perExecutor[id]) == 0 {
			v.lost = append(v.lost, id)
		}
	}
	slices.Sort(v.lost)
	slices.Sort(v.duplicated)
	return v
}

// missingEvents returns how many executors in exits or ended have no event yet.
func (e *eventLedger) missingEvents(exits map[int64]int32, ended map[int64]bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[int64]bool{}
	for _, ev := range e.bySeq {
		seen[ev.GetExecutorId()] = true
	}
	n := 0
	for id := range endedOrExited(exits, ended) {
		if !seen[id] {
			n++
		}
	}
	return n
}

func endedOrExited(exits map[int64]int32, ended map[int64]bool) map[int64]bool {
	all := make(map[int64]bool, len(exits)+len(ended))
	for id := range exits {
		all[id] = true
	}
	for id := range ended {
		all[id] = true
	}
	return all
}
