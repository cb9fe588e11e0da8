package server

import (
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
