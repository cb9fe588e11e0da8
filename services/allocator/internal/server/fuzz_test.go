package server

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/validation"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// FuzzValidateRegister feeds the registration validator arbitrary
// namespaces, ids and Spark values: it must never panic, and anything it
// refuses must map to InvalidArgument.
func FuzzValidateRegister(f *testing.F) {
	f.Add("spark", "spark-app-1", "driver", "spark.kubernetes.allocation.batch.size", "20", int32(1))
	f.Add("spark", "spark-app-1", "", "spark.kubernetes.allocation.batch.delay", "50ms", int32(0))
	f.Add("", "x", "d", "spark.executor.instances", "-3", int32(-1))
	f.Add("ns", "Bad_ID", "driver", "spark.dynamicAllocation.executorIdleTimeout", "9999999999999999d", int32(2))
	f.Add("ns", "a", "driver", "spark.kubernetes.allocation.maxPendingPodsPerRp", " 7 ", int32(0))
	f.Fuzz(func(t *testing.T, namespace, appID, driver, key, value string, rp int32) {
		req := &sparkpodsv1.RegisterApplicationRequest{
			Namespace: namespace, AppId: appID, DriverPodName: driver,
			SparkConf: map[string]string{
				"spark.kubernetes.container.image": "spark:4.2.0",
				"spark.driver.host":                "driver-svc",
				key:                                value,
			},
			ResourceProfiles: []*sparkpodsv1.ResourceProfile{{Id: rp}},
		}
		reg, err := validateRegister(req)
		if err != nil {
			assertInvalidArgument(t, err)
			return
		}
		if reg.Namespace != namespace || reg.AppID != appID {
			t.Fatalf("registration %+v does not match the request", reg)
		}
	})
}

// FuzzValidateTargets checks the target validator: what it accepts is in
// range, what it refuses is InvalidArgument.
func FuzzValidateTargets(f *testing.F) {
	f.Add(int32(0), int32(50), int32(1), int32(20))
	f.Add(int32(0), int32(-1), int32(0), int32(2))
	f.Add(int32(-5), int32(1<<30), int32(3), int32(0))
	f.Fuzz(func(t *testing.T, rp1, n1, rp2, n2 int32) {
		targets, err := validateTargets([]*sparkpodsv1.ExecutorTarget{
			{ResourceProfileId: rp1, TotalExecutors: n1}, {ResourceProfileId: rp2, TotalExecutors: n2},
		})
		if err != nil {
			assertInvalidArgument(t, err)
			return
		}
		for _, n := range targets {
			if n < 0 || n > 100_000 {
				t.Fatalf("accepted target %d", n)
			}
		}
	})
}

func assertInvalidArgument(t *testing.T, err error) {
	t.Helper()
	st, _ := status.FromError(toStatus(slog.New(slog.DiscardHandler), "Fuzz", err))
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("validation error %v maps to %v, want InvalidArgument", err, st.Code())
	}
	if errors.Unwrap(err) != nil && st.Message() == "" {
		t.Fatal("empty message")
	}
}

// FuzzValidateApp checks the namespace and application id of every
// SchedulerService request: accepted values are DNS-1123 labels, as pod
// names and the spark-app-selector label need.
func FuzzValidateApp(f *testing.F) {
	f.Add("spark", "spark-app-1")
	f.Add("", "")
	f.Add("Spark", "spark-app-1")
	f.Add("spark", "spark_app.1")
	f.Add("a-very-long-namespace-name-that-goes-on-and-on-past-sixty-three-chars", "x")
	f.Fuzz(func(t *testing.T, namespace, appID string) {
		k, err := validateApp(namespace, appID)
		if err != nil {
			assertInvalidArgument(t, err)
			return
		}
		if k.Namespace != namespace || k.AppID != appID {
			t.Fatalf("key %+v does not match the request", k)
		}
		for _, v := range []string{namespace, appID} {
			if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
				t.Fatalf("accepted %q, not a DNS-1123 label: %v", v, errs)
			}
		}
	})
}

