package runner

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sparkpods/sparkpods/services/internal/sparkconf"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

func TestConfigForReadsSparkKeysWithSparksUnitsAndDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf sparkconf.Conf
		want appConfig
	}{{
		name: "defaults",
		want: appConfig{interval: time.Second, reconcile: reconcile.Config{
			DeleteOnTermination: true, MissingPodDetectDelta: 30 * time.Second,
			DeletedExecutorsCacheTimeout: 180 * time.Second, MaxNumFailures: 3,
		}},
	}, {
		name: "explicit values, bare numbers in each key's unit",
		conf: sparkconf.Conf{
			"spark.kubernetes.executor.eventProcessingInterval":      "2",
			"spark.kubernetes.executor.deleteOnTermination":          "false",
			"spark.kubernetes.executor.missingPodDetectDelta":        "1500",
			"spark.kubernetes.executor.deletedExecutorsCacheTimeout": "60",
			"spark.executor.maxNumFailures":                          "0",
			"spark.executor.failuresValidityInterval":                "5m",
			"spark.kubernetes.executor.podTemplateContainerName":     "main",
		},
		want: appConfig{interval: 2 * time.Second, reconcile: reconcile.Config{
			MissingPodDetectDelta: 1500 * time.Millisecond, DeletedExecutorsCacheTimeout: time.Minute,
			MaxNumFailures: 0, FailuresValidityInterval: 5 * time.Minute, SparkContainerName: "main",
		}},
	}, {
		name: "limit from executor instances",
		conf: sparkconf.Conf{"spark.executor.instances": "10"},
		want: appConfig{interval: time.Second, reconcile: reconcile.Config{
			DeleteOnTermination: true, MissingPodDetectDelta: 30 * time.Second,
			DeletedExecutorsCacheTimeout: 180 * time.Second, MaxNumFailures: 20,
		}},
	}, {
		name: "limit from dynamic allocation's default maximum",
		conf: sparkconf.Conf{"spark.dynamicAllocation.enabled": "true", "spark.executor.instances": "10"},
		want: appConfig{interval: time.Second, reconcile: reconcile.Config{
			DeleteOnTermination: true, MissingPodDetectDelta: 30 * time.Second,
			DeletedExecutorsCacheTimeout: 180 * time.Second, MaxNumFailures: math.MaxInt32,
		}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configFor("ns", "app", tc.conf)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.reconcile.Namespace, tc.want.reconcile.AppID = "ns", "app"
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestConfigForNamesTheKeyOfABadValue(t *testing.T) {
	_, err := configFor("ns", "app", sparkconf.Conf{"spark.kubernetes.executor.eventProcessingInterval": "0"})
	var bad *sparkconf.Error
	if !errors.As(err, &bad) || bad.Key != "spark.kubernetes.executor.eventProcessingInterval" {
		t.Fatalf("got %v, want an error naming spark.kubernetes.executor.eventProcessingInterval", err)
	}
}
