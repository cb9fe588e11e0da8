// Package scheduler is the Go client a Spark scheduler (a driver plugin, a
// batch system, a test) uses to have sparkpods manage its executors. It
// talks to two services: the allocator's SchedulerService (register,
// targets, kill, decommission, unregister) and the lifecycle service's
// LifecycleService (why each executor ended).
//
// Start with Dial, naming both addresses and how to authenticate, then
// register an application and drive it through its handle:
//
//	c, err := scheduler.Dial("sparkpods-allocator.sparkpods:50052", "sparkpods-lifecycle.sparkpods:50053",
//		scheduler.WithTransport(transport.ClientOptions{
//			Files:     transport.Files{CAFile: "/etc/sparkpods/ca.crt"},
//			TokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
//		}))
//	...
//	defer c.Close()
//	app, err := c.Register(ctx, scheduler.AppSpec{
//		Namespace: "spark", AppID: "spark-1234", DriverPodName: "spark-1234-driver",
//		SparkConf: conf, // the driver's whole SparkConf
//	})
//	_, err = app.SetTargets(ctx, map[int32]int32{0: 4}) // Spark's requestTotalExecutors
//	for ev, err := range app.Events(ctx, 0) {            // resumes by itself
//		if err != nil {
//			return err // NotFound, InvalidArgument, … or ctx's error
//		}
//		removeExecutor(ev.GetExecutorId(), ev.GetExit()) // Spark's doRemoveExecutor
//	}
//	_, err = app.Unregister(ctx) // Spark's stop(): the executor pods are deleted
//
// # Unary calls
//
// Each call gets its own timeout (WithCallTimeout, 30s by default) and is
// retried with capped exponential backoff and full jitter when, and only
// when, the service answers Unavailable (it is restarting, or no replica
// holds the allocator's leader lease yet). Every call this package makes is
// safe to repeat: RegisterApplication is idempotent by design (the same
// configuration returns the existing registration); SetExecutorTargets and
// ReportRegisteredExecutors replace state with the same value; Get and List
// read; KillExecutors and DecommissionExecutors of executors already going
// change nothing more; UnregisterApplication again finds the application
// gone, which Unregister takes for the success it was;
// AcknowledgeExecutorEvents never moves the acknowledged sequence back.
//
// Errors keep the service's gRPC status, wrapped with what was being done,
// so callers can branch with status.Code(err).
//
// # Executor events
//
// Application.Events follows LifecycleService.WatchExecutorEvents as a Go
// iterator. Delivery by the service is at-least-once; the iterator makes it
// exactly-once for its caller: it reconnects with backoff and jitter after
// any failure a retry can cure, resumes after the last sequence it yielded,
// and drops events it has already yielded. A stream silent for three
// heartbeat intervals is taken for dead and replaced. NotFound (the
// application is unknown), InvalidArgument, OutOfRange (a sequence beyond
// the last recorded), FailedPrecondition, PermissionDenied, Unauthenticated
// and Unimplemented end the iteration with the error: retrying the same
// request cannot cure them. With WithAcknowledgeInterval the iterator also
// acknowledges the events its caller has finished with (those whose loop
// body returned), at most once per interval, so the service can forget them.
//
// # Transport and identity
//
// The services speak TLS and authenticate every caller, so Dial needs
// WithTransport (a transport.ClientOptions, as the Go flags of
// transport.ClientOptions.BindClientFlags fill it in): the CA bundle that
// signs the services' certificates and either a client certificate (its
// common name is the caller's identity, its organizations the groups) or a
// Kubernetes ServiceAccount token file, sent as a bearer token and checked
// with a TokenReview. A driver pod normally uses its projected
// ServiceAccount token. The services then authorize the identity with a
// SubjectAccessReview on applications.sparkpods.io in the request's
// namespace: registering needs create, targets, kills and acknowledgements
// update, reads get, events watch, unregistering delete. Refusals come back
// as Unauthenticated or PermissionDenied, which are not retried.
// WithTransport(transport.ClientOptions{Insecure: true}) speaks plaintext
// to services run with --insecure (development only). Dial without either
// WithTransport or transport credentials in WithDialOptions fails.
//
// Connections made by Dial send keepalive pings every 20 seconds while a
// stream is open (the services refuse pings more often than every 10
// seconds), so a dead connection under a quiet event stream is noticed in
// about 30 seconds.
package scheduler