// FuzzValidateExecutorRequests feeds KillExecutors and DecommissionExecutors
// requests (as wire bytes) to the validators the
// server runs on them: they never panic, refuse with InvalidArgument, and
// accept only positive executor ids, at most maxExecutorIDs of them, and a
// grace period within [0, maxGracePeriod].
func FuzzValidateExecutorRequests(f *testing.F) {
	for _, seed := range []*sparkpodsv1.DecommissionExecutorsRequest{
		{Namespace: "spark", AppId: "app-1", ExecutorIds: []int64{1, 2, 2}},
		{Namespace: "spark", AppId: "app-1", ExecutorIds: []int64{3}, GracePeriod: durationpb.New(30 * time.Second)},
		{Namespace: "spark", AppId: "app-1", ExecutorIds: []int64{0, -1}, GracePeriod: &durationpb.Duration{Seconds: -1}},
		{Namespace: "spark", AppId: "app-1", ExecutorIds: []int64{1}, GracePeriod: &durationpb.Duration{Seconds: 1, Nanos: -1}},
		{Namespace: "spark", AppId: "app-1", GracePeriod: durationpb.New(2 * time.Hour)},
	} {
		data, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// KillExecutorsRequest and DecommissionExecutorsRequest share field
		// numbers 1 to 3, so the same bytes exercise both.
		var decommission sparkpodsv1.DecommissionExecutorsRequest
		if proto.Unmarshal(data, &decommission) != nil {
			return
		}
		var kill sparkpodsv1.KillExecutorsRequest
		if err := proto.Unmarshal(data, &kill); err != nil {
			t.Fatalf("bytes that parse as a decommission do not parse as a kill: %v", err)
		}
		for _, ids := range [][]int64{kill.GetExecutorIds(), decommission.GetExecutorIds()} {
			if err := validateExecutorIDs("executor_ids", ids); err != nil {
				assertInvalidArgument(t, err)
				continue
			}
			if len(ids) > maxExecutorIDs {
				t.Fatalf("accepted %d executor ids", len(ids))
			}
			for _, id := range ids {
				if id <= 0 {
					t.Fatalf("accepted executor id %d", id)
				}
			}
		}
		grace, set, err := validateGrace(&decommission)
		if err != nil {
			assertInvalidArgument(t, err)
		} else {
			if set != (decommission.GetGracePeriod() != nil) {
				t.Fatalf("grace period set = %v for %v", set, decommission.GetGracePeriod())
			}
			if grace < 0 || grace > maxGracePeriod || (!set && grace != 0) {
				t.Fatalf("accepted grace period %v (set %v)", grace, set)
			}
		}
	})
}

// FuzzValidateRegistered feeds ReportRegisteredExecutors requests (as wire
// bytes) to their validator: accepted reports name positive executor ids,
// at most maxExecutorIDs, with valid registration times when given.
func FuzzValidateRegistered(f *testing.F) {
	for _, seed := range []*sparkpodsv1.ReportRegisteredExecutorsRequest{
		{Namespace: "spark", AppId: "app-1", Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 1, RegisterTime: timestamppb.New(time.Unix(1_700_000_000, 0))}, {ExecutorId: 2}}},
		{Namespace: "spark", AppId: "app-1", Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 0}}},
		{Namespace: "spark", AppId: "app-1", Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 3, RegisterTime: &timestamppb.Timestamp{Seconds: -1 << 62}}}},
		{Namespace: "spark", AppId: "app-1", Executors: []*sparkpodsv1.RegisteredExecutor{{ExecutorId: 4, RegisterTime: &timestamppb.Timestamp{Nanos: -5}}}},
	} {
		data, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req sparkpodsv1.ReportRegisteredExecutorsRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := validateRegistered(req.GetExecutors()); err != nil {
			assertInvalidArgument(t, err)
			return
		}
		if len(req.GetExecutors()) > maxExecutorIDs {
			t.Fatalf("accepted %d executors", len(req.GetExecutors()))
		}
		for _, e := range req.GetExecutors() {
			if e.GetExecutorId() <= 0 {
				t.Fatalf("accepted executor id %d", e.GetExecutorId())
			}
			if ts := e.GetRegisterTime(); ts != nil && ts.CheckValid() != nil {
				t.Fatalf("accepted register time %v", ts)
			}
		}
	})
}
