package driversim_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sparkpods/sparkpods/clients/driversim"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// A driver with dynamic allocation in two resource profiles. With no
// services listening at the addresses, registration fails.
func Example() {
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		return conn
	}
	allocator, snapshot, lifecycle := dial("127.0.0.1:1"), dial("127.0.0.1:1"), dial("127.0.0.1:1")
	defer func() { _, _, _ = allocator.Close(), snapshot.Close(), lifecycle.Close() }()

	d, err := driversim.New(driversim.Config{
		Scheduler: allocator, Snapshot: snapshot, Lifecycle: lifecycle,
		Namespace: "spark", AppID: "spark-1234", DriverPodName: "spark-1234-driver",
		SparkConf: map[string]string{
			"spark.kubernetes.container.image":                "apache/spark:4.0.0",
			"spark.driver.host":                               "spark-1234-driver-svc.spark.svc",
			"spark.dynamicAllocation.enabled":                 "true",
			"spark.dynamicAllocation.maxExecutors":            "200",
			"spark.dynamicAllocation.executorIdleTimeout":     "30s",
			"spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
		},
		Profiles: []*sparkpodsv1.ResourceProfile{{Id: 1, ExecutorCores: 4, ExecutorMemoryMib: 8192}},
		OnLoss: func(l driversim.Loss) {
			fmt.Println("executor", l.Event.GetExecutorId(), "lost:", l.Event.GetExit().GetMessage())
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// A stage of 400 one-core tasks, and one of 40 four-core tasks.
	d.SetTasks(0, 400)
	d.SetTasks(1, 40)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = d.Run(ctx) // registers, then runs until ctx ends
	fmt.Println(err != nil)
	// Output: true
}
