package eventstore

import (
	"context"
	"errors"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeConfigMaps is an in-memory API server for ConfigMaps with the
// optimistic concurrency of the real one: every write bumps a
// resourceVersion, and an update or delete carrying an old one conflicts.
type fakeConfigMaps struct {
	mu     sync.Mutex
	rv     int
	byName map[string]*corev1.ConfigMap // namespace/name
	// failNext, when set, is returned by the next write instead of writing.
	failNext error
	// loseReplyAt, when positive, makes the write with that number (counting
	// from 1 at the time it is set, in writes) apply and then fail, as a
	// write does whose reply the network lost.
	loseReplyAt int
	writes      int
	// listed are the namespaces of every List, "" for all.
	listed []string
}

var configMapsResource = schema.GroupResource{Resource: "configmaps"}

func newFakeConfigMaps() *fakeConfigMaps {
	return &fakeConfigMaps{byName: map[string]*corev1.ConfigMap{}}
}

func (f *fakeConfigMaps) List(_ context.Context, namespace, selector string) ([]corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed = append(f.listed, namespace)
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	var out []corev1.ConfigMap
	for _, cm := range f.byName {
		if (namespace == "" || cm.Namespace == namespace) && sel.Matches(labels.Set(cm.Labels)) {
			out = append(out, *cm.DeepCopy())
		}
	}
	return out, nil
}

func (f *fakeConfigMaps) takeFailure() error {
	err := f.failNext
	f.failNext = nil
	f.writes++
	return err
}

func (f *fakeConfigMaps) Create(_ context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return nil, err
	}
	key := cm.Namespace + "/" + cm.Name
	if _, ok := f.byName[key]; ok {
		return nil, apierrors.NewAlreadyExists(configMapsResource, cm.Name)
	}
	f.rv++
	c := cm.DeepCopy()
	c.ResourceVersion = strconv.Itoa(f.rv)
	f.byName[key] = c
	return c.DeepCopy(), f.lostReply()
}

// lostReply is the error of a write that was applied but whose reply did
// not arrive, when loseReplyAt says this is that write.
func (f *fakeConfigMaps) lostReply() error {
	if f.loseReplyAt == 0 {
		return nil
	}
	if f.loseReplyAt--; f.loseReplyAt > 0 {
		return nil
	}
	return errors.New("http2: client connection lost")
}

func (f *fakeConfigMaps) Update(_ context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return nil, err
	}
	key := cm.Namespace + "/" + cm.Name
	old, ok := f.byName[key]
	if !ok {
		return nil, apierrors.NewNotFound(configMapsResource, cm.Name)
	}
	if old.ResourceVersion != cm.ResourceVersion {
		return nil, apierrors.NewConflict(configMapsResource, cm.Name, nil)
	}
	f.rv++
	c := cm.DeepCopy()
	c.ResourceVersion = strconv.Itoa(f.rv)
	f.byName[key] = c
	return c.DeepCopy(), f.lostReply()
}

func (f *fakeConfigMaps) Delete(_ context.Context, namespace, name, resourceVersion string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return err
	}
	key := namespace + "/" + name
	old, ok := f.byName[key]
	if !ok {
		return apierrors.NewNotFound(configMapsResource, name)
	}
	if resourceVersion != "" && old.ResourceVersion != resourceVersion {
		return apierrors.NewConflict(configMapsResource, name, nil)
	}
	delete(f.byName, key)
	return nil
}

func (f *fakeConfigMaps) sizes() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, cm := range f.byName {
		n := 0
		for _, v := range cm.Data {
			n += len(v)
		}
		out[k] = n
	}
	return out
}
