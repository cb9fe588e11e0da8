package io.sparkpods.client;

import io.grpc.stub.AbstractBlockingStub;
import io.sparkpods.v1.AcknowledgeExecutorEventsRequest;
import io.sparkpods.v1.ExecutorTarget;
import io.sparkpods.v1.KillExecutorsRequest;
import io.sparkpods.v1.ListExecutorsRequest;
import io.sparkpods.v1.ListExecutorsResponse;
import io.sparkpods.v1.ProfileAllocation;
import io.sparkpods.v1.SetExecutorTargetsRequest;
import io.sparkpods.v1.UnregisterApplicationRequest;
import io.sparkpods.v1.WatchExecutorEventsRequest;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/** One registered application: its targets, executors and events. */
public final class Application {
  private final SchedulerClient client;
  private final String namespace;
  private final String appId;

  Application(SchedulerClient client, String namespace, String appId) {
    this.client = client;
    this.namespace = namespace;
    this.appId = appId;
  }

  public String namespace() {
    return namespace;
  }

  public String appId() {
    return appId;
  }

  private <S extends AbstractBlockingStub<S>> S timed(S stub) {
    return stub.withDeadlineAfter(client.timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Sets the total number of executors of the default resource profile (0). */
  public List<ProfileAllocation> setTargets(int totalExecutors) {
    return setTargets(Map.of(0, totalExecutors));
  }

  /**
   * Sets the total number of executors wanted per resource profile id (Spark's
   * requestTotalExecutors). Profiles left out keep their target. Returns the allocation state per
   * profile.
   */
  public List<ProfileAllocation> setTargets(Map<Integer, Integer> totals) {
    SetExecutorTargetsRequest.Builder req = SetExecutorTargetsRequest.newBuilder().setNamespace(namespace).setAppId(appId);
    new TreeMap<>(totals).forEach((rp, n) ->
        req.addTargets(ExecutorTarget.newBuilder().setResourceProfileId(rp).setTotalExecutors(n)));
    return timed(client.scheduler).setExecutorTargets(req.build()).getProfilesList();
  }

  /** Returns the application's executors as the allocator sees them. */
  public ListExecutorsResponse executors() {
    return timed(client.scheduler).listExecutors(
        ListExecutorsRequest.newBuilder().setNamespace(namespace).setAppId(appId).build());
  }

  /** Kills executors (deletes their pods); returns the ids accepted. */
  public List<Long> kill(Iterable<Long> executorIds) {
    return timed(client.scheduler).killExecutors(KillExecutorsRequest.newBuilder()
        .setNamespace(namespace).setAppId(appId).addAllExecutorIds(executorIds).build())
        .getAcceptedExecutorIdsList();
  }

  /**
   * Stops managing the application and, unless spark.kubernetes.executor.deleteOnTermination is
   * false, deletes its executor pods; returns how many pod deletions were requested.
   */
  public int unregister() {
    return timed(client.scheduler).unregisterApplication(
        UnregisterApplicationRequest.newBuilder().setNamespace(namespace).setAppId(appId).build())
        .getDeletedPods();
  }

  /** Tells the lifecycle service every event up to {@code sequence} is handled. */
  public long acknowledge(long sequence) {
    return timed(client.lifecycle).acknowledgeExecutorEvents(AcknowledgeExecutorEventsRequest.newBuilder()
        .setNamespace(namespace).setAppId(appId).setSequence(sequence).build())
        .getAcknowledgedSequence();
  }

  /**
   * Follows the application's executor events with a sequence greater than {@code afterSequence}
   * (0: every event still recorded). The stream resumes by itself after the lifecycle service
   * restarts or the connection breaks, from the last sequence it returned, and never returns a
   * sequence twice. Close it to stop.
   */
  public EventStream events(long afterSequence, Duration heartbeatInterval) {
    WatchExecutorEventsRequest req = WatchExecutorEventsRequest.newBuilder()
        .setNamespace(namespace)
        .setAppId(appId)
        .setAfterSequence(afterSequence)
        .setHeartbeatInterval(com.google.protobuf.Duration.newBuilder()
            .setSeconds(heartbeatInterval.getSeconds())
            .setNanos(heartbeatInterval.getNano()))
        .build();
    return new EventStream(client.lifecycle, req);
  }
}
