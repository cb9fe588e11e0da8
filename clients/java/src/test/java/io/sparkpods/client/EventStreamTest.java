package io.sparkpods.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;

import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.sparkpods.v1.ExecutorEvent;
import io.sparkpods.v1.LifecycleServiceGrpc;
import io.sparkpods.v1.WatchExecutorEventsRequest;
import io.sparkpods.v1.WatchExecutorEventsResponse;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.After;
import org.junit.Test;

/**
 * Tests EventStream's resume against an in-process LifecycleService that breaks its streams: the
 * real generated server and client, no services needed.
 */
public class EventStreamTest {
  private final List<Server> servers = new ArrayList<>();
  private final List<SchedulerClient> clients = new ArrayList<>();

  @After
  public void stop() throws InterruptedException {
    for (SchedulerClient c : clients) {
      c.close();
    }
    for (Server s : servers) {
      s.shutdownNow().awaitTermination();
    }
  }

  private Application app(LifecycleServiceGrpc.LifecycleServiceImplBase service) throws Exception {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(service).build().start();
    servers.add(server);
    String target = "127.0.0.1:" + server.getPort();
    SchedulerClient client = new SchedulerClient(
        ManagedChannelBuilder.forTarget(target).usePlaintext().build(),
        ManagedChannelBuilder.forTarget(target).usePlaintext().build(),
        Duration.ofSeconds(10));
    clients.add(client);
    return client.application("ns", "app");
  }

  private static WatchExecutorEventsResponse event(long seq) {
    return WatchExecutorEventsResponse.newBuilder()
        .setEvent(ExecutorEvent.newBuilder().setSequence(seq).setExecutorId(seq))
        .build();
  }

  /** Sends 1 and 2, then fails UNAVAILABLE; then sends from the requested sequence again, and one more. */
  static final class Breaking extends LifecycleServiceGrpc.LifecycleServiceImplBase {
    final List<Long> requests = new CopyOnWriteArrayList<>();

    @Override
    public void watchExecutorEvents(WatchExecutorEventsRequest req, StreamObserver<WatchExecutorEventsResponse> out) {
      requests.add(req.getAfterSequence());
      if (requests.size() == 1) {
        out.onNext(event(1));
        out.onNext(event(2));
        out.onError(Status.UNAVAILABLE.withDescription("lifecycle restarting").asRuntimeException());
        return;
      }
      out.onNext(event(req.getAfterSequence()));
      out.onNext(event(req.getAfterSequence() + 1));
      // left open, as a live stream is
    }
  }

  @Test
  public void resumesFromLastSequenceWithoutRepeats() throws Exception {
    Breaking service = new Breaking();
    List<Long> got = new ArrayList<>();
    try (EventStream stream = app(service).events(0, Duration.ofSeconds(1))) {
      while (got.size() < 3 && stream.hasNext()) {
        got.add(stream.next().getSequence());
      }
      assertEquals(List.of(1L, 2L, 3L), got);
      assertEquals(List.of(0L, 2L), service.requests);
      assertEquals(1, stream.resumes());
      assertEquals(3, stream.lastSequence());
    }
  }

  @Test
  public void closeEndsABlockedIteration() throws Exception {
    EventStream stream = app(new Breaking()).events(10, Duration.ofSeconds(1));
    List<Long> got = new CopyOnWriteArrayList<>();
    Thread t = new Thread(() -> stream.forEachRemaining(e -> got.add(e.getSequence())));
    t.start();
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (got.isEmpty() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    stream.close();
    t.join(10_000);
    assertFalse(t.isAlive());
    assertEquals(List.of(11L), got);
  }

  @Test
  public void nonResumableErrorsAreThrown() throws Exception {
    Application app = app(new LifecycleServiceGrpc.LifecycleServiceImplBase() {
      @Override
      public void watchExecutorEvents(WatchExecutorEventsRequest req, StreamObserver<WatchExecutorEventsResponse> out) {
        out.onError(Status.NOT_FOUND.withDescription("no such application").asRuntimeException());
      }
    });
    try (EventStream stream = app.events(0, Duration.ofSeconds(1))) {
      StatusRuntimeException err = assertThrows(StatusRuntimeException.class, stream::hasNext);
      assertEquals(Status.Code.NOT_FOUND, err.getStatus().getCode());
    }
  }
}
