package io.sparkpods.client;

import io.grpc.ManagedChannel;
import io.sparkpods.v1.LifecycleServiceGrpc;
import io.sparkpods.v1.RegisterApplicationRequest;
import io.sparkpods.v1.SchedulerServiceGrpc;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A Spark scheduler's client for sparkpods: the allocator's {@code SchedulerService} (register
 * an application, set its executor targets) and the lifecycle service's executor events.
 *
 * <pre>{@code
 * Transport transport = Transport.tls(new File("/etc/sparkpods/ca.crt"))
 *     .withTokenFile(Path.of("/var/run/secrets/kubernetes.io/serviceaccount/token"));
 * try (SchedulerClient client = SchedulerClient.connect("allocator:50052", "lifecycle:50053", transport)) {
 *   Application app = client.register("spark", "spark-1234", "spark-1234-driver", sparkConf);
 *   app.setTargets(4);
 *   try (EventStream events = app.events(0, Duration.ofSeconds(10))) {
 *     while (events.hasNext()) {
 *       ExecutorEvent e = events.next();
 *       app.acknowledge(e.getSequence());
 *     }
 *   }
 * }
 * }</pre>
 *
 * <p>Errors are the {@link io.grpc.StatusRuntimeException} the services return, with their
 * status codes: UNAUTHENTICATED when the caller has no or rejected credentials,
 * PERMISSION_DENIED when its identity has no RBAC grant on applications.sparkpods.io in the
 * namespace. The event stream does not retry them.
 */
public final class SchedulerClient implements AutoCloseable {
  final SchedulerServiceGrpc.SchedulerServiceBlockingStub scheduler;
  final LifecycleServiceGrpc.LifecycleServiceBlockingStub lifecycle;
  final Duration timeout;
  private final ManagedChannel allocatorChannel;
  private final ManagedChannel lifecycleChannel;

  /**
   * Uses existing channels, which the client shuts down on {@link #close()}. {@code timeout}
   * bounds each unary call.
   */
  public SchedulerClient(ManagedChannel allocator, ManagedChannel lifecycle, Duration timeout) {
    this.allocatorChannel = allocator;
    this.lifecycleChannel = lifecycle;
    this.scheduler = SchedulerServiceGrpc.newBlockingStub(allocator);
    this.lifecycle = LifecycleServiceGrpc.newBlockingStub(lifecycle);
    this.timeout = timeout;
  }

  /**
   * Connects to the allocator and the lifecycle service, given as gRPC targets such as {@code
   * "sparkpods-allocator.sparkpods:50052"}, over {@code transport} (TLS with a client
   * certificate or a ServiceAccount token, see {@link Transport}), with keepalive for long-lived
   * event streams and a 30-second timeout per unary call.
   *
   * @throws IOException when a certificate or key file cannot be read or parsed
   */
  public static SchedulerClient connect(String allocatorTarget, String lifecycleTarget, Transport transport)
      throws IOException {
    ManagedChannel allocator = transport.channel(allocatorTarget);
    try {
      return new SchedulerClient(allocator, transport.channel(lifecycleTarget), Duration.ofSeconds(30));
    } catch (IOException | RuntimeException e) {
      allocator.shutdownNow();
      throw e;
    }
  }

  /**
   * Registers an application with its Spark configuration (Spark's own keys and defaults) and
   * returns a handle on it. Registering again with the same configuration is a no-op.
   */
  public Application register(String namespace, String appId, String driverPodName, Map<String, String> sparkConf) {
    scheduler
        .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
        .registerApplication(RegisterApplicationRequest.newBuilder()
            .setNamespace(namespace)
            .setAppId(appId)
            .setDriverPodName(driverPodName)
            .putAllSparkConf(sparkConf)
            .build());
    return new Application(this, namespace, appId);
  }

  /** Returns a handle on an application registered earlier, for example by a previous run. */
  public Application application(String namespace, String appId) {
    return new Application(this, namespace, appId);
  }

  @Override
  public void close() throws InterruptedException {
    allocatorChannel.shutdownNow();
    lifecycleChannel.shutdownNow();
    allocatorChannel.awaitTermination(5, TimeUnit.SECONDS);
    lifecycleChannel.awaitTermination(5, TimeUnit.SECONDS);
  }
}
