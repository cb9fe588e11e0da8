package io.sparkpods.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.sparkpods.v1.ExecutorEvent;
import io.sparkpods.v1.ExecutorEventType;
import io.sparkpods.v1.ExecutorState;
import io.sparkpods.v1.LabelExecutorPodsRequest;
import io.sparkpods.v1.LabelExecutorPodsResponse;
import io.sparkpods.v1.PodOutcome;
import io.sparkpods.v1.PodServiceGrpc;
import io.sparkpods.v1.ProfileAllocation;
import java.io.File;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * Tests the client against the real services on the local control plane. deploy/services_test.go
 * starts the control plane and the services, creates a namespace and a driver pod, and runs
 * {@code mvn test} with SPARKPODS_ALLOCATOR, SPARKPODS_LIFECYCLE, SPARKPODS_PODMANAGER,
 * SPARKPODS_NAMESPACE, SPARKPODS_APP_ID and SPARKPODS_DRIVER_POD set, and the credentials:
 * SPARKPODS_TLS_CA_FILE (the CA bundle of the services), SPARKPODS_TLS_CERT_FILE and
 * SPARKPODS_TLS_KEY_FILE (an operator allowed everything), SPARKPODS_PODMANAGER_TLS_CERT_FILE and
 * SPARKPODS_PODMANAGER_TLS_KEY_FILE (an identity the pod manager trusts, to fail an executor)
 * and SPARKPODS_TOKEN_FILE (a ServiceAccount token allowed on applications in
 * SPARKPODS_NAMESPACE only).
 */
public class SchedulerClientTest {
  private static final Duration TIMEOUT = Duration.ofSeconds(90);

  private SchedulerClient client;
  private String ns;
  private String appId;

  private static String env(String name) {
    String v = System.getenv("SPARKPODS_" + name);
    return v == null ? "" : v;
  }

  private static Transport tls() {
    return Transport.tls(new File(env("TLS_CA_FILE")));
  }

  /** The operator, whose certificate is in a group allowed everything on applications. */
  private static Transport operator() {
    return tls().withClientCertificate(new File(env("TLS_CERT_FILE")), new File(env("TLS_KEY_FILE")));
  }

  @Before
  public void connect() throws Exception {
    assumeTrue("run by deploy/services_test.go, which starts the services", !env("ALLOCATOR").isEmpty());
    client = SchedulerClient.connect(env("ALLOCATOR"), env("LIFECYCLE"), operator());
    ns = env("NAMESPACE");
    appId = env("APP_ID");
  }

  @After
  public void close() throws InterruptedException {
    if (client != null) {
      client.close();
    }
  }

