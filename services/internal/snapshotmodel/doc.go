// Package snapshotmodel is Spark's executor pod snapshot for every application
// in a cluster: the mapping from a Kubernetes pod to an executor state
// (Spark's ExecutorPodsSnapshot.toState), the compact per-executor record the
// snapshot service keeps instead of whole pods, and a revisioned Store that
// applies Spark's two update rules to many applications at once.
//
// The two rules, as in Spark's ExecutorPodsSnapshotsStore:
//
//   - an incremental update (a watch event) adds or replaces one executor and
//     never removes one; a deleted pod becomes StateDeleted;
//   - a full replacement (a periodic list) replaces an application's
//     executors with exactly the listed pods and sets its full snapshot time
//     (Spark's fullSnapshotTs), which is what lets the lifecycle service detect
//     executors whose pods went missing.
//
// Every change to any application takes the next value of one store-wide
// revision counter. Values handed out by this package (*Executor, *Snapshot)
// are immutable: callers share them and must not modify them.
package snapshotmodel
