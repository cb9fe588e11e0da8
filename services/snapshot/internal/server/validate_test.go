package server

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// checkRejection holds every validator to the same contract: an error names a
// field and says something a person can act on.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	var bad *invalidArgumentError
	if !errors.As(err, &bad) {
		t.Fatalf("error %v (%T) is not an invalid-argument error", err, err)
	}
	if bad.field == "" || len(bad.msg) < 10 || !utf8.ValidString(bad.Error()) {
		t.Fatalf("unhelpful error %q", bad.Error())
	}
}

func FuzzValidateWatchSnapshots(f *testing.F) {
	f.Add("", "", int64(0), "", int64(0), int32(0), int64(0), int32(0), false, false)
	f.Add("spark-jobs", "spark-3f2a", int64(17), "a1b2", int64(1), int32(0), int64(10), int32(0), true, true)
	f.Add("Bad_NS", "x/y", int64(-1), "", int64(-1), int32(5), int64(0), int32(1000), true, true)
	f.Add("ns", "", int64(5), "", int64(0), int32(-1), int64(700), int32(0), true, true)
	f.Fuzz(func(t *testing.T, ns, app string, rev int64, epoch string, bs int64, bn int32, hs int64, hn int32, hasBatch, hasHeartbeat bool) {
		req := &sparkpodsv1.WatchSnapshotsRequest{Namespace: ns, AppId: app, StartRevision: rev, Epoch: epoch}
		if hasBatch {
			req.BatchInterval = &durationpb.Duration{Seconds: bs, Nanos: bn}
		}
		if hasHeartbeat {
			req.HeartbeatInterval = &durationpb.Duration{Seconds: hs, Nanos: hn}
		}
		p, err := validateWatchSnapshots(req)
		if err != nil {
			checkRejection(t, err)
			return
		}
		switch {
		case p.batch < 0 || p.batch > maxBatchInterval:
			t.Fatalf("accepted batch interval %v", p.batch)
		case p.heartbeat < minHeartbeatInterval || p.heartbeat > maxHeartbeatInterval:
			t.Fatalf("accepted heartbeat interval %v", p.heartbeat)
		case p.startRevision < 0 || (p.startRevision > 0 && p.epoch == ""):
			t.Fatalf("accepted start revision %d with epoch %q", p.startRevision, p.epoch)
		case p.appID != "" && p.namespace == "":
			t.Fatal("accepted an application without a namespace")
		case len(p.namespace) > 63 || strings.ToLower(p.namespace) != p.namespace:
			t.Fatalf("accepted namespace %q", p.namespace)
		case len(p.appID) > 63:
			t.Fatalf("accepted application id %q", p.appID)
		}
	})
}

func FuzzValidateGetSnapshot(f *testing.F) {
	f.Add("spark-jobs", "spark-3f2a")
	f.Add("", "")
	f.Add("ns", strings.Repeat("a", 64))
	f.Add("-ns", "app.")
	f.Fuzz(func(t *testing.T, ns, app string) {
		key, err := validateGetSnapshot(&sparkpodsv1.GetSnapshotRequest{Namespace: ns, AppId: app})
		if err != nil {
			checkRejection(t, err)
			return
		}
		if key.Namespace != ns || key.AppID != app || ns == "" || app == "" || len(ns) > 63 || len(app) > 63 {
			t.Fatalf("accepted %q/%q as %v", ns, app, key)
		}
	})
}

func FuzzValidateListApplications(f *testing.F) {
	f.Add("", int32(0), "")
	f.Add("ns", int32(10), encodePageToken("ns", appA))
	f.Add("", int32(-4), "garbage")
	f.Add("ns", int32(1<<30), encodePageToken("other", appB))
	f.Fuzz(func(t *testing.T, ns string, size int32, token string) {
		p, err := validateListApplications(&sparkpodsv1.ListApplicationsRequest{Namespace: ns, PageSize: size, PageToken: token})
		if err != nil {
			checkRejection(t, err)
			return
		}
		if p.limit < 1 || p.limit > maxPageSize || p.namespace != ns {
			t.Fatalf("accepted %+v", p)
		}
		if token != "" {
			if last, tokNS, ok := decodePageToken(token); !ok || tokNS != ns || last != p.after {
				t.Fatalf("accepted token %q", token)
			}
		}
	})
}

func TestPageTokenRoundTrip(t *testing.T) {
	tok := encodePageToken("ns", appA)
	last, ns, ok := decodePageToken(tok)
	if !ok || ns != "ns" || last != appA {
		t.Fatalf("decoded %v %q %v", last, ns, ok)
	}
}

func TestDefaults(t *testing.T) {
	p, err := validateWatchSnapshots(&sparkpodsv1.WatchSnapshotsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if p.batch != 0 || p.heartbeat != 10*time.Second {
		t.Fatalf("defaults = %+v", p)
	}
	l, err := validateListApplications(&sparkpodsv1.ListApplicationsRequest{PageSize: 9000})
	if err != nil || l.limit != maxPageSize {
		t.Fatalf("page size 9000 → %d, %v", l.limit, err)
	}
}
