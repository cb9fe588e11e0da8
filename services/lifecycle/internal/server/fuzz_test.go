package server

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// FuzzValidate checks that the validators never panic, refuse only with an
// InvalidArgument error naming a field, and accept only values within the
// limits the proto documents.
func FuzzValidate(f *testing.F) {
	f.Add("spark-jobs", "spark-app-1", int64(0), int64(0), int32(0), int32(0))
	f.Add("spark-jobs", "spark-app-1", int64(7), int64(100_000_000), int32(1), int32(1000))
	f.Add("", "", int64(-1), int64(-1), int32(-1), int32(1001))
	f.Add("Bad_NS", "spark app", int64(1), int64(1<<62), int32(5), int32(0))
	f.Fuzz(func(t *testing.T, ns, appID string, after, heartbeatNanos int64, heartbeatSeconds, pageSize int32) {
		hb := &durationpb.Duration{Seconds: int64(heartbeatSeconds), Nanos: int32(heartbeatNanos % 1e9)}
		w, err := validateWatch(&sparkpodsv1.WatchExecutorEventsRequest{Namespace: ns, AppId: appID, AfterSequence: after, HeartbeatInterval: hb})
		checkRefusal(t, err)
		if err == nil && (w.after < 0 || w.heartbeat < minHeartbeatInterval || w.heartbeat > maxHeartbeatInterval || w.app.Namespace == "" || w.app.AppID == "") {
			t.Fatalf("accepted out of range: %+v", w)
		}
		l, err := validateList(&sparkpodsv1.ListExecutorEventsRequest{Namespace: ns, AppId: appID, AfterSequence: after, PageSize: pageSize})
		checkRefusal(t, err)
		if err == nil && (l.pageSize < 1 || l.pageSize > maxPageSize || l.after < 0) {
			t.Fatalf("accepted out of range: %+v", l)
		}
		_, seq, err := validateAcknowledge(&sparkpodsv1.AcknowledgeExecutorEventsRequest{Namespace: ns, AppId: appID, Sequence: after})
		checkRefusal(t, err)
		if err == nil && seq < 0 {
			t.Fatalf("accepted negative sequence %d", seq)
		}
	})
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var bad *invalidArgumentError
	if !errors.As(err, &bad) || bad.field == "" || bad.msg == "" {
		t.Fatalf("refusal %v is not an InvalidArgument naming a field", err)
	}
}
