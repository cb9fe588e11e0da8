// Package store keeps what the allocator must not forget across a restart in
// the Kubernetes API: for each registered application one ConfigMap with its
// registration, its executor targets and its executor-id high-water mark.
//
// The ConfigMaps are labelled app.kubernetes.io/managed-by=sparkpods-allocator
// and, when they live in the application's own namespace, owned by the
// driver pod, so that Kubernetes deletes them with the application. The
// allocator is their only writer; a Store serialises nothing itself, the
// caller writes one application's record from one goroutine at a time.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Labels and data keys of the ConfigMaps.
const (
	// LabelManagedBy marks the allocator's ConfigMaps; List selects on it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "sparkpods-allocator"
	// LabelAppSelector is Spark's application label, for kubectl.
	LabelAppSelector = "spark-app-selector"

	keyApplication    = "application.json"
	keyTargets        = "targets.json"
	keyLastExecutorID = "lastExecutorId"
)

// Record is one application's persisted state.
type Record struct {
	// Application is the registration as the scheduler API reports it.
	Application *sparkpodsv1.Application
	// DriverPodUID is the driver pod's UID, for the owner reference; empty
	// without a driver pod.
	DriverPodUID types.UID
	// Targets are the executor targets per resource profile.
	Targets map[int32]int32
	// LastExecutorID is the highest executor id ever issued for the
	// application. It only grows.
	LastExecutorID int64

	// resourceVersion is the ConfigMap version this record was last read or
	// written at, for optimistic concurrency.
	resourceVersion string
}

// Key returns the application's namespace and id.
func (r *Record) Key() (namespace, appID string) {
	return r.Application.GetNamespace(), r.Application.GetAppId()
}

// Config is what New needs.
type Config struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Namespace, when set, holds every application's ConfigMap and is the
	// only namespace List reads (owner references, which cannot cross
	// namespaces, are then set only for applications in that namespace).
	// Empty stores each application's ConfigMap in its own namespace, owned
	// by its driver pod, and List reads every namespace.
	Namespace string
}

// Store reads and writes the records. Safe for concurrent use by different
// applications.
type Store struct {
	client    kubernetes.Interface
	namespace string
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("store: a Kubernetes client is required")
	}
	return &Store{client: cfg.Client, namespace: cfg.Namespace}, nil
}

// ErrGone is returned by Update when the record's ConfigMap no longer exists,
// typically because Kubernetes garbage-collected it with the driver pod.
var ErrGone = errors.New("store: the application's ConfigMap is gone")

// Name returns the ConfigMap name of an application: its id, which is a
// label value, plus a hash of namespace and id, so that names stay unique
// when one namespace holds the records of several namespaces.
func Name(namespace, appID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace + "/" + appID))
	return fmt.Sprintf("sparkpods-alloc-%s-%08x", appID, h.Sum32())
}

func (s *Store) namespaceOf(appNamespace string) string {
	if s.namespace != "" {
		return s.namespace
	}
	return appNamespace
}

// Create writes a new record. If a ConfigMap for the application exists
// already (left by an earlier registration), it is taken over: its
// high-water mark is kept if higher, so executor ids are never reused.
func (s *Store) Create(ctx context.Context, rec *Record) error {
	cm, err := s.configMap(rec)
	if err != nil {
		return err
	}
	created, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	if err == nil {
		rec.resourceVersion = created.ResourceVersion
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	old, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	if prev, err := decode(old); err == nil {
		rec.LastExecutorID = max(rec.LastExecutorID, prev.LastExecutorID)
	}
	rec.resourceVersion = old.ResourceVersion
	return s.Update(ctx, rec)
}

// Update writes rec over its ConfigMap. The allocator is the only writer, so
// a conflict means only that the ConfigMap changed under it (for example a
// label added by hand); Update then writes again over the new version,
// never lowering the high-water mark it finds there.
func (s *Store) Update(ctx context.Context, rec *Record) error {
	for attempt := 0; ; attempt++ {
		cm, err := s.configMap(rec)
		if err != nil {
			return err
		}
		cm.ResourceVersion = rec.resourceVersion
		updated, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		switch {
		case err == nil:
			rec.resourceVersion = updated.ResourceVersion
			return nil
		case apierrors.IsNotFound(err):
			return fmt.Errorf("update ConfigMap %s/%s: %w", cm.Namespace, cm.Name, ErrGone)
		case !apierrors.IsConflict(err) || attempt == 2:
			return fmt.Errorf("update ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		cur, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("get ConfigMap %s/%s: %w", cm.Namespace, cm.Name, ErrGone)
			}
			return fmt.Errorf("get ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		if prev, err := decode(cur); err == nil {
			rec.LastExecutorID = max(rec.LastExecutorID, prev.LastExecutorID)
		}
		rec.resourceVersion = cur.ResourceVersion
	}
}

// Delete removes an application's record; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, namespace, appID string) error {
	ns, name := s.namespaceOf(namespace), Name(namespace, appID)
	err := s.client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ConfigMap %s/%s: %w", ns, name, err)
	}
	return nil
}

