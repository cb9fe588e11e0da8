package store

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func record(ns, app string, last int64) *Record {
	return &Record{
		Application: &sparkpodsv1.Application{
			Namespace: ns, AppId: app, DriverPodName: "driver",
			SparkConf:        map[string]string{"spark.executor.instances": "3"},
			ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 2}},
		},
		DriverPodUID:   "uid-1",
		Targets:        map[int32]int32{0: 3, 1: 2},
		LastExecutorID: last,
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	s, err := New(Config{Client: kube})
	if err != nil {
		t.Fatal(err)
	}
	rec := record("spark", "app-1", 4)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.LastExecutorID = 9
	rec.Targets[0] = 7
	if err := s.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("spark").Get(ctx, Name("spark", "app-1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[LabelManagedBy] != ManagedByValue || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != "uid-1" {
		t.Fatalf("ConfigMap metadata: labels %v, owners %v", cm.Labels, cm.OwnerReferences)
	}
	// A record that does not decode is reported, not fatal.
	if _, err := kube.CoreV1().ConfigMaps("other").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "broken", Namespace: "other", Labels: map[string]string{LabelManagedBy: ManagedByValue}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, bad, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(bad) != 1 {
		t.Fatalf("List = %d records, %d bad; want 1 and 1", len(got), len(bad))
	}
	r := got[0]
	if !proto.Equal(r.Application, rec.Application) || r.LastExecutorID != 9 || r.Targets[0] != 7 || r.Targets[1] != 2 || r.DriverPodUID != "uid-1" {
		t.Fatalf("listed %+v, want %+v", r, rec)
	}
	if err := s.Delete(ctx, "spark", "app-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "spark", "app-1"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Update(ctx, rec); !errors.Is(err, ErrGone) {
		t.Fatalf("Update of a deleted record: %v, want ErrGone", err)
	}
}

func TestCreateTakesOverKeepingTheHigherHighWaterMark(t *testing.T) {
	ctx := context.Background()
	s, _ := New(Config{Client: fake.NewClientset()})
	if err := s.Create(ctx, record("spark", "app-1", 40)); err != nil {
		t.Fatal(err)
	}
	again := record("spark", "app-1", 0)
	if err := s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.LastExecutorID != 40 {
		t.Fatalf("high-water mark after the takeover = %d, want 40", again.LastExecutorID)
	}
}

func TestUpdateRetriesAConflictWithoutLoweringTheHighWaterMark(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	s, _ := New(Config{Client: kube})
	rec := record("spark", "app-1", 5)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Someone else wrote a higher mark; our first update conflicts.
	other := record("spark", "app-1", 50)
	other.resourceVersion = rec.resourceVersion
	if err := s.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	conflicts := 1
	kube.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("changed"))
		}
		return false, nil, nil
	})
	rec.LastExecutorID = 6
	if err := s.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if rec.LastExecutorID != 50 {
		t.Fatalf("high-water mark after the conflict = %d, want 50", rec.LastExecutorID)
	}
}

func TestCentralNamespaceHasNoOwnerReference(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	s, _ := New(Config{Client: kube, Namespace: "sparkpods"})
	if err := s.Create(ctx, record("spark", "app-1", 1)); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("sparkpods").Get(ctx, Name("spark", "app-1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.OwnerReferences) != 0 {
		t.Fatalf("owner references %v across namespaces", cm.OwnerReferences)
	}
	if Name("a-b", "c") == Name("a", "b-c") {
		t.Fatal("names collide across namespaces")
	}
}
