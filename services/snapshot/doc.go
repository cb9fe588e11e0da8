// Package snapshot is the sparkpods snapshot service, the one reader of
// executor pods: it serves Spark's ExecutorPodsSnapshot of every application
// in the cluster over gRPC (sparkpods.v1.SnapshotService), from one
// list+watch of pods labelled spark-role=executor instead of one watch and
// one 30-second LIST per Spark driver.
//
// The pieces, in the order data flows:
//
//   - internal/source: a client-go reflector per watched scope (all
//     namespaces, or each of --namespaces) writes straight into the store,
//     keeping only a compact record per pod; a relist after 410 Gone or an
//     API server restart is diffed against the store. A poller lists from
//     the API server's watch cache every --api-polling-interval and applies
//     the list as Spark's full replacement.
//   - services/internal/snapshotmodel: the pod → state mapping and the
//     Store, with one revision counter for all applications, a
//     per-executor resourceVersion guard and a bounded history of changes.
//   - internal/server: GetSnapshot, ListApplications and WatchSnapshots. A
//     watch stream keeps no buffer: it reads the store's history from its
//     last revision, so a slow client gets coalesced changes and one that
//     falls behind the history gets a reset.
//   - internal/app: the composition root; cmd/sparkpods-snapshot: main.
//
// Its Go client is clients/snapshotwatcher.
package snapshot
