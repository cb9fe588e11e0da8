// Package reconcile is the deterministic core of the lifecycle service: for
// one Spark application, it turns batches of executor snapshots into what
// Spark's ExecutorPodsLifecycleManager would have done with them (SPARK.md
// §5.3 to §5.8), as a list of Actions: the events the scheduler must learn
// (an executor removed, an executor missing, the failure limit exceeded) and
// the pods to delete or label inactive.
//
// A Manager never talks to Kubernetes, the scheduler or the snapshot service,
// and reads time only from its clock, so the same inputs always give the same
// Actions. The service around it feeds it batches, knows which executors the
// scheduler has registered, and carries the Actions out.
package reconcile
