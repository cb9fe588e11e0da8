package io.sparkpods.client;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.sparkpods.v1.ExecutorEvent;
import io.sparkpods.v1.LifecycleServiceGrpc;
import io.sparkpods.v1.WatchExecutorEventsRequest;
import io.sparkpods.v1.WatchExecutorEventsResponse;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A blocking iterator of executor events that resumes after failures. Iterate it from one
 * thread; {@link #close()} may be called from any thread and ends the iteration
 * ({@link #hasNext()} returns false).
 */
public final class EventStream implements Iterator<ExecutorEvent>, AutoCloseable {
  private static final Set<Status.Code> RESUMABLE = EnumSet.of(
      Status.Code.UNAVAILABLE, Status.Code.DEADLINE_EXCEEDED, Status.Code.INTERNAL,
      Status.Code.UNKNOWN, Status.Code.ABORTED);
  private static final long MAX_BACKOFF_MILLIS = 10_000;

  private final LifecycleServiceGrpc.LifecycleServiceBlockingStub stub;
  private final WatchExecutorEventsRequest request;
  private volatile boolean closed;
  private volatile Context.CancellableContext call;
  private Iterator<WatchExecutorEventsResponse> responses;
  private ExecutorEvent next;
  private long lastSequence;
  private int resumes;

  EventStream(LifecycleServiceGrpc.LifecycleServiceBlockingStub stub, WatchExecutorEventsRequest request) {
    this.stub = stub;
    this.request = request;
    this.lastSequence = request.getAfterSequence();
  }

  /** The highest sequence returned so far; persist it to resume after a restart. */
  public long lastSequence() {
    return lastSequence;
  }

  /** How many times the stream was re-opened after a failure. */
  public int resumes() {
    return resumes;
  }

  @Override
  public boolean hasNext() {
    long backoff = 100;
    while (next == null && !closed) {
      try {
        if (responses == null) {
          open();
        }
        if (!responses.hasNext()) {
          responses = null; // the server ended the stream: resume
          continue;
        }
        backoff = 100;
        WatchExecutorEventsResponse msg = responses.next();
        if (msg.hasEvent() && msg.getEvent().getSequence() > lastSequence) {
          next = msg.getEvent();
          lastSequence = next.getSequence();
        }
      } catch (StatusRuntimeException e) {
        responses = null;
        if (closed) {
          break;
        }
        if (!RESUMABLE.contains(e.getStatus().getCode())) {
          throw e;
        }
        try {
          Thread.sleep(ThreadLocalRandom.current().nextLong(backoff / 2, backoff + 1));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          close();
          break;
        }
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MILLIS);
        resumes++;
      }
    }
    return next != null;
  }

  private void open() {
    Context.CancellableContext ctx = Context.current().withCancellation();
    call = ctx;
    if (closed) {
      ctx.cancel(null);
    }
    WatchExecutorEventsRequest req = request.toBuilder().setAfterSequence(lastSequence).build();
    Context prev = ctx.attach();
    try {
      responses = stub.watchExecutorEvents(req);
    } finally {
      ctx.detach(prev);
    }
  }

  @Override
  public ExecutorEvent next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    ExecutorEvent e = next;
    next = null;
    return e;
  }

  /** Ends the stream; a blocked {@link #hasNext()} returns false. */
  @Override
  public void close() {
    closed = true;
    Context.CancellableContext c = call;
    if (c != null) {
      c.cancel(null);
    }
  }
}
