package source

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sparkpods/sparkpods/services/internal/snapshotmodel"
)

// podSink is the reflector's store: instead of caching pods it maps each one
// to its executor record and hands that to the snapshot store at once, so
// the service holds each executor once, in compact form.
type podSink struct {
	scope      string
	source     *Source
	syncedOnce sync.Once
}

var (
	_ cache.ReflectorStore         = (*podSink)(nil)
	_ cache.TransformingStore      = (*podSink)(nil)
	_ cache.ResourceVersionUpdater = (*podSink)(nil)
)

// Add, Update and Delete are watch events. All three are Spark's updatePod:
// the state comes from the pod object whatever the event type, so a deleted
// pod's final object (which has a deletion timestamp) maps to StateDeleted.
func (p *podSink) Add(obj any) error    { return p.update(obj) }
func (p *podSink) Update(obj any) error { return p.update(obj) }
func (p *podSink) Delete(obj any) error { return p.update(obj) }

func (p *podSink) update(obj any) error {
	pod, err := asPod(obj)
	if err != nil {
		return err
	}
	en, ok := p.source.entry(pod)
	if !ok {
		return nil
	}
	if p.source.store.Update(en.App, en.Executor) {
		p.source.metrics.events.WithLabelValues("applied").Inc()
	} else {
		p.source.metrics.events.WithLabelValues("stale").Inc()
	}
	return nil
}

// Replace is the reflector's (re)list: at startup, and whenever the watch
// had to start over.
func (p *podSink) Replace(list []any, resourceVersion string) error {
	entries := make([]snapshotmodel.Entry, 0, len(list))
	for _, obj := range list {
		pod, err := asPod(obj)
		if err != nil {
			return err
		}
		if en, ok := p.source.entry(pod); ok {
			entries = append(entries, en)
		}
	}
	rv := snapshotmodel.ParseResourceVersion(resourceVersion)
	changed := p.source.store.Relist(p.scope, entries, rv)
	p.source.seen(rv)
	p.source.metrics.relists.Inc()
	p.source.logger.Info("listed executor pods", "namespace", p.scope, "pods", len(list),
		"resourceVersion", resourceVersion, "changedApplications", changed)
	p.syncedOnce.Do(p.source.markSynced)
	return nil
}

// Resync is for informers that re-deliver their cache; there is none here.
func (p *podSink) Resync() error { return nil }

// Transformer trims pods the reflector holds while it streams its initial
// list, before Replace maps them.
func (p *podSink) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			return p.source.mapping.Trim(pod), nil
		}
		return obj, nil
	}
}

// UpdateResourceVersion records how far the watch has got, bookmarks
// included.
func (p *podSink) UpdateResourceVersion(resourceVersion string) {
	p.source.seen(snapshotmodel.ParseResourceVersion(resourceVersion))
}

func asPod(obj any) (*corev1.Pod, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o, nil
	case cache.DeletedFinalStateUnknown:
		return asPod(o.Obj)
	default:
		return nil, fmt.Errorf("executor pods: unexpected object %T", obj)
	}
}
