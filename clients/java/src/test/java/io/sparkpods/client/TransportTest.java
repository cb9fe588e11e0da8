package io.sparkpods.client;

import static org.junit.Assert.assertThrows;

import java.io.File;
import java.nio.file.Path;
import org.junit.Test;

/** Checks that credentials are never combined with plaintext. */
public class TransportTest {
  @Test
  public void plaintextTakesNoCredentials() {
    assertThrows(IllegalStateException.class, () -> Transport.insecure().withTokenFile(Path.of("token")));
    assertThrows(IllegalStateException.class,
        () -> Transport.insecure().withClientCertificate(new File("tls.crt"), new File("tls.key")));
    assertThrows(IllegalArgumentException.class, () -> Transport.tls(null));
  }
}
