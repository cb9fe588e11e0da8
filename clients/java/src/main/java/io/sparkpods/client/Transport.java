package io.sparkpods.client;

import io.grpc.ChannelCredentials;
import io.grpc.CompositeChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.TlsChannelCredentials;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * How to reach the sparkpods services. They speak TLS and authenticate every caller, by a client
 * certificate (its common name is the identity, its organizations the groups) or by a
 * Kubernetes ServiceAccount token, and authorize the identity with RBAC on {@code
 * applications.sparkpods.io} in the request's namespace.
 *
 * <pre>{@code
 * Transport t = Transport.tls(new File("/etc/sparkpods/ca.crt"))
 *     .withTokenFile(Path.of("/var/run/secrets/kubernetes.io/serviceaccount/token"));
 * }</pre>
 *
 * <p>{@link #insecure()} is plaintext with no credentials, for services run with {@code
 * --insecure} (development only). Instances are immutable.
 */
public final class Transport {
  private final File caFile; // null: plaintext
  private final File certFile;
  private final File keyFile;
  private final Path tokenFile;
  private final String serverName;

  private Transport(File caFile, File certFile, File keyFile, Path tokenFile, String serverName) {
    this.caFile = caFile;
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.tokenFile = tokenFile;
    this.serverName = serverName;
  }

  /** TLS, verifying the services' certificates with the PEM CA bundle {@code caFile}. */
  public static Transport tls(File caFile) {
    if (caFile == null) {
      throw new IllegalArgumentException("a CA file is required for TLS (or use Transport.insecure())");
    }
    return new Transport(caFile, null, null, null, null);
  }

  /** Plaintext with no credentials, for services run with --insecure (development only). */
  public static Transport insecure() {
    return new Transport(null, null, null, null, null);
  }

  /**
   * Presents a PEM client certificate chain and its PEM private key (PKCS#8, or SEC 1 "EC
   * PRIVATE KEY" and PKCS#1 "RSA PRIVATE KEY" as cert-manager and servicepki write them).
   */
  public Transport withClientCertificate(File certFile, File keyFile) {
    requireTls("a client certificate");
    return new Transport(caFile, certFile, keyFile, tokenFile, serverName);
  }

  /**
   * Sends the token in {@code tokenFile} (a ServiceAccount token, such as the pod's projected
   * one) as {@code authorization: Bearer <token>} on every call; the file is re-read every
   * minute, so a rotated token is picked up.
   */
  public Transport withTokenFile(Path tokenFile) {
    requireTls("a bearer token");
    return new Transport(caFile, certFile, keyFile, tokenFile, serverName);
  }

  /** The name the services' certificates must carry, when it is not the host dialled. */
  public Transport withServerName(String serverName) {
    requireTls("a server name");
    return new Transport(caFile, certFile, keyFile, tokenFile, serverName);
  }

  private void requireTls(String what) {
    if (caFile == null) {
      throw new IllegalStateException(what + " needs TLS: use Transport.tls(caFile), not Transport.insecure()");
    }
  }

  /**
   * A channel to one service at a gRPC target such as {@code
   * "sparkpods-allocator.sparkpods:50052"}, with keepalive for long-lived event streams. The
   * certificate files are read now: after rotating them, make a new channel.
   *
   * @throws IOException when a certificate or key file cannot be read or parsed
   */
  public ManagedChannel channel(String target) throws IOException {
    ManagedChannelBuilder<?> builder;
    if (caFile == null) {
      builder = ManagedChannelBuilder.forTarget(target).usePlaintext();
    } else {
      try {
        builder = Grpc.newChannelBuilder(target, credentials());
      } catch (UnsupportedOperationException e) {
        // Debian's netty 4.1.48 has the JDK provider's ALPN removed; gRPC over TLS needs ALPN.
        throw new IOException("TLS to " + target + " needs ALPN, which this Netty build lacks for the JDK TLS"
            + " provider (" + e.getMessage() + "): use grpc-java and Netty from Maven Central, or netty-tcnative", e);
      }
      if (serverName != null) {
        builder.overrideAuthority(serverName);
      }
    }
    return builder.keepAliveTime(20, TimeUnit.SECONDS).keepAliveTimeout(10, TimeUnit.SECONDS).build();
  }

  private ChannelCredentials credentials() throws IOException {
    TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder().trustManager(caFile);
    if (certFile != null) {
      byte[] chain = Files.readAllBytes(certFile.toPath());
      byte[] key = PrivateKeyPem.toPkcs8(Files.readAllBytes(keyFile.toPath()), keyFile.toString());
      tls.keyManager(new ByteArrayInputStream(chain), new ByteArrayInputStream(key));
    }
    ChannelCredentials creds = tls.build();
    if (tokenFile != null) {
      creds = CompositeChannelCredentials.create(creds, new BearerToken(tokenFile));
    }
    return creds;
  }
}