// List returns every record, from all namespaces or from the configured
// one. ConfigMaps that do not decode are returned as errors in bad, so the
// caller can log them and go on with the rest.
func (s *Store) List(ctx context.Context) (records []*Record, bad []error, err error) {
	opts := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedByValue}
	for {
		list, err := s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list ConfigMaps: %w", err)
		}
		for i := range list.Items {
			cm := &list.Items[i]
			rec, err := decode(cm)
			if err != nil {
				bad = append(bad, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err))
				continue
			}
			records = append(records, rec)
		}
		if list.Continue == "" {
			return records, bad, nil
		}
		opts.Continue = list.Continue
	}
}

func (s *Store) configMap(rec *Record) (*corev1.ConfigMap, error) {
	app, err := protojson.Marshal(rec.Application)
	if err != nil {
		return nil, fmt.Errorf("encode application: %w", err)
	}
	targets := make(map[string]int32, len(rec.Targets))
	for rp, n := range rec.Targets {
		targets[strconv.Itoa(int(rp))] = n
	}
	tj, err := json.Marshal(targets)
	if err != nil {
		return nil, fmt.Errorf("encode targets: %w", err)
	}
	namespace, appID := rec.Key()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(namespace, appID),
			Namespace: s.namespaceOf(namespace),
			Labels:    map[string]string{LabelManagedBy: ManagedByValue, LabelAppSelector: appID},
		},
		Data: map[string]string{
			keyApplication:    string(app),
			keyTargets:        string(tj),
			keyLastExecutorID: strconv.FormatInt(rec.LastExecutorID, 10),
		},
	}
	// Owner references cannot cross namespaces.
	if cm.Namespace == namespace && rec.DriverPodUID != "" {
		cm.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1",
			Kind:       "Pod",
			Name:       rec.Application.GetDriverPodName(),
			UID:        rec.DriverPodUID,
		}}
	}
	return cm, nil
}

func decode(cm *corev1.ConfigMap) (*Record, error) {
	rec := &Record{Application: &sparkpodsv1.Application{}, Targets: map[int32]int32{}, resourceVersion: cm.ResourceVersion}
	if err := protojson.Unmarshal([]byte(cm.Data[keyApplication]), rec.Application); err != nil {
		return nil, fmt.Errorf("decode %s: %w", keyApplication, err)
	}
	var targets map[string]int32
	if err := json.Unmarshal([]byte(cm.Data[keyTargets]), &targets); err != nil {
		return nil, fmt.Errorf("decode %s: %w", keyTargets, err)
	}
	for k, n := range targets {
		rp, err := strconv.ParseInt(k, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("decode %s: profile %q: %w", keyTargets, k, err)
		}
		rec.Targets[int32(rp)] = n
	}
	id, err := strconv.ParseInt(cm.Data[keyLastExecutorID], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", keyLastExecutorID, err)
	}
	rec.LastExecutorID = id
	for _, o := range cm.OwnerReferences {
		if o.Kind == "Pod" && o.Name == rec.Application.GetDriverPodName() {
			rec.DriverPodUID = o.UID
		}
	}
	return rec, nil
}
