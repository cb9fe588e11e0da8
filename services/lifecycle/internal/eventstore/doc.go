// Package eventstore keeps each Spark application's executor events in the
// Kubernetes API, so that an event survives the lifecycle service and reaches
// a scheduler client that was away when it happened.
//
// # Objects
//
// An application's events live in its own namespace, in a few ConfigMaps
// called segments, named sparkpods-events-<app>-<hash>-<n> for n = 1, 2, ...
// and labelled app.kubernetes.io/managed-by=sparkpods-lifecycle,
// spark-app-selector=<app id> and sparkpods.io/event-segment=<n>. Each carries
// the annotations sparkpods.io/app-id, sparkpods.io/last-sequence and
// sparkpods.io/acknowledged-sequence, and in its data the events (key
// events.jsonl, one protojson ExecutorEvent a line, in sequence order) and
// the reconcile state of the application when the segment was last written
// (key state.json, see reconcile.State). Segments get an owner reference to
// the driver pod when there is one, so Kubernetes deletes them with the
// application.
//
// # Writes
//
// The segment with the highest n is the tail. Recording events is one write:
// an update of the tail carrying the new events, the new last sequence and
// the new state, made conditional on the tail's resourceVersion; or, when
// the tail would grow past Config.MaxSegmentBytes (256 KiB by default, far
// from the API server's 1 MiB limit), the creation of segment n+1. Events and
// the state that produced them are thus written together, atomically. A
// conflict (someone else wrote the application's segments) reloads the
// application from the API server and tries again. Sequence numbers start at
// 1 and only grow: a full tail is kept, never rewritten with lower numbers,
// and every segment records the last sequence, so the highest one survives
// trimming.
//
// # Acknowledgements and bounds
//
// Acknowledging a sequence writes it to the tail, drops the acknowledged
// events from the tail and deletes the other segments whose events are all
// acknowledged. Unacknowledged events are bounded by
// Config.MaxUnacknowledged (10,000 per application by default): past it, the
// oldest whole segments are deleted even though unacknowledged, counted in
// the dropped-events metric and logged, so that a client that never
// acknowledges cannot make the API server hold an unbounded history. A client
// that resumes from before a dropped segment sees the gap in the sequence
// numbers. The tail is never deleted, so the last sequence and the state stay.
//
// The reconcile state grows with the removed-executors cache (executors
// removed within spark.kubernetes.executor.deletedExecutorsCacheTimeout) and
// with the ids of failed executors, which Spark never forgets either; an
// application stops long before that approaches a segment's size, at
// spark.executor.maxNumFailures.
//
// # Writers
//
// The store expects one lifecycle service writing an application at a time;
// run one replica. A second writer is not corrupting, only wasteful: every
// write is conditional, and a conflict reloads before writing again, so
// sequence numbers are never reused; but each replica would report the same
// executors, under different sequences.
//
// # Restart
//
// Load lists every segment once (one LIST across namespaces) and rebuilds
// each application's events, last and acknowledged sequences and reconcile
// state, so a restarted service continues the numbering and reports nothing
// twice that it had recorded.
package eventstore
