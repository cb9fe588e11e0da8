// Package driversim simulates the executor-management side of a Spark
// driver running with dynamic allocation against sparkpods, and is the
// reference for how a real Spark integration (a driver plugin, a scheduler
// in another language) uses the API:
//
//  1. Register the application once with SchedulerService.RegisterApplication,
//     forwarding the driver's whole SparkConf and its resource profiles
//     (Spark's KubernetesClusterSchedulerBackend.start).
//  2. Follow the application's snapshots (SnapshotService.WatchSnapshots,
//     here through clients/snapshotwatcher). An executor whose pod is Running
//     is taken as registered — a real driver registers it when its JVM
//     connects — unless SchedulerService.IsExecutorDeleted says the allocator
//     gave up on it; an executor whose pod ended (succeeded, failed, deleted)
//     is no longer registered, as its JVM would disconnect, but one whose pod
//     vanished stays registered until the lifecycle service reports it
//     missing, as in Spark. Send the whole registered set, with registration times,
//     with ReportRegisteredExecutors whenever it changes.
//  3. Run Spark's ExecutorAllocationManager every 100ms per resource
//     profile: while tasks are backlogged for schedulerBacklogTimeout, raise
//     the target by 1, 2, 4, … every sustainedSchedulerBacklogTimeout, capped
//     by what the tasks need and by maxExecutors; lower it at once to what the
//     tasks need (not below minExecutors) when the load drops; release
//     executors idle for executorIdleTimeout with KillExecutors (or
//     DecommissionExecutors when spark.decommission.enabled), keeping at
//     least the target. Every target change goes out with SetExecutorTargets
//     (Spark's requestTotalExecutors), all profiles at once.
//  4. Follow LifecycleService.WatchExecutorEvents: each event is
//     Spark's removeExecutor with ExecutorExited(exitCode, exitCausedByApp,
//     message). Resume after the last sequence processed, drop repeats
//     (delivery is at-least-once) and acknowledge from time to time.
//  5. Unregister with UnregisterApplication when the application ends
//     (Spark's stop()); the allocator deletes the executor pods.
//
// The workload stands in for Spark's task scheduler: SetTasks says how many
// tasks of a profile are pending or running. Tasks run on the lowest-id
// executors first; the others are idle.
package driversim