  private static void eventually(String what, BooleanSupplier check) throws InterruptedException {
    long deadline = System.nanoTime() + TIMEOUT.toNanos();
    while (!check.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + TIMEOUT + " waiting for " + what);
      }
      Thread.sleep(200);
    }
  }

  private static List<Long> running(Application app) {
    return app.executors().getExecutorsList().stream()
        .filter(e -> e.getState() == ExecutorState.EXECUTOR_STATE_RUNNING)
        .map(e -> e.getExecutorId())
        .sorted()
        .toList();
  }

  /** register, scale, an executor fails, its event (resumed), unregister. */
  @Test
  public void lifeOfAnApplication() throws Exception {
    String driver = env("DRIVER_POD");
    Application app = client.register(ns, appId, driver, Map.of(
        "spark.app.id", appId,
        "spark.kubernetes.namespace", ns,
        "spark.kubernetes.container.image", "spark:4.2.0",
        "spark.kubernetes.executor.podNamePrefix", appId,
        "spark.kubernetes.driver.pod.name", driver,
        "spark.driver.host", appId + "-driver-svc." + ns + ".svc",
        "spark.kubernetes.allocation.batch.delay", "200ms",
        "spark.executor.instances", "0"));

    List<ProfileAllocation> profiles = app.setTargets(2);
    assertEquals(1, profiles.size());
    assertEquals(2, profiles.get(0).getTarget());
    eventually("2 running executors", () -> running(app).size() >= 2);
    long victim = running(app).get(0);

    BlockingQueue<ExecutorEvent> got = new LinkedBlockingQueue<>();
    EventStream stream = app.events(0, Duration.ofMillis(500));
    Thread follower = new Thread(() -> stream.forEachRemaining(got::add));
    follower.setDaemon(true);
    follower.start();

    // PodService accepts only the identities the pod manager trusts.
    ManagedChannel podChannel = tls()
        .withClientCertificate(new File(env("PODMANAGER_TLS_CERT_FILE")), new File(env("PODMANAGER_TLS_KEY_FILE")))
        .channel(env("PODMANAGER"));
    try {
      LabelExecutorPodsResponse resp = PodServiceGrpc.newBlockingStub(podChannel)
          .withDeadlineAfter(30, TimeUnit.SECONDS)
          .labelExecutorPods(LabelExecutorPodsRequest.newBuilder()
              .setNamespace(ns).setAppId(appId).addExecutorIds(victim)
              .putAnnotations("sparkpods.io/exit-code", "137")
              .build());
      assertEquals(PodOutcome.POD_OUTCOME_LABELED, resp.getResults(0).getOutcome());
    } finally {
      podChannel.shutdownNow();
    }

    ExecutorEvent ev = got.poll(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    assertTrue("no executor event", ev != null);
    assertEquals(ExecutorEventType.EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED, ev.getType());
    assertEquals(victim, ev.getExecutorId());
    assertEquals(ExecutorState.EXECUTOR_STATE_FAILED, ev.getState());
    assertEquals(137, ev.getExit().getExitCode());
    assertTrue(ev.getExit().getMessage(),
        ev.getExit().getMessage().contains("The executor with id " + victim + " exited with exit code 137"));
    stream.close();
    follower.join(10_000);
    assertFalse("close did not end the stream", follower.isAlive());
    assertEquals(ev.getSequence(), stream.lastSequence());

    // Resume: from 0 the same event comes again.
    try (EventStream again = app.events(0, Duration.ofMillis(500))) {
      assertEquals(ev.getSequence(), again.next().getSequence());
    }
    assertEquals(ev.getSequence(), app.acknowledge(ev.getSequence()));

    eventually("a replacement executor", () -> {
      List<Long> up = running(app);
      return up.size() >= 2 && !up.contains(victim);
    });

    assertTrue(app.unregister() >= 2);
    StatusRuntimeException err = assertThrows(StatusRuntimeException.class, () -> app.setTargets(1));
    assertEquals(Status.Code.NOT_FOUND, err.getStatus().getCode());
  }

  /** TLS alone is no identity: a call without a client certificate or token is refused. */
  @Test
  public void noClientIdentityIsUnauthenticated() throws Exception {
    try (SchedulerClient anonymous = SchedulerClient.connect(env("ALLOCATOR"), env("LIFECYCLE"), tls())) {
      StatusRuntimeException err = assertThrows(StatusRuntimeException.class,
          () -> anonymous.application(ns, "spark-java-probe").executors());
      assertEquals(Status.Code.UNAUTHENTICATED, err.getStatus().getCode());
      assertTrue(err.getStatus().getDescription(), err.getStatus().getDescription().contains("no credentials"));
    }
  }

  /** A ServiceAccount token is an identity, authorized in its own namespace only. */
  @Test
  public void serviceAccountToken() throws Exception {
    assumeTrue("needs SPARKPODS_TOKEN_FILE", !env("TOKEN_FILE").isEmpty());
    Transport token = tls().withTokenFile(Path.of(env("TOKEN_FILE")));
    try (SchedulerClient driver = SchedulerClient.connect(env("ALLOCATOR"), env("LIFECYCLE"), token)) {
      // Authorized in its namespace: the allocator gets to say the application is unknown.
      StatusRuntimeException err = assertThrows(StatusRuntimeException.class,
          () -> driver.application(ns, "spark-java-probe").executors());
      assertEquals(err.getStatus().toString(), Status.Code.NOT_FOUND, err.getStatus().getCode());
      // Refused elsewhere, naming the namespace.
      err = assertThrows(StatusRuntimeException.class, () -> driver.application("default", "spark-java-probe").executors());
      assertEquals(err.getStatus().toString(), Status.Code.PERMISSION_DENIED, err.getStatus().getCode());
      assertTrue(err.getStatus().getDescription(), err.getStatus().getDescription().contains("in namespace \"default\""));
    }
  }

  @Test
  public void invalidRegistration() {
    StatusRuntimeException err = assertThrows(StatusRuntimeException.class,
        () -> client.register("", "", "", Map.of()));
    assertEquals(Status.Code.INVALID_ARGUMENT, err.getStatus().getCode());
  }
}
