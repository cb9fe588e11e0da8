package server

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/internal/podspec"
)

// appSelectorOK builds the selector the service would use, and parses it back
// as the API server would.
func appSelectorOK(appID string, ids ...int64) (labels.Selector, error) {
	sel, err := podspec.AppSelector(appID, ids...)
	if err != nil {
		return nil, err
	}
	return labels.Parse(sel.String())
}

// The fuzz targets feed arbitrary requests (as wire bytes) to the
// validators: they must never panic, and whatever they accept must be safe to
// act on.

func FuzzValidateCreate(f *testing.F) {
	seed, _ := proto.Marshal(createRequest(1, 2))
	f.Add(seed)
	bad, _ := proto.Marshal(&sparkpodsv1.CreateExecutorPodsRequest{Namespace: "x", AppId: "a b", Pods: []*sparkpodsv1.ExecutorPodRequest{{ExecutorId: -1, ResourceProfileId: 3}}})
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req sparkpodsv1.CreateExecutorPodsRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if validateCreate(&req) != nil {
			return
		}
		if _, err := appSelectorOK(req.GetAppId()); err != nil {
			t.Fatalf("accepted app id %q cannot be selected: %v", req.GetAppId(), err)
		}
		seen := map[int64]bool{}
		for _, p := range req.GetPods() {
			if p.GetExecutorId() <= 0 || seen[p.GetExecutorId()] {
				t.Fatalf("accepted executor id %d", p.GetExecutorId())
			}
			seen[p.GetExecutorId()] = true
		}
	})
}

func FuzzValidateDelete(f *testing.F) {
	seed, _ := proto.Marshal(&sparkpodsv1.DeleteExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1, 2}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req sparkpodsv1.DeleteExecutorPodsRequest
		if proto.Unmarshal(data, &req) != nil || validateDelete(&req) != nil {
			return
		}
		if req.GetAllExecutors() == (len(req.GetExecutorIds()) > 0) {
			t.Fatal("accepted a delete with both or neither of executor_ids and all_executors")
		}
		if _, err := appSelectorOK(req.GetAppId(), req.GetExecutorIds()...); err != nil {
			t.Fatalf("accepted request cannot be selected: %v", err)
		}
	})
}

func FuzzValidateLabel(f *testing.F) {
	seed, _ := proto.Marshal(&sparkpodsv1.LabelExecutorPodsRequest{Namespace: ns, AppId: app, ExecutorIds: []int64{1},
		Labels: map[string]string{"spark-exec-inactive": "true"}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req sparkpodsv1.LabelExecutorPodsRequest
		if proto.Unmarshal(data, &req) != nil || validateLabel(&req) != nil {
			return
		}
		for k := range req.GetLabels() {
			switch k {
			case "spark-app-selector", "spark-role", "spark-exec-id", "spark-exec-resourceprofile-id":
				t.Fatalf("accepted a change of identity label %s", k)
			}
		}
	})
}
