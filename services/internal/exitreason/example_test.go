package exitreason_test

import (
	"fmt"

	"github.com/sparkpods/sparkpods/services/internal/exitreason"
)

func ExampleDescribe() {
	for _, code := range []int32{0, 52, 137, 143} {
		fmt.Printf("%d%s\n", code, exitreason.Describe(code))
	}
	// Output:
	// 0(success)
	// 52(JVM OOM)
	// 137(SIGKILL, possible container OOM)
	// 143(unexpected)
}

func ExampleForMissingPod() {
	exit := exitreason.ForMissingPod(4, 1_767_366_245_000, 1_767_366_300_000, 30_000)
	fmt.Println(exit.GetExitCode(), exit.GetExitCausedByApp())
	fmt.Println(exit.GetMessage())
	// Output:
	// -1 false
	// The executor with ID 4 (registered at 1767366245000 ms) was not found in the cluster at the polling time (1767366300000 ms) which is after the accepted detect delta time (30000 ms) configured by `spark.kubernetes.executor.missingPodDetectDelta`. The executor may have been deleted but the driver missed the deletion event. Marking this executor as failed.
}
