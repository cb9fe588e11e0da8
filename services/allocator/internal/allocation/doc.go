// Package allocation is Spark's executor pod allocator (Spark's
// ExecutorPodsAllocator, the "direct" allocator) as pure, deterministic Go: one
// Allocator per application compares the snapshots it is fed with the target
// number of executors per resource profile, asks for new executor pods in
// batches, deletes excess pending ones, and times out requests that never show
// up in a snapshot.
//
// The package does no I/O of its own. The caller feeds it snapshot batches
// (OnNewSnapshots) and the executors registered with the scheduler, reads the
// clock it injected, and carries out pod writes through the PodWriter it
// supplied. Decisions follow Spark 4.2's allocation round step by step; the
// few places where this package deliberately does otherwise are marked
// "Deviation from Spark" in the code.
//
// Persistent volume claims, driver-pod readiness, recovery mode and the
// StatefulSet and Deployment allocators are out of scope.
package allocation
