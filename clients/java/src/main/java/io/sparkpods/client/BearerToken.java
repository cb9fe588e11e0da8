package io.sparkpods.client;

import io.grpc.CallCredentials;
import io.grpc.Metadata;
import io.grpc.SecurityLevel;
import io.grpc.Status;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Executor;

/**
 * Sends the token in a file as {@code authorization: Bearer <token>}, re-reading the file every
 * minute so that a rotated ServiceAccount token is picked up. It refuses to send the token over
 * a connection without privacy and integrity.
 */
final class BearerToken extends CallCredentials {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
  private static final Duration REREAD = Duration.ofMinutes(1);

  private final Path file;
  private String token;
  private long readAt;

  BearerToken(Path file) {
    this.file = file;
  }

  @Override
  public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
    if (info.getSecurityLevel() != SecurityLevel.PRIVACY_AND_INTEGRITY) {
      applier.fail(Status.UNAUTHENTICATED.withDescription("a bearer token is never sent in plaintext"));
      return;
    }
    executor.execute(() -> {
      try {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, "Bearer " + current());
        applier.apply(headers);
      } catch (IOException | RuntimeException e) {
        applier.fail(Status.UNAUTHENTICATED.withDescription("token file " + file + ": " + e.getMessage()).withCause(e));
      }
    });
  }

  private synchronized String current() throws IOException {
    long now = System.nanoTime();
    if (token != null && now - readAt < REREAD.toNanos()) {
      return token;
    }
    String read = new String(Files.readAllBytes(file), StandardCharsets.UTF_8).trim();
    if (read.isEmpty()) {
      throw new IOException("the file is empty");
    }
    token = read;
    readAt = now;
    return token;
  }

  @Override
  public void thisUsesUnstableApi() {}
}
